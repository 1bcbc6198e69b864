/**
 * HTTP benchmark through nginx (issue: load-balanced mode).
 *
 * Starts the whole stack (startStack, ephemeral ports, temp data dir), seeds
 * the boards with players, then drives nginx with autocannon: a baseline of
 * the bare topology cost (nginx → a minimal Node hop → a minimal Node
 * server), top-10 reads, a read mix, a write stream, and a mix. For each run
 * it reports req/s, p50/p95/p99 latency, errors, and the CPU time each
 * component spent per request (read from /proc: the profile of where the
 * time goes). It also reports queue lag and Redis memory per player.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_PROJECT, GLOBAL } from '@lb/common/contracts';
import { createLogger, signToken } from '@lb/common/platform';
import { findBinary, freePort } from '@lb/devtools/infra';
import { createDeps } from '@lb/leaderboard-service/deps';
import { loadConfig } from '@lb/leaderboard-service/config';
import { nginxArgs, renderNginxConf } from '../stack/nginx.js';
import { startStack, type Stack } from '../stack/stack.js';
import { onInterrupt } from './interrupt.js';
import { childrenCpuSeconds, loadTool, runLoad, type MixEntry } from './load.js';
import { benchLoginFlood, loginFloodMarkdown, type LoginFloodResult } from './login-flood.js';
import { setupBoards, type BoardsSetup } from './boards.js';
import { fmt, machineLine, pct } from './machine.js';

const CLK_TCK = 100;

export interface RunResult {
  name: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuMsPerReq: Record<string, number>;
  /** Redis commands per request over all shards (`INFO commandstats` before and after), when asked for. */
  redisPerReq?: Record<string, { calls: number; usec: number }>;
}

/** Calls and CPU microseconds of each Redis command, summed over the shards. */
type CommandStats = Map<string, { calls: number; usec: number }>;

async function commandStats(deps: { stores: { all(): { client: { info(section: string): Promise<string> } }[] } }): Promise<CommandStats> {
  const out: CommandStats = new Map();
  for (const s of deps.stores.all()) {
    for (const m of (await s.client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      const cur = out.get(m[1]!) ?? { calls: 0, usec: 0 };
      out.set(m[1]!, { calls: cur.calls + Number(m[2]), usec: cur.usec + Number(m[3]) });
    }
  }
  return out;
}

function perRequest(before: CommandStats, after: CommandStats, requests: number): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const [cmd, a] of after) {
    const b = before.get(cmd) ?? { calls: 0, usec: 0 };
    const calls = (a.calls - b.calls) / requests;
    if (calls >= 0.005) out[cmd] = { calls, usec: (a.usec - b.usec) / requests };
  }
  return out;
}

/**
 * CPU seconds (user+system) of every process, by pid, with parent links;
 * each with the time of its children that exited and were waited for
 * (cutime/cstime), so a Postgres backend or autovacuum worker that ends
 * during a run leaves its CPU time with the postmaster instead of taking it along.
 */
