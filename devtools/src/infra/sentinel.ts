/**
 * Private `redis-sentinel` processes: a set of Sentinels (three, quorum 2)
 * monitors the shards' primaries and promotes a replica when a primary is
 * down. Like the servers of redis-server.ts, each is a direct child of this
 * process on 127.0.0.1.
 *
 * Sentinel rewrites its configuration file as it learns (other Sentinels,
 * replicas, the current primary after a failover, the epochs), so every
 * Sentinel has a file of its own in its own directory, kept across its
 * restarts: a restarted Sentinel remembers the current primaries.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureBinaries } from './binaries.js';
import { closeQuietly, fileSize, logTail, manage, openLog, readFrom, stopChild, type ManagedChild } from './child.js';
import { freePort } from './ports.js';
import { infoField, redisCommand, type RedisAddress } from './redis-server.js';

/** A primary the Sentinels monitor, under its master name (`lb-na`). */
export interface SentinelMaster {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** Options for {@link startSentinel}. */
export interface StartSentinelOptions {
  /** TCP port; 0 or undefined picks a free ephemeral port. */
  readonly port?: number;
  /** Its directory: sentinel.conf lives (and is rewritten by Sentinel) here. One per Sentinel. */
  readonly dir: string;
  /** The primaries to monitor when the configuration is written. */
  readonly masters: readonly SentinelMaster[];
  /** Sentinels that must agree a primary is down before a failover (default 2). */
  readonly quorum?: number;
  /**
   * `down-after-milliseconds`: unanswered for this long = down (default
   * 1500). Sentinel pings every second; with 1000 a link dropped just before
   * a ping (the promotion's `CLIENT KILL type normal` drops every Sentinel's
   * link to the promoted node) counts as down within a few ms of its
   * reconnection and failed the promoted node over again at once.
   */
  readonly downAfterMs?: number;
  /** `failover-timeout` (default 4000). */
  readonly failoverTimeoutMs?: number;
  /** Where stdout/stderr go (appended); default `<dir>/<name>.log`. */
  readonly logFile?: string;
  /** Label used in log file names and error messages (default `sentinel`). */
  readonly name?: string;
  /** How long to wait for it to answer (default 15 s). */
  readonly startTimeoutMs?: number;
  /**
   * Write a new configuration even if the directory has one. By default an
   * existing sentinel.conf that monitors exactly the master names of
   * {@link masters} is kept as Sentinel last rewrote it (its primaries may
   * have moved by a failover since); one that monitors others is replaced.
   */
  readonly replaceConfig?: boolean;
}

/** A running Sentinel owned by this process. */
export interface SentinelProcess {
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly name: string;
  readonly logFile: string;
  /** Its configuration file (rewritten by Sentinel). */
  readonly configFile: string;
  /** True if an existing configuration was kept (a restart), false if a new one was written. */
  readonly configKept: boolean;
  /** True until the process has exited. */
  running(): boolean;
  /** Graceful shutdown (SIGTERM), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL. Idempotent. */
  kill(): Promise<void>;
}

export const SENTINEL_CONFIG = 'sentinel.conf';
/** Timings of the stack's Sentinels: a killed primary is replaced within ~3 s. */
export const SENTINEL_DEFAULTS = Object.freeze({ quorum: 2, downAfterMs: 1500, failoverTimeoutMs: 4000 });

const STOP_TIMEOUT_MS = 10_000;
const MAX_PORT_ATTEMPTS = 5;
const PORT_IN_USE = 'the port is already in use';
const MASTER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** The configuration of a new Sentinel. */
export function renderSentinelConfig(o: Required<Pick<StartSentinelOptions, 'quorum' | 'downAfterMs' | 'failoverTimeoutMs'>> & { dir: string; masters: readonly SentinelMaster[] }): string {
  const lines = [
    '# Written by @lb/devtools/infra startSentinel; Sentinel rewrites this file as it learns.',
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${o.dir}`,
    'sentinel resolve-hostnames no',
    'sentinel announce-hostnames no',
  ];
  for (const m of o.masters) {
    if (!MASTER_NAME.test(m.name)) throw new Error(`Sentinel master name "${m.name}" must match ${MASTER_NAME}`);
    lines.push(
      `sentinel monitor ${m.name} ${m.host} ${m.port} ${o.quorum}`,
      `sentinel down-after-milliseconds ${m.name} ${o.downAfterMs}`,
      `sentinel failover-timeout ${m.name} ${o.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${m.name} 1`,
    );
  }
  return lines.join('\n') + '\n';
}

/** The `sentinel monitor` lines of a configuration: master name → the primary it names. */
export function monitoredMasters(configText: string): Map<string, RedisAddress> {
  const out = new Map<string, RedisAddress>();
  for (const m of configText.matchAll(/^sentinel monitor (\S+) (\S+) (\d+) \d+\s*$/gm)) out.set(m[1]!, { host: m[2]!, port: Number(m[3]) });
  return out;
}

/**
 * What the Sentinel configurations in `dirs` say each master's primary is
 * (the one most of the files name), for a stack started again on the data
 * of a previous run; masters no file names are left out.
 */
export function rememberedPrimaries(dirs: readonly string[]): Map<string, RedisAddress> {
  const votes = new Map<string, Map<string, number>>();
  for (const d of dirs) {
    let text: string;
    try {
      text = readFileSync(join(d, SENTINEL_CONFIG), 'utf8');
    } catch {
      continue;
    }
    for (const [name, a] of monitoredMasters(text)) {
      const v = votes.get(name) ?? new Map<string, number>();
      const key = `${a.host}:${a.port}`;
      v.set(key, (v.get(key) ?? 0) + 1);
      votes.set(name, v);
    }
  }
  const out = new Map<string, RedisAddress>();
  for (const [name, v] of votes) {
    const [best] = [...v.entries()].sort((a, b) => b[1] - a[1])[0]!;
    const i = best.lastIndexOf(':');
    out.set(name, { host: best.slice(0, i), port: Number(best.slice(i + 1)) });
  }
  return out;
}

/**
 * Starts `redis-sentinel <dir>/sentinel.conf --port <port>` and resolves once
 * it answers and monitors every master of its configuration. Rejects with
 * the log tail if it exits or does not answer in time.
 */
export async function startSentinel(opts: StartSentinelOptions): Promise<SentinelProcess> {
  const { 'redis-sentinel': binary } = await ensureBinaries(['redis-sentinel'], { install: false });
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const name = opts.name ?? 'sentinel';
  const logFile = resolve(opts.logFile ?? join(dir, `${name}.log`));
  const configFile = join(dir, SENTINEL_CONFIG);
  const wanted = new Set(opts.masters.map((m) => m.name));
  let configKept = false;
  if (!opts.replaceConfig && existsSync(configFile)) {
    const have = monitoredMasters(readFileSync(configFile, 'utf8'));
    configKept = have.size === wanted.size && [...wanted].every((n) => have.has(n));
  }
  if (!configKept) {
    writeFileSync(
      configFile,
      renderSentinelConfig({
        dir,
        masters: opts.masters,
        quorum: opts.quorum ?? SENTINEL_DEFAULTS.quorum,
        downAfterMs: opts.downAfterMs ?? SENTINEL_DEFAULTS.downAfterMs,
        failoverTimeoutMs: opts.failoverTimeoutMs ?? SENTINEL_DEFAULTS.failoverTimeoutMs,
      }),
    );
  }
  const ephemeral = !opts.port;
  for (let attempt = 1; ; attempt++) {
    const port = ephemeral ? await freePort() : opts.port!;
    const result = await tryStart(binary, port, dir, name, logFile, configFile, wanted.size, opts.startTimeoutMs ?? 15_000);
    if (typeof result !== 'string') {
      if (configKept) {
        // A kept configuration has the primaries it learnt; its timings are made today's.
        for (const m of wanted) {
          await redisCommand(port, ['SENTINEL', 'SET', m, 'down-after-milliseconds', String(opts.downAfterMs ?? SENTINEL_DEFAULTS.downAfterMs), 'failover-timeout', String(opts.failoverTimeoutMs ?? SENTINEL_DEFAULTS.failoverTimeoutMs)], 2000);
        }
      }
      return { port, pid: result.pid, dir, name, logFile, configFile, configKept, running: result.running,
        async stop() { await stopChild(result, 'SIGTERM', STOP_TIMEOUT_MS); },
        async kill() { await stopChild(result, 'SIGKILL', STOP_TIMEOUT_MS); },
      };
    }
    if (!(ephemeral && result === PORT_IN_USE && attempt < MAX_PORT_ATTEMPTS)) {
      throw new Error(`redis-sentinel "${name}" on 127.0.0.1:${port} did not start: ${result}. Last lines of ${logFile}:\n${logTail(logFile)}`);
    }
  }
}

async function tryStart(
  binary: string,
  port: number,
  dir: string,
  name: string,
  logFile: string,
  configFile: string,
  masters: number,
  timeoutMs: number,
): Promise<ManagedChild | string> {
  const logStart = fileSize(logFile);
  const fd = openLog(logFile);
  let managed: ManagedChild;
  try {
    managed = manage(spawn(binary, [configFile, '--port', String(port)], { cwd: dir, stdio: ['ignore', fd, fd] }), `redis-sentinel ${name}`);
  } finally {
    closeQuietly(fd);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!managed.running()) {
      const exit = await managed.exited;
      return /address already in use/i.test(readFrom(logFile, logStart)) ? PORT_IN_USE : `exited with ${exit.signal ?? `code ${exit.code}`}`;
    }
    const reply = await redisCommand(port, ['INFO'], 1000).catch(() => undefined);
    const info = typeof reply === 'string' ? reply : undefined;
    if (info !== undefined && infoField(info, 'process_id') === String(managed.pid) && infoField(info, 'sentinel_masters') === String(masters)) {
      return managed;
    }
    if (Date.now() >= deadline) {
      await stopChild(managed, 'SIGKILL', STOP_TIMEOUT_MS);
      return `not ready after ${timeoutMs} ms`;
    }
    await sleep(50);
  }
}

/**
 * `SENTINEL get-master-addr-by-name <master>` of each Sentinel on
 * 127.0.0.1:`ports` that answers (undefined for one that does not).
 */
export async function askSentinels(ports: readonly number[], master: string, timeoutMs = 500): Promise<Array<RedisAddress | undefined>> {
  return Promise.all(
    ports.map(async (p) => {
      const reply = await redisCommand(p, ['SENTINEL', 'get-master-addr-by-name', master], timeoutMs).catch(() => undefined);
      return Array.isArray(reply) && typeof reply[0] === 'string' && reply[1] !== undefined ? { host: reply[0], port: Number(reply[1]) } : undefined;
    }),
  );
}

/**
 * The current primary of `master` as the Sentinels name it: the address
 * most of the answering Sentinels give; undefined when none answers.
 */
export async function sentinelPrimary(ports: readonly number[], master: string, timeoutMs = 500): Promise<RedisAddress | undefined> {
  const answers = (await askSentinels(ports, master, timeoutMs)).filter((a): a is RedisAddress => a !== undefined);
  if (answers.length === 0) return undefined;
  const count = new Map<string, number>();
  for (const a of answers) count.set(`${a.host}:${a.port}`, (count.get(`${a.host}:${a.port}`) ?? 0) + 1);
  const best = [...count.entries()].sort((x, y) => y[1] - x[1])[0]![0];
  return answers.find((a) => `${a.host}:${a.port}` === best);
}

/** What one Sentinel knows of one master (`SENTINEL master <name>`). */
export interface SentinelView {
  readonly port: number;
  readonly primary: RedisAddress;
  /** Replicas it knows. */
  readonly replicas: number;
  /** Other Sentinels it knows. */
  readonly otherSentinels: number;
  /** Its flags: `master`, `s_down`, `o_down`, `failover_in_progress`… */
  readonly flags: readonly string[];
}

/** `SENTINEL master <name>` of the Sentinel on 127.0.0.1:`port`, as a {@link SentinelView}. */
export async function sentinelView(port: number, master: string, timeoutMs = 1000): Promise<SentinelView> {
  const reply = await redisCommand(port, ['SENTINEL', 'master', master], timeoutMs);
  if (!Array.isArray(reply)) throw new Error(`sentinel on port ${port}: no description of ${master}`);
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) f.set(String(reply[i]), String(reply[i + 1]));
  return {
    port,
    primary: { host: f.get('ip') ?? '', port: Number(f.get('port')) },
    replicas: Number(f.get('num-slaves') ?? 0),
    otherSentinels: Number(f.get('num-other-sentinels') ?? 0),
    flags: (f.get('flags') ?? '').split(','),
  };
}

/**
 * Waits until every Sentinel on `ports` knows every one of `masters` with
 * at least `replicas` replicas and all the other Sentinels (they find each
 * other through the primaries, in about two seconds): only then can they
 * agree on a failover. Rejects after `timeoutMs` saying what is missing.
 */
export async function waitForSentinels(
  ports: readonly number[],
  masters: readonly string[],
  opts: { replicas?: number; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const replicas = opts.replicas ?? 1;
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const missing: string[] = [];
    for (const p of ports) {
      for (const m of masters) {
        const v = await sentinelView(p, m).catch((e: unknown) => (e as Error).message);
        if (typeof v === 'string') missing.push(`sentinel :${p} ${m}: ${v}`);
        else if (v.replicas < replicas || v.otherSentinels < ports.length - 1) {
          missing.push(`sentinel :${p} knows ${v.replicas} replica(s) and ${v.otherSentinels} other sentinel(s) of ${m}`);
        }
      }
    }
    if (missing.length === 0) return;
    if (opts.signal?.aborted) throw new Error('waiting for the Sentinels: aborted');
    if (Date.now() >= deadline) throw new Error(`the Sentinels are not ready after ${opts.timeoutMs ?? 15_000} ms: ${missing.join('; ')}`);
    await sleep(100);
  }
}
