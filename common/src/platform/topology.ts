/**
 * Loading the shard topology (its shape is contracts/topology.ts): which
 * regions exist, which shard serves each, and where each shard's Redis and
 * Postgres live. It is data, read by every service and script from one place:
 * `TOPOLOGY` (inline JSON) or `TOPOLOGY_FILE` (a JSON file), else the default
 * local topology below. Validation reports through ConfigError, as every
 * configuration key does.
 *
 * ```json
 * { "shards": [{ "id": "na", "redis": "redis://127.0.0.1:6391",
 *                "postgres": "postgres://leaderboard@127.0.0.1:5442/leaderboard_na" }],
 *   "regions": { "NA": "na" } }
 * ```
 *
 * A shard with a replica names its Sentinel master instead of an address,
 * and the topology lists the Sentinels (every client asks them for the
 * current primary):
 *
 * ```json
 * { "sentinels": ["127.0.0.1:26391", "127.0.0.1:26392", "127.0.0.1:26393"],
 *   "shards": [{ "id": "na", "sentinel": "lb-na", "postgres": "…" }], … }
 * ```
 */
import { readFileSync } from 'node:fs';
import { GLOBAL, type RedisEndpoint, type RedisNode, type ShardDef, type Topology } from '../contracts/topology.js';
import { ConfigError, optionalKey, type Env } from './config.js';

export const TOPOLOGY_KEY = optionalKey('TOPOLOGY', 'Shard topology as inline JSON (wins over TOPOLOGY_FILE).');
export const TOPOLOGY_FILE_KEY = optionalKey(
  'TOPOLOGY_FILE',
  'Path of a JSON file with the shard topology; unset = the default local topology (NA, EU, ASIA on three shards).',
);

/** Ports of the default local topology (`npm start`); never Redis' or Postgres' default ports. */
export const DEFAULT_PORTS = { redis: [6391, 6392, 6393], postgres: 5442 } as const;

/** Regions NA, EU, ASIA on three Redis shards and three Postgres databases. */
export const DEFAULT_TOPOLOGY: Topology = Object.freeze({
  shards: Object.freeze(
    (['na', 'eu', 'asia'] as const).map((id, i) =>
      Object.freeze({
        id,
        redis: Object.freeze({ kind: 'server', url: `redis://127.0.0.1:${DEFAULT_PORTS.redis[i]}` }) as RedisEndpoint,
        postgres: `postgres://leaderboard@127.0.0.1:${DEFAULT_PORTS.postgres}/leaderboard_${id}`,
      }),
    ),
  ),
  regions: Object.freeze({ NA: 'na', EU: 'eu', ASIA: 'asia' }),
});

const SHARD_ID = /^[a-z0-9_-]{1,32}$/;
/** Sentinel master names: what `sentinel monitor` accepts and our configs write. */
const MASTER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const REGION_NAME = /^[A-Z][A-Z0-9_]{0,31}$/;