function procTable(): Map<number, { ppid: number; cpu: number }> {
  const out = new Map<number, { ppid: number; cpu: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(Number(d), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** CPU seconds of each group: its pids and all their descendants. */
export function cpuByGroup(groups: Record<string, number[]>): Record<string, number> {
  const t = procTable();
  const children = new Map<number, number[]>();
  for (const [pid, p] of t) (children.get(p.ppid) ?? children.set(p.ppid, []).get(p.ppid)!).push(pid);
  const out: Record<string, number> = {};
  for (const [g, pids] of Object.entries(groups)) {
    let sum = 0;
    const stack = [...pids];
    const seen = new Set<number>();
    while (stack.length) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      sum += t.get(pid)?.cpu ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    out[g] = sum;
  }
  return out;
}

export function groupsOf(stack: Stack): Record<string, number[]> {
  const g: Record<string, number[]> = {};
  for (const c of stack.components) {
    if (!c.pid) continue;
    const key = c.kind === 'service' ? 'leaderboard-service' : c.kind === 'gateway' ? 'api-gateway' : c.kind === 'worker' ? 'worker-service' : c.kind;
    (g[key] ??= []).push(c.pid);
  }
  return g;
}

export const WARM_UP_S = 5;

/** CPU seconds of the load generator so far: wrk is our child, autocannon runs in this process. */
function loadGeneratorCpu(): number {
  if (loadTool() === 'wrk') return childrenCpuSeconds();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Hooks called right around the measured load (after the warm-up): what a caller samples over exactly that window. */
export interface MeasuredWindow {
  start(): Promise<void> | void;
  end(): Promise<void> | void;
}

export async function run(
  name: string,
  url: string,
  groups: Record<string, number[]>,
  opts: { duration: number; connections: number; mix: MixEntry[]; redis?: () => Promise<CommandStats>; window?: MeasuredWindow },
  log: (s: string) => void,
): Promise<RunResult> {
  // Unrecorded warm-up with the same mix: V8 keeps compiling (on threads
  // whose CPU time counts as the process') for a while after a change of
  // request shape, and the first seconds of every run paid for it.
  await runLoad({ url, mix: opts.mix, connections: opts.connections, durationS: WARM_UP_S });
  const redisBefore = await opts.redis?.();
  await opts.window?.start();
  const before = cpuByGroup(groups);
  const loadBefore = loadGeneratorCpu();
  const res = await runLoad({ url, mix: opts.mix, connections: opts.connections, durationS: opts.duration });
  const loadCpu = loadGeneratorCpu() - loadBefore;
  const after = cpuByGroup(groups);
  await opts.window?.end();
  const redisAfter = await opts.redis?.();
  const cpuMsPerReq: Record<string, number> = {};
  // Clamped at 0: a process that exits during the run and is not waited for by one of the group takes its CPU time with it.
  for (const g of Object.keys(groups)) cpuMsPerReq[g] = res.requests > 0 ? Math.max(0, ((after[g]! - before[g]!) * 1000) / res.requests) : NaN;
  cpuMsPerReq[`load generator (${loadTool()})`] = res.requests > 0 ? (loadCpu * 1000) / res.requests : NaN;
  const r: RunResult = { name, requests: res.requests, rps: res.rps, p50: res.p50, p95: res.p95, p99: res.p99, errors: res.errors, non2xx: res.non2xx, cpuMsPerReq };
  if (redisBefore && redisAfter && res.requests > 0) r.redisPerReq = perRequest(redisBefore, redisAfter, res.requests);
  log(
    `${name}: ${fmt(r.rps)} req/s, p50 ${fmt(r.p50, 1)} ms, p95 ${fmt(r.p95, 1)} ms, p99 ${fmt(r.p99, 1)} ms, errors ${r.errors}, non-2xx ${r.non2xx}; CPU ms/req ${Object.entries(cpuMsPerReq)
      .filter(([, v]) => v > 0.005)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ')}`,
  );
  return r;
}

/** Starts `node minimal.mjs <args>` and waits for its "ready". */
async function startMinimal(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'minimal.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`minimal.mjs ${args[0]} exited ${code}`)));
    child.stdout!.once('data', () => resolve());
  });
  child.removeAllListeners('exit');
  return child;
}

/** The bare topology: nginx → minimal Node hop (proxy) → minimal Node server, each its own process. */
async function baseline(duration: number, connections: number, body: string, log: (s: string) => void, name = 'baseline: nginx → Node hop → Node server'): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-bench-nginx-'));
  const children: ChildProcess[] = [];
  const stopAll = () => Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(undefined) : (c.once('exit', resolve), c.kill('SIGTERM'))))));
  const forget = onInterrupt(stopAll);
  try {
    const backendPort = await freePort();
    const server = await startMinimal(['server', String(backendPort), body]);
    children.push(server);
    const hopPort = await freePort();
    const hop = await startMinimal(['hop', String(hopPort), String(backendPort)]);
    children.push(hop);
    const nginxPort = await freePort();
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const conf = renderNginxConf({
      listenPort: nginxPort,
      gateways: [`127.0.0.1:${hopPort}`],
      mode: 'local',
      pidFile: join(dir, 'nginx.pid'),
      errorLog: join(dir, 'error.log'),
      accessLog: 'off',
      tempDir: join(dir, 'tmp'),
      livePort: await freePort(),
    });
    writeFileSync(join(dir, 'nginx.conf'), conf);
    const bin = findBinary('nginx');
    if (!bin) throw new Error('nginx not found');
    const nginx = spawn(bin, nginxArgs(bin, join(dir, 'nginx.conf'), dir, join(dir, 'error.log')), { stdio: 'ignore' });
    children.push(nginx);
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://127.0.0.1:${nginxPort}/x`).then((r) => r.ok, () => false)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return await run(
      name,
      `http://127.0.0.1:${nginxPort}`,
      { nginx: [nginx.pid!], 'Node hop': [hop.pid!], 'Node server': [server.pid!] },
      { duration, connections, mix: [{ weight: 1, method: 'GET', paths: ['/top?region=GLOBAL&limit=10'] }] },
      log,
    );
  } finally {
    // Reaped before the next run, so their CPU time is not counted as the next run's load generator's.
    forget();
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

export const REGIONS = ['NA', 'EU', 'ASIA', GLOBAL];

/** Limits of the benchmark's stacks: high enough that no request is refused, no access log (every run measures the same thing). */
export const BENCH_LIMITS: Readonly<Record<string, string>> = Object.freeze({
  ACCESS_LOG: 'false',
  LOG_LEVEL: 'warn',
  USER_RATE_LIMIT_COUNT: '100000',
  REGION_RATE_LIMIT_COUNT: '10000000',
  READ_RATE_LIMIT_COUNT: '100000000',
  QUEUE_REJECT_LENGTH: '1000000',
});

/** The player p<i>: region by i (¼ each NA, EU, ASIA, GLOBAL-only). */
const player = (i: number) => ({ userId: `p${i}`, name: `Player ${i}`, region: REGIONS[i % 4]! });

/** Puts players p0…p<n-1> on the boards through the service's own write path (limits, script, outbox, relay), in-process, 64 at a time. */
export async function seedPlayers(deps: Deps, players: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < players) {
        const i = next++;
        await deps.writer.submit({ project: DEFAULT_PROJECT, board: deps.catalog.main(DEFAULT_PROJECT), player: player(i), byPlayer: false, value: Math.floor(Math.random() * 1_000_000), op: 'set', legacyOp: 'update', requestId: 'seed' });
      }
    }),
  );
}

/** A bearer token for each of the players p0…p<n-1>. */
export function playerTokens(players: number, secret: string, issuer: string): string[] {
  return Array.from({ length: players }, (_, i) => signToken(player(i), { secret, issuer, ttlSeconds: 3600 }));
}
const MAIN_WRITES_AGAIN = 'main-board writes again, before the board runs';

export interface HttpBenchOptions {
  quick: boolean;
  /** Runs to do (default all): baseline, top, reads, writes, mix, login, boards. */
  runs?: readonly string[];
  /** Write CPU profiles of the Node services here. */
  profileDir?: string;
  durationS?: number;
  /** Size of the stack (default 3 gateways, 3 replicas: what `npm start` runs). */
  gateways?: number;
  replicas?: number;
  connections?: number;
}

interface Topo {
  gateways: number;
  replicas: number;
}

interface Section {
  topo: Topo;
  results: RunResult[];
  bytesPerPlayer: number;
  lag: { p50: number; max: number };
  drainS: number;
  loginFlood: LoginFloodResult | undefined;
  boards: BoardsSetup | undefined;
}

/**
 * The HTTP benchmark on the topology of `npm start` (3 gateways, 3 replicas,
 * or the sizes asked for). Returns the markdown section.
 */
export async function benchHttp(log: (s: string) => void, opts: HttpBenchOptions): Promise<string> {
  const topos: Topo[] = [{ gateways: opts.gateways ?? 3, replicas: opts.replicas ?? 3 }];
  const sections: Section[] = [];
  for (const [i, topo] of topos.entries()) {
    log(`-- ${topo.gateways} api-gateway(s), ${topo.replicas} leaderboard-service replica(s) --`);
    // The baseline measures the machine, not the topology: once is enough.
    const runs = i === 0 ? opts.runs : (opts.runs ?? ['top', 'reads', 'writes', 'mix']).filter((r) => r !== 'baseline');
    sections.push(await benchTopology(log, { ...opts, runs }, topo));
  }
  return markdown(sections, { quick: opts.quick, players: playersFor(opts), connections: opts.connections ?? 32, duration: durationFor(opts) });
}