/** Validates a parsed topology; every message names the offending key. */
export function validateTopology(raw: unknown, key = 'TOPOLOGY'): Topology {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(key, 'must be a JSON object');
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k !== 'shards' && k !== 'regions' && k !== 'sentinels') throw new ConfigError(`${key}.${k}`, 'unknown entry');
  }
  if (!Array.isArray(obj.shards) || obj.shards.length === 0) {
    throw new ConfigError(`${key}.shards`, 'must be a non-empty array');
  }
  const sentinels = obj.sentinels === undefined ? undefined : sentinelNodes(`${key}.sentinels`, obj.sentinels);
  const ids = new Set<string>();
  const masters = new Set<string>();
  const shards: ShardDef[] = obj.shards.map((s: unknown, i: number) => {
    const at = `${key}.shards[${i}]`;
    if (!s || typeof s !== 'object') throw new ConfigError(at, 'must be an object');
    const { id, redis, sentinel, postgres, ...rest } = s as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra) throw new ConfigError(`${at}.${extra}`, 'unknown entry');
    if (typeof id !== 'string' || !SHARD_ID.test(id)) throw new ConfigError(`${at}.id`, `must match ${SHARD_ID}`);
    if (ids.has(id)) throw new ConfigError(`${at}.id`, `duplicate shard id "${id}"`);
    ids.add(id);
    let endpoint: RedisEndpoint;
    if (sentinel !== undefined) {
      if (redis !== undefined) throw new ConfigError(`${at}.redis`, 'give either redis (an address) or sentinel (a master name), not both');
      if (typeof sentinel !== 'string' || !MASTER_NAME.test(sentinel)) throw new ConfigError(`${at}.sentinel`, `must match ${MASTER_NAME}`);
      if (masters.has(sentinel)) throw new ConfigError(`${at}.sentinel`, `duplicate master name "${sentinel}"`);
      if (!sentinels) throw new ConfigError(`${key}.sentinels`, `must list the Sentinels ("host:port") when a shard names a master (${at}.sentinel)`);
      masters.add(sentinel);
      endpoint = Object.freeze({ kind: 'sentinel', master: sentinel, sentinels });
    } else {
      checkUrl(`${at}.redis`, redis, ['redis:', 'rediss:']);
      endpoint = Object.freeze({ kind: 'server', url: redis as string });
    }
    checkUrl(`${at}.postgres`, postgres, ['postgres:', 'postgresql:']);
    return Object.freeze({ id, redis: endpoint, postgres: postgres as string });
  });
  const regionsRaw = obj.regions ?? {};
  if (typeof regionsRaw !== 'object' || Array.isArray(regionsRaw)) {
    throw new ConfigError(`${key}.regions`, 'must be an object of region -> shard id');
  }
  const regions: Record<string, string> = {};
  for (const [name, shard] of Object.entries(regionsRaw as Record<string, unknown>)) {
    const at = `${key}.regions.${name}`;
    if (!REGION_NAME.test(name)) throw new ConfigError(at, `region names must match ${REGION_NAME}`);
    if (name === GLOBAL) throw new ConfigError(at, 'GLOBAL is the board of all players, not a region');
    if (typeof shard !== 'string' || !ids.has(shard)) throw new ConfigError(at, `unknown shard "${String(shard)}"`);
    regions[name] = shard;
  }
  return Object.freeze({ shards: Object.freeze(shards), regions: Object.freeze(regions) });
}

function sentinelNodes(at: string, raw: unknown): readonly RedisNode[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new ConfigError(at, 'must be a non-empty array of "host:port"');
  return Object.freeze(
    raw.map((v: unknown, i: number) => {
      const m = typeof v === 'string' ? /^([^\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(v) : null;
      const port = m ? Number(m[2]) : 0;
      if (!m || port < 1 || port > 65535) throw new ConfigError(`${at}[${i}]`, `must be "host:port", got ${JSON.stringify(v)}`);
      return Object.freeze({ host: m[1]!.replace(/^\[|\]$/g, ''), port });
    }),
  );
}

/**
 * The JSON text of a topology, in the form `TOPOLOGY` and `TOPOLOGY_FILE`
 * take (what {@link loadTopology} reads back to the same topology).
 */
export function topologyJson(t: Topology, indent?: number): string {
  const sentinels = t.shards.map((s) => s.redis).find((e) => e.kind === 'sentinel')?.sentinels;
  return JSON.stringify(
    {
      ...(sentinels && { sentinels: sentinels.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)) }),
      shards: t.shards.map((s) => ({
        id: s.id,
        ...(s.redis.kind === 'server' ? { redis: s.redis.url } : { sentinel: s.redis.master }),
        postgres: s.postgres,
      })),
      regions: t.regions,
    },
    null,
    indent,
  );
}

function checkUrl(at: string, value: unknown, protocols: string[]): void {
  if (typeof value !== 'string') throw new ConfigError(at, 'must be a URL string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(at, `"${value}" is not a URL`);
  }
  if (!protocols.includes(url.protocol)) throw new ConfigError(at, `must use ${protocols.join(' or ')}`);
}

/** Reads the topology from `TOPOLOGY`, `TOPOLOGY_FILE`, or the default. */
export function loadTopology(env: Env = process.env): Topology {
  const inline = TOPOLOGY_KEY.read(env);
  if (inline !== undefined) return validateTopology(parseJson('TOPOLOGY', inline), 'TOPOLOGY');
  const file = TOPOLOGY_FILE_KEY.read(env);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError('TOPOLOGY_FILE', `cannot read ${file}: ${(e as Error).message}`);
    }
    return validateTopology(parseJson('TOPOLOGY_FILE', text), 'TOPOLOGY_FILE');
  }
  return DEFAULT_TOPOLOGY;
}

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(key, `is not valid JSON: ${(e as Error).message}`);
  }
}