const playersFor = (o: HttpBenchOptions) => (o.quick ? 20_000 : 100_000);
const durationFor = (o: HttpBenchOptions) => o.durationS ?? (o.quick ? 5 : 15);

async function benchTopology(log: (s: string) => void, opts: HttpBenchOptions, topo: Topo): Promise<Section> {
  const players = playersFor(opts);
  const duration = durationFor(opts);
  const connections = opts.connections ?? 32;
  const dataDir = await mkdtemp(join(tmpdir(), 'lb-bench-stack-'));
  const bigLimits = BENCH_LIMITS;
  log(`starting the stack (data in ${dataDir})`);
  const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.profileDir)}`] : [];
  const stack = await startStack({ dataDir, ports: 'ephemeral', gateways: topo.gateways, replicas: topo.replicas, env: bigLimits, nginxAccessLog: false, log: () => {}, nodeArgs: { service: prof, gateway: prof, worker: prof } });
  const forget = onInterrupt(() => stack.stop().then(() => rm(dataDir, { recursive: true, force: true })));
  try {
    // Seed the boards through the service's own write path (limits, script, outbox, relay), in-process.
    const config = loadConfig({ TOPOLOGY: JSON.stringify(stack.topology), JWT_SECRET: stack.jwtSecret, ...bigLimits, PORT: '0' });
    const deps = await createDeps(config, { log: createLogger('bench-seed', 'error') });
    const memBefore = await Promise.all(deps.stores.all().map(async (s) => usedMemory(await s.client.info('memory'))));
    const t0 = performance.now();
    await seedPlayers(deps, players);
    log(`seeded ${fmt(players)} players in ${fmt((performance.now() - t0) / 1000, 1)} s`);
    await waitDrained(deps, 300_000);
    const memAfter = await Promise.all(deps.stores.all().map(async (s) => usedMemory(await s.client.info('memory'))));
    const bytesPerPlayer = (memAfter.reduce((a, b) => a + b, 0) - memBefore.reduce((a, b) => a + b, 0)) / players;
    log(`Redis memory per player: ${fmt(bytesPerPlayer)} bytes (all shards, after the queues drained)`);

    const groups = groupsOf(stack);
    const top10 = await (await fetch(`${stack.url}/top?region=GLOBAL&limit=10`)).text();
    const wanted = (name: string) => !opts.runs || opts.runs.includes(name);
    const results: RunResult[] = [];
    const redis = () => commandStats(deps);
    const runOn = (name: string, mix: MixEntry[]) => run(name, stack.url, groups, { duration, connections, mix, redis }, log);
    // Random players and boards, drawn up front (the load generator picks among them per request).
    const randomId = () => `p${Math.floor(Math.random() * players)}`;
    const reads: MixEntry[] = [
      { weight: 40, method: 'GET', paths: REGIONS.map((r) => `/top?region=${r}&limit=10`) },
      { weight: 30, method: 'GET', paths: Array.from({ length: 20_000 }, () => `/rank/${randomId()}?region=GLOBAL`) },
      { weight: 30, method: 'GET', paths: Array.from({ length: 20_000 }, () => `/around/${randomId()}?region=GLOBAL&range=5`) },
    ];
    const tokens = playerTokens(players, stack.jwtSecret, config.jwtIssuer);
    const write: MixEntry = { weight: 20, method: 'POST', paths: ['/score/add'], body: '{"delta":1}', tokens };
    // Warm-up, not recorded: the services have not served a request yet (JIT, connection pools).
    await runLoad({ url: stack.url, mix: [...reads, write], connections, durationS: Math.min(5, duration) });
    await waitDrained(deps, 300_000);

    if (wanted('baseline')) results.push(await baseline(duration, connections, top10, log));
    if (wanted('top')) {
      results.push(await runOn('top 10, GLOBAL', [{ weight: 1, method: 'GET', paths: ['/top?region=GLOBAL&limit=10'] }]));
      results.push(await runOn('top 10, regional', [{ weight: 1, method: 'GET', paths: ['/top?region=EU&limit=10'] }]));
    }
    if (wanted('reads')) results.push(await runOn('read mix (40% top 10, 30% rank, 30% around; regional and GLOBAL)', reads));

    let lagStats = { p50: NaN, max: NaN };
    let drainS = NaN;
    if (wanted('writes')) {
      const lag = sampleQueueLag(deps);
      results.push(await runOn('writes (POST /score/add)', [write]));
      lagStats = await lag.stop();
      const drainStart = performance.now();
      await waitDrained(deps, 300_000);
      drainS = (performance.now() - drainStart) / 1000;
      log(`queue lag during the write run: oldest waiting event p50 ${fmt(lagStats.p50)} ms, max ${fmt(lagStats.max)} ms; backlog drained ${fmt(drainS, 1)} s after the run`);
    }
    if (wanted('mix')) results.push(await runOn('mix (80% reads, 20% writes)', [...reads.map((e) => ({ ...e, weight: (e.weight * 80) / 100 })), write]));
    await waitDrained(deps, 300_000);
    let boards: BoardsSetup | undefined;
    if (wanted('boards')) {
      boards = await setupBoards({ url: stack.url, adminKeyFile: stack.adminKeyFile, deps, players, tokens, boards: opts.quick ? 100 : 1000, perBoard: opts.quick ? 200 : 1000, log });
      await waitDrained(deps, 600_000);
      // The VM's speed drifts within minutes (seeding alone takes minutes in a full run): the board runs are
      // measured against a baseline and a main-board write run taken again right before them.
      results.push(await baseline(duration, connections, top10, log, 'baseline, again before the board runs'));
      if (wanted('writes')) results.push(await runOn(`${MAIN_WRITES_AGAIN} (POST /score/add)`, [write]));
      await waitDrained(deps, 300_000);
      for (const r of boards.runs) results.push(await runOn(r.name, r.mix));
      await waitDrained(deps, 300_000);
    }
    let loginFlood: LoginFloodResult | undefined;
    if (wanted('login')) {
      const known = `flooded-${Date.now().toString(36)}`;
      const reg = await fetch(`${stack.url}/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user_id: known, name: 'Flooded', region: 'EU', password: 'correct horse battery' }),
      });
      if (reg.status !== 201) throw new Error(`login flood: registration answered ${reg.status}`);
      loginFlood = await benchLoginFlood(stack.url, known, log);
    }
    await deps.close();
    return { topo, results, bytesPerPlayer, lag: lagStats, drainS, loginFlood, boards };
  } finally {
    forget();
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function usedMemory(info: string): number {
  const m = /used_memory:(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}

export type Deps = Awaited<ReturnType<typeof createDeps>>;

async function backlog(deps: Deps): Promise<number> {
  let n = 0;
  for (const s of deps.stores.all()) {
    n += await s.client.hLen(s.keys.outbox);
    const c = await deps.relays.get(s.shard.id).queue.getJobCounts('waiting', 'active', 'delayed');
    n += c.waiting! + c.active! + c.delayed!;
  }
  return n;
}

export async function waitDrained(deps: Deps, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await backlog(deps)) > 0) {
    if (Date.now() > deadline) throw new Error('queues did not drain');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Samples the age of the oldest waiting job on each shard every 250 ms. */
function sampleQueueLag(deps: Deps): { stop(): Promise<{ p50: number; max: number }> } {
  const ages: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const r of deps.relays.all()) {
        const [job] = await r.queue.getJobs(['wait'], 0, 0, true);
        ages.push(job ? Date.now() - job.timestamp : 0);
      }
      await new Promise((res) => setTimeout(res, 250));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      ages.sort((a, b) => a - b);
      return { p50: pct(ages, 50), max: ages[ages.length - 1] ?? 0 };
    },
  };
}

function markdown(sections: Section[], m: { quick: boolean; players: number; connections: number; duration: number }): string {
  const base = sections[0]?.results.find((r) => r.name.startsWith('baseline'));
  const topoName = (t: Topo) => `${t.gateways} api-gateway${t.gateways > 1 ? 's' : ''} × ${t.replicas} replica${t.replicas > 1 ? 's' : ''}`;
  const total = (r: RunResult) => Object.values(r.cpuMsPerReq).reduce((a, b) => a + b, 0);
  const mark = (ok: boolean | undefined) => (ok === undefined ? '(not run)' : ok ? '✅' : '❌');
  const tables = sections.map((sec) => {
    const groups = [...new Set(sec.results.flatMap((r) => Object.keys(r.cpuMsPerReq)))];
    // Each run against the latest baseline before it (the board runs have their own, taken next to them).
    const baseOf = (r: RunResult) => sec.results.slice(0, sec.results.indexOf(r) + 1).filter((x) => x.name.startsWith('baseline')).pop() ?? base;
    const row = (r: RunResult) =>
      `| ${r.name} | ${fmt(r.rps)} | ${baseOf(r) ? `${fmt((100 * r.rps) / baseOf(r)!.rps)}%` : '—'} | ${fmt(r.p50, 1)} | ${fmt(r.p95, 1)} | ${fmt(r.p99, 1)} | ${r.errors + r.non2xx} |`;
    const cpuRow = (r: RunResult) =>
      `| ${r.name} | ${groups.map((g) => (r.cpuMsPerReq[g] === undefined ? '—' : r.cpuMsPerReq[g]!.toFixed(2))).join(' | ')} | ${total(r).toFixed(2)} | ${fmt(2000 / total(r))} |`;
    const find = (prefix: string) => sec.results.find((r) => r.name.startsWith(prefix));
    const ratio = (r: RunResult | undefined) => (r && base ? r.rps / base.rps : undefined);
    const targets: [string, RunResult[], (rs: RunResult[]) => string, (rs: RunResult[]) => boolean][] = [];
    const addRatio = (what: string, prefixes: string[], min: number) => {
      const rs = prefixes.map(find).filter((r): r is RunResult => r !== undefined);
      if (rs.length === prefixes.length && base)
        targets.push([`${what}: ≥ ${fmt(min * 100)}% of baseline`, rs, (x) => x.map((r) => `${fmt(100 * ratio(r)!)}%`).join(', '), (x) => x.every((r) => ratio(r)! >= min)]);
    };
    addRatio('top 10, GLOBAL and regional', ['top 10, GLOBAL', 'top 10, regional'], 0.85);
    addRatio('read mix', ['read mix'], 0.65);
    addRatio('writes', ['writes (POST'], 0.33);
    addRatio('80/20 mix', ['mix'], 0.5);
    const writes = find('writes (POST');
    const again = find(MAIN_WRITES_AGAIN);
    const bestWrites = find('writes to a best board');
    if (writes) targets.push(['CPU per write, all components: ≤ 1.2 ms', [writes], (x) => `${total(x[0]!).toFixed(2)} ms`, (x) => total(x[0]!) <= 1.2]);
    const measured = sec.results.filter((r) => !r.name.startsWith('baseline'));
    targets.push(['p99 of every run: < 50 ms', measured, (x) => `max ${fmt(Math.max(...x.map((r) => r.p99)), 1)} ms`, (x) => x.every((r) => r.p99 < 50)]);
    targets.push(['errors + non-2xx: 0', sec.results, (x) => String(x.reduce((a, r) => a + r.errors + r.non2xx, 0)), (x) => x.every((r) => r.errors + r.non2xx === 0)]);
    const redisRows = writes?.redisPerReq
      ? Object.entries(writes.redisPerReq)
          .sort((a, b) => b[1].usec - a[1].usec)
          .map(([cmd, v]) => `| ${cmd} | ${v.calls.toFixed(2)} | ${v.usec.toFixed(1)} |`)
          .join('\n')
      : '';
    return `### ${topoName(sec.topo)}

| run | req/s | vs baseline | p50 ms | p95 ms | p99 ms | errors + non-2xx |
|---|---|---|---|---|---|---|
${sec.results.map(row).join('\n')}

| target | measured | |
|---|---|---|
${targets.map(([what, rs, show, ok]) => `| ${what} | ${show(rs)} | ${mark(ok(rs))} |`).join('\n')}

- Redis memory per player: ${fmt(sec.bytesPerPlayer)} bytes (used_memory delta over all shards after seeding and draining: user hash, two board entries, name).${sec.boards ? `
- Named boards: ${fmt(sec.boards.boards)} boards × ${fmt(sec.boards.perBoard)} players seeded through the service's board writer; Redis memory per board entry ${fmt(sec.boards.bytesPerEntry)} bytes without metadata (two views for regional players, version), ${fmt(sec.boards.bytesPerEntryWithMetadata)} bytes with 200 bytes of metadata.${again && bestWrites ? ` Writes to the best board with metadata ran at ${fmt((100 * bestWrites.rps) / again.rps)}% of the main-board writes measured right before them (CPU per write ${total(bestWrites).toFixed(2)} vs ${total(again).toFixed(2)} ms).` : ''}` : ''}
- Queue lag during the write run: oldest waiting event p50 ${fmt(sec.lag.p50)} ms, max ${fmt(sec.lag.max)} ms; the backlog was empty ${fmt(sec.drainS, 1)} s after the run.
${redisRows ? `
Redis commands per write (all shards, \`INFO commandstats\` before and after the write run; scripts count once as EVALSHA plus each command they run):

| command | calls per write | Redis CPU µs per write |
|---|---|---|
${redisRows}
` : ''}
CPU milliseconds per request, by component (user + system time from /proc over the run, each process with its children; the load generator is ${loadTool()}):

| run | ${groups.join(' | ')} | total | 2 cores ÷ total, req/s |
|---|${groups.map(() => '---').join('|')}|---|---|
${sec.results.map(cpuRow).join('\n')}${sec.loginFlood ? `\n\n${loginFloodMarkdown(sec.loginFlood)}` : ''}`;
  });
  return `## HTTP through nginx (load-balanced mode)

Run: ${new Date().toISOString()} on ${machineLine()}${m.quick ? ' (--quick)' : ''}. The whole stack — nginx, the api-gateways, the leaderboard-service replicas, the worker-service, 3 Redis shards, Postgres (fsync on) — and the load generator (${loadTool()}, ${m.connections} connections, ${m.duration} s per run, each after an unrecorded ${WARM_UP_S} s warm-up with the same mix) share these 2 cores. ${fmt(m.players)} players on the boards (¼ each NA, EU, ASIA, GLOBAL-only). The baseline is nginx → a minimal Node hop → a minimal Node server, each its own process: the bare cost of the topology on this machine.

${tables.join('\n\n')}

Where the time goes and what would move it: see "Analysis" below this section (written by hand; the figures above are rewritten by every run).
`;
}
