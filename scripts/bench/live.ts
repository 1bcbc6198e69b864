/**
 * Live push (issue 12, "Bench"; issue 19's targets): thousands of SSE
 * watchers held by nginx (nchan) while paced writes change the watched tops.
 *
 * One stack as `npm start` runs it (3 api-gateways × 3 replicas, worker,
 * 3 Redis, Postgres, nginx; metrics on, the default: Prometheus and the
 * exporters run and scrape), seeded once. Then, in rounds:
 *   - closed-loop writes (wrk through nginx, `POST /score/add` by the hot
 *     players) with no watcher, and with the watchers open — in alternating
 *     order from round to round — for the throughput lost to fan-out;
 *   - with the watchers open, writes paced open-loop at a fixed rate by the
 *     same hot players, for the delivery delay (write acknowledged → first
 *     event on each watcher that shows it, or a later state);
 *   - the RSS of the replicas, gateways and nginx before and after opening
 *     the watchers, for the memory per stream.
 * The hot players are p0…p49, lifted above every seeded score, so every
 * view's top 10 is made of them and a write by one of its members changes it.
 * The watchers run in child processes (live-watchers.ts), each from its own
 * source address 127.0.0.2… (a few per address), so neither nginx's
 * in-flight limit per client address nor its LIVE_MAX_STREAMS_PER_IP (left
 * as configured) refuse them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GLOBAL } from '@lb/common/contracts';
import { createLogger, topologyJson } from '@lb/common/platform';
import { createDeps } from '@lb/leaderboard-service/deps';
import { loadConfig } from '@lb/leaderboard-service/config';
import { startStack, type Stack } from '../stack/stack.js';
import { BENCH_LIMITS, groupsOf, playerTokens, REGIONS, run, seedPlayers, waitDrained, WARM_UP_S, type Deps, type RunResult } from './http.js';
import { onInterrupt } from './interrupt.js';
import { loadTool, type MixEntry } from './load.js';
import type { Collected, FromChild, ToChild, WatcherSpec } from './live-watchers.js';
import { now } from './live-watchers.js';
import { fmt, machineLine, median, pct, spread } from './machine.js';

export interface LiveBenchOptions {
  quick: boolean;
  /** Rounds (default 3). */
  rounds?: number;
  /** Seconds per closed-loop write run (default 10, --quick 5). */
  durationS?: number;
  connections?: number;
  /** Watchers (default 2,000, --quick 500). */
  watchers?: number;
  /** CPU profiles of the replicas and gateways (node --cpu-prof), written here when they stop. */
  profileDir?: string;
}

/** Targets of issue 19 (issue 12 asked for a p99 under 500 ms). */
const MAX_P99_MS = 250;
const MAX_LOST = 0.1;
const PACED_RATE = 500;
const HOT = 50;
const LIMIT = 10;
/** Streams per source address: under nginx's default LIVE_MAX_STREAMS_PER_IP (20). */
const PER_ADDRESS = 10;
const WATCHER_PROCESSES = 2;
/** Where the watchers look: most at the GLOBAL top 10, the rest at the regional ones. */
const VIEWS: readonly { view: string; share: number }[] = [
  { view: GLOBAL, share: 0.7 },
  { view: 'NA', share: 0.1 },
  { view: 'EU', share: 0.1 },
  { view: 'ASIA', share: 0.1 },
];
/**
 * nginx holds a stream as one connection (its client's; nchan writes the
 * events): the shipped worker_connections must hold every watcher beside
 * the writes' two connections each.
 */
function nginxConnections(stack: Stack): number {
  const conf = readFileSync(join(stack.dataDir, 'nginx', 'nginx.conf'), 'utf8');
  const m = /worker_connections (\d+);/.exec(conf);
  if (!m) throw new Error('nginx.conf has no worker_connections');
  return Number(m[1]);
}

/** The hot players start here, above every seeded score (< 1,000,000). */
const HOT_BASE = 2_000_000;

const regionOf = (i: number) => REGIONS[i % 4]!;

// ------------------------------------------------------------ watchers ----

/** The watchers, spread over child processes. */
class Watchers {
  private readonly children: ChildProcess[] = [];
  private constructor() {}

  static async open(url: string, n: number, log: (s: string) => void): Promise<{ watchers: Watchers; ok: number; refused: Record<string, number> }> {
    const { hostname, port } = new URL(url);
    const specs: WatcherSpec[][] = Array.from({ length: WATCHER_PROCESSES }, () => []);
    let i = 0;
    for (const { view, share } of VIEWS) {
      const count = view === GLOBAL ? n - Math.round(n * (1 - share)) : Math.round(n * share);
      for (let k = 0; k < count; k++, i++) {
        const addr = Math.floor(i / PER_ADDRESS) + 2;
        specs[i % WATCHER_PROCESSES]!.push({ path: `/live?region=${view}&limit=${LIMIT}`, localAddress: `127.0.${Math.floor(addr / 256)}.${addr % 256}` });
      }
    }
    const w = new Watchers();
    for (let c = 0; c < WATCHER_PROCESSES; c++) {
      w.children.push(fork(join(import.meta.dirname, 'live-watchers.ts'), [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    const t0 = performance.now();
    const answers = await w.ask<{ type: 'opened'; ok: number; refused: Record<string, number> }>((c) => ({ type: 'open', host: hostname, port: Number(port), watchers: specs[c]!, concurrency: 50, timeoutMs: 15_000 }), 'opened');
    const refused: Record<string, number> = {};
    for (const a of answers) for (const [k, v] of Object.entries(a.refused)) refused[k] = (refused[k] ?? 0) + v;
    const ok = answers.reduce((s, a) => s + a.ok, 0);
    log(`opened ${fmt(ok)} watchers in ${fmt((performance.now() - t0) / 1000, 1)} s${Object.keys(refused).length ? `; refused ${JSON.stringify(refused)}` : ''}`);
    return { watchers: w, ok, refused };
  }

  private ask<T extends FromChild>(msg: (child: number) => ToChild, reply: T['type'], children = this.children): Promise<T[]> {
    return Promise.all(
      children.map(
        (c, i) =>
          new Promise<T>((resolve, reject) => {
            const onMsg = (m: FromChild) => {
              if (m.type !== reply) return;
              c.off('message', onMsg);
              c.off('exit', onExit);
              resolve(m as T);
            };
            const onExit = (code: number | null) => reject(new Error(`watcher process exited ${code} before "${reply}"`));
            c.on('message', onMsg);
            c.once('exit', onExit);
            c.send(msg(i));
          }),
      ),
    );
  }

  /** Every watcher's events since `from` (and the one before it), one id table. */
  async collect(from: number): Promise<Collected> {
    const parts = await this.ask<{ type: 'collected' } & Collected>(() => ({ type: 'collect', from }), 'collected');
    const out: Collected = { watchers: [], ids: [], data: [], cpuS: 0 };
    const index = new Map<string, number>();
    for (const p of parts) {
      const map = p.ids.map((id, k) => {
        let j = index.get(id);
        if (j === undefined) {
          j = out.ids.push(id) - 1;
          out.data.push(p.data[k]!);
          index.set(id, j);
        }
        return j;
      });
      for (const w of p.watchers) out.watchers.push({ ...w, ids: w.ids.map((k) => map[k]!) });
      out.cpuS += p.cpuS;
    }
    return out;
  }

  async close(): Promise<void> {
    const alive = this.children.filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.race([this.ask(() => ({ type: 'close' }), 'closed', alive).catch(() => {}), sleep(10_000)]);
    for (const c of alive) if (c.exitCode === null) c.kill('SIGTERM');
  }
}

// -------------------------------------------------------- paced writes ----

interface Ack {
  player: number;
  score: number;
  /** Epoch ms (see live-watchers.ts `now`). */
  at: number;
}

const CUT_OFF_MS = 10_000;

/**
 * `rate` writes a second for `seconds`, open-loop: each is sent when it is
 * due whatever the earlier ones are doing (a request that would start late
 * starts at once, and the lateness is reported), by a random hot player,
 * adding 1…20.
 */
async function pacedWrites(url: string, tokens: readonly string[], rate: number, seconds: number): Promise<{ acks: Ack[]; errors: number; late: number; achieved: number; p50: number; p99: number }> {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 200 });
  const acks: Ack[] = [];
  const latencies: number[] = [];
  let errors = 0;
  let late = 0;
  const total = Math.round(rate * seconds);
  const pending: Promise<void>[] = [];
  const open = new Set<ReturnType<typeof request>>();
  const one = (player: number) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({ delta: 1 + Math.floor(Math.random() * 20) });
      const sent = now();
      const req = request(
        { host: hostname, port: Number(port), method: 'POST', path: '/score/add', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${tokens[player]}` } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            const at = now();
            if (res.statusCode === 200) {
              acks.push({ player, score: (JSON.parse(text) as { score: number }).score, at });
              latencies.push(at - sent);
            } else errors++;
            resolve();
          });
        },
      );
      open.add(req);
      req.once('close', () => open.delete(req));
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const t0 = performance.now();
  for (let k = 0; k < total; k++) {
    const due = t0 + (k * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    else if (wait < -5) late++;
    pending.push(one(Math.floor(Math.random() * tokens.length)));
  }
  // An overloaded stack: what is not answered within CUT_OFF_MS of the last send is given up (counted as an error).
  await Promise.race([Promise.all(pending), sleep(CUT_OFF_MS)]);
  for (const req of open) req.destroy();
  await Promise.all(pending);
  const wall = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { acks: acks.sort((a, b) => a.at - b.at), errors, late, achieved: acks.length / wall, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

// ------------------------------------------------------------ delays ----

interface Row {
  user_id: string;
  score: number;
}

interface DelayResult {
  /** (watcher, change) pairs measured. */
  pairs: number;
  p50: number;
  p99: number;
  max: number;
  /** Pairs whose exact state (player, score) never reached that watcher in an event: coalesced into a later one. */
  coalesced: number;
  /** Pairs shown by an event that arrived before the write's answer (delay counted as 0). */
  beforeAck: number;
  /** Pairs never shown before the end of the run (not counted in the delays). */
  missed: number;
  /** Writes that changed at least one watched top, by view. */
  changes: Record<string, number>;
  /** Events per stream per second, over the run. */
  eventsPerStreamPerS: number;
}

/**
 * Which acknowledged writes changed each view's top 10: the hot players'
 * scores replayed in the order of the answers (writes to different players
 * in flight together may have been applied in the other order: the
 * borderline cases can be misjudged), a write changing a top when its
 * player is in that top right after it.
 */
function topChanges(acks: readonly Ack[], start: ReadonlyMap<number, number>): Map<string, Ack[]> {
  const scores = new Map(start);
  const out = new Map<string, Ack[]>(VIEWS.map((v) => [v.view, []]));
  for (const a of acks) {
    scores.set(a.player, Math.max(scores.get(a.player) ?? 0, a.score));
    for (const { view } of VIEWS) {
      if (view !== GLOBAL && regionOf(a.player) !== view) continue;
      let above = 0;
      for (const [p, s] of scores) if (p !== a.player && (view === GLOBAL || regionOf(p) === view) && s > a.score) above++;
      if (above < LIMIT) out.get(view)!.push(a);
    }
  }
  return out;
}

/**
 * Delay of each (watcher, change) pair: the first event on the watcher that
 * shows the write's state or a later one (the player's row with that score or
 * more; or the player gone from a full top whose rows all score more, pushed
 * out since) minus the write's answer time. States only move forward (scores
 * only grow), so along a stream "shows it" flips once: a binary search.
 * Watchers with the same sequence of events (the streams of one replica)
 * share the search.
 */
function delays(c: Collected, acks: readonly Ack[], start: ReadonlyMap<number, number>, from: number, to: number): DelayResult {
  const changes = topChanges(acks, start);
  const rows: (Map<string, number> | undefined)[] = c.data.map((d) => {
    try {
      return new Map((JSON.parse(d) as { rows: Row[] }).rows.map((r) => [r.user_id, r.score]));
    } catch {
      return undefined;
    }
  });
  const shows = (id: number, a: Ack, exact: boolean): boolean => {
    const r = rows[id];
    if (!r) return false;
    const s = r.get(`p${a.player}`);
    if (exact) return s === a.score;
    if (s !== undefined) return s >= a.score;
    if (r.size < LIMIT) return false;
    for (const v of r.values()) if (v <= a.score) return false;
    return true;
  };
  const all: number[] = [];
  let coalesced = 0;
  let beforeAck = 0;
  let missed = 0;
  let events = 0;
  let streams = 0;
  const byView = new Map<string, Collected['watchers']>();
  for (const w of c.watchers) {
    const view = new URL(w.path, 'http://x').searchParams.get('region')!;
    (byView.get(view) ?? byView.set(view, []).get(view)!).push(w);
    events += w.times.filter((t) => t >= from && t <= to).length;
    streams++;
  }
  for (const [view, ws] of byView) {
    const list = changes.get(view) ?? [];
    const groups = new Map<string, Collected['watchers']>();
    for (const w of ws) {
      const key = w.ids.join(',');
      (groups.get(key) ?? groups.set(key, []).get(key)!).push(w);
    }
    for (const g of groups.values()) {
      const ids = g[0]!.ids;
      for (const a of list) {
        let lo = 0;
        let hi = ids.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (shows(ids[mid]!, a, false)) hi = mid;
          else lo = mid + 1;
        }
        const exactly = ids.some((id) => shows(id, a, true));
        for (const w of g) {
          if (lo >= ids.length) {
            missed++;
            continue;
          }
          const d = w.times[lo]! - a.at;
          if (d < 0) beforeAck++;
          all.push(Math.max(0, d));
          if (!exactly) coalesced++;
        }
      }
    }
  }
  all.sort((a, b) => a - b);
  return {
    pairs: all.length + missed,
    p50: pct(all, 50),
    p99: pct(all, 99),
    max: all.at(-1) ?? NaN,
    coalesced,
    beforeAck,
    missed,
    changes: Object.fromEntries([...changes].map(([v, l]) => [v, l.length])),
    eventsPerStreamPerS: events / Math.max(1, streams) / ((to - from) / 1000),
  };
}

// ------------------------------------------------------------ memory ----

/** Child pids of each pid, from /proc. */
function childPids(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)!).push(Number(d));
    } catch {
      /* gone */
    }
  }
  return children;
}

/** VmRSS in KiB of each pid and all its descendants. */
function rssKiB(pids: readonly number[]): number {
  const children = childPids();
  let sum = 0;
  const stack = [...pids];
  while (stack.length) {
    const pid = stack.pop()!;
    try {
      sum += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone */
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return sum;
}

const MEMORY_KINDS = ['service', 'gateway', 'nginx'] as const;
type MemoryKind = (typeof MEMORY_KINDS)[number];

function memory(stack: Stack): Record<MemoryKind, number> {
  const out = {} as Record<MemoryKind, number>;
  for (const k of MEMORY_KINDS) out[k] = rssKiB(stack.components.filter((c) => c.kind === k && c.pid).map((c) => c.pid!));
  return out;
}

/** What nginx complained of in its log that limits streams (connections, limit_conn), counted. */
function nginxComplaints(stack: Stack): string {
  let text = '';
  try {
    text = readFileSync(stack.component('nginx').logFile, 'utf8');
  } catch {
    return '';
  }
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/(worker_connections are not enough|limiting connections by zone|Too many open files)/g)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  return [...counts].map(([k, v]) => `"${k}" ×${v}`).join(', ');
}

/** Live channels each replica publishes, from their /health. */
async function channelsPerReplica(stack: Stack): Promise<number[]> {
  return Promise.all(
    stack.serviceUrls.map(async (u) => {
      try {
        const h = (await (await fetch(`${u}/health`)).json()) as { live_channels?: { top?: number } };
        return h.live_channels?.top ?? NaN;
      } catch {
        return NaN;
      }
    }),
  );
}

/** nchan's subscribers and messages published so far (its /nchan_status). */
async function nchanCounts(stack: Stack): Promise<{ subscribers: number; published: number }> {
  const text = await (await fetch(`${stack.liveUrl}/nchan_status`)).text();
  const num = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { subscribers: num('subscribers'), published: num('total published messages') };
}

// ------------------------------------------------------------ the bench ----

interface Round {
  round: number;
  load1: number;
  idle: RunResult;
  watched: RunResult;
  opened: number;
  refused: Record<string, number>;
  /** Channels each replica publishes. */
  perReplica: number[];
  /** Subscribers nchan holds, once the watchers are open. */
  subscribers: number;
  /** Messages published to nchan per second during the closed-loop run with watchers (all channels). */
  publishedPerS: number;
  /** KiB per stream, by kind. */
  perStream: Record<MemoryKind, number>;
  /** Events delivered per second over all streams during the closed-loop run with watchers. */
  eventsPerS: number;
  /** At {@link PACED_RATE} (the issue's figure). */
  full: Paced;
  /** At half the closed-loop rate measured with the watchers this round: what the stack carries. */
  carried: Paced;
}

/** One paced run with the watchers open. */
interface Paced {
  rate: number;
  achieved: number;
  errors: number;
  /** Writes answered, p50 / p99 ms. */
  p50: number;
  p99: number;
  delay: DelayResult;
  /** Cores the watcher processes used. */
  watcherCores: number;
}

/** Writes paced at `rate` for `seconds` with the watchers open, and the delivery delays they give. */
async function pacedRun(stack: Stack, watchers: Watchers, tokens: readonly string[], rate: number, seconds: number, log: (s: string) => void): Promise<Paced> {
  // The state it starts from (read from a replica: nginx is busy with the streams).
  const start = new Map(
    await Promise.all(tokens.map(async (_t, i) => [i, ((await (await fetch(`${stack.serviceUrls[0]}/rank/p${i}?region=GLOBAL`)).json()) as { score: number }).score] as const)),
  );
  const from = now();
  const cpu0 = (await watchers.collect(Infinity)).cpuS;
  const w = await pacedWrites(stack.url, tokens, rate, seconds);
  await sleep(1500); // the events of the last writes
  const to = now();
  const c = await watchers.collect(from);
  const p: Paced = { rate, achieved: w.achieved, errors: w.errors, p50: w.p50, p99: w.p99, delay: delays(c, w.acks, start, from, to), watcherCores: (c.cpuS - cpu0) / ((to - from) / 1000) };
  const d = p.delay;
  log(
    `paced ${fmt(rate)} writes/s: achieved ${fmt(p.achieved)}/s (errors ${p.errors}, started late ${w.late}, answer p50 ${fmt(p.p50, 1)} ms p99 ${fmt(p.p99, 1)} ms); ` +
      `delivery delay p50 ${fmt(d.p50)} ms p99 ${fmt(d.p99)} ms max ${fmt(d.max)} ms over ${fmt(d.pairs)} pairs; coalesced ${fmt((100 * d.coalesced) / Math.max(1, d.pairs), 1)}%, missed ${d.missed}; ` +
      `${fmt(d.eventsPerStreamPerS, 2)} events/stream/s; watcher processes ${fmt(p.watcherCores, 2)} cores`,
  );
  return p;
}

export async function benchLive(log: (s: string) => void, opts: LiveBenchOptions): Promise<string> {
  const rounds = opts.rounds ?? 3;
  const duration = opts.durationS ?? (opts.quick ? 5 : 10);
  const pacedS = opts.quick ? 8 : 20;
  const connections = opts.connections ?? 32;
  const n = opts.watchers ?? (opts.quick ? 500 : 2000);
  const players = opts.quick ? 5_000 : 20_000;
  const dataDir = await mkdtemp(join(tmpdir(), 'lb-bench-live-'));
  log(`starting the stack (data in ${dataDir})`);
  const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.profileDir)}`] : [];
  const stack = await startStack({ dataDir, ports: 'ephemeral', gateways: 3, replicas: 3, env: BENCH_LIMITS, nginxAccessLog: false, log: () => {}, nodeArgs: { service: prof, gateway: prof } });
  const nginxConns = nginxConnections(stack);
  let watchers: Watchers | undefined;
  const forget = onInterrupt(() => (watchers?.close() ?? Promise.resolve()).then(() => stack.stop()).then(() => rm(dataDir, { recursive: true, force: true })));
  const results: Round[] = [];
  let nginxWarnings = '';
  try {
    if (nginxConns < n + 1000) throw new Error(`nginx worker_connections ${nginxConns} cannot hold ${n} streams beside the writes`);
    const config = loadConfig({ TOPOLOGY: topologyJson(stack.topology), JWT_SECRET: stack.jwtSecret, ...BENCH_LIMITS, PORT: '0', METRICS_PORT: '0' });
    const deps: Deps = await createDeps(config, { log: createLogger('bench-live', 'error') });
    try {
      await seedPlayers(deps, players);
      const tokens = playerTokens(HOT, stack.jwtSecret, config.jwtIssuer);
      // The hot players above everyone else, close together: small additions reorder them.
      await Promise.all(
        tokens.map(async (t, i) => {
          const res = await fetch(`${stack.url}/score/update`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` }, body: JSON.stringify({ score: HOT_BASE + Math.floor(Math.random() * 500) }) });
          if (res.status !== 200) throw new Error(`lifting p${i}: ${res.status} ${await res.text()}`);
        }),
      );
      await waitDrained(deps, 300_000);
      log(`seeded ${fmt(players)} players; hot players p0…p${HOT - 1} lifted to ${fmt(HOT_BASE)}+`);
      const groups = groupsOf(stack);
      const write: MixEntry[] = [{ weight: 1, method: 'POST', paths: ['/score/add'], body: '{"delta":1}', tokens }];
      const closedLoop = (name: string) => run(name, stack.url, groups, { duration, connections, mix: write }, log);
      for (let round = 1; round <= rounds; round++) {
        const load1 = loadavg()[0]!;
        log(`-- round ${round}/${rounds} (load average ${fmt(load1, 2)}) --`);
        const order = round % 2 === 1 ? (['idle', 'watched'] as const) : (['watched', 'idle'] as const);
        const r: Partial<Round> = { round, load1 };
        for (const which of order) {
          if (which === 'idle') {
            r.idle = await closedLoop(`round ${round}, 0 watchers, writes (POST /score/add, hot players)`);
            await waitDrained(deps, 300_000);
            continue;
          }
          await sleep(1000);
          const before = memory(stack);
          const opened = await Watchers.open(stack.url, n, log);
          watchers = opened.watchers;
          try {
            await sleep(2000);
            const after = memory(stack);
            r.opened = opened.ok;
            r.refused = opened.refused;
            r.perReplica = await channelsPerReplica(stack);
            r.subscribers = (await nchanCounts(stack)).subscribers;
            r.perStream = Object.fromEntries(MEMORY_KINDS.map((k) => [k, (after[k] - before[k]) / Math.max(1, opened.ok)])) as Record<MemoryKind, number>;
            log(`nchan holds ${fmt(r.subscribers)} subscribers; channels published per replica ${r.perReplica.join(', ')}; RSS per stream ${MEMORY_KINDS.map((k) => `${k} ${fmt(r.perStream![k], 1)} KiB`).join(', ')}`);
            let t0 = 0;
            let t1 = 0;
            let published0 = 0;
            let published1 = 0;
            const window = {
              start: async () => {
                t0 = now();
                published0 = (await nchanCounts(stack)).published;
              },
              end: async () => {
                t1 = now();
                published1 = (await nchanCounts(stack)).published;
              },
            };
            r.watched = await run(`round ${round}, ${fmt(opened.ok)} watchers, writes (POST /score/add, hot players)`, stack.url, groups, { duration, connections, mix: write, window }, log);
            r.publishedPerS = (published1 - published0) / ((t1 - t0) / 1000);
            r.eventsPerS = (await watchers.collect(t0)).watchers.reduce((a, w) => a + w.times.filter((t) => t >= t0 && t <= t1).length, 0) / ((t1 - t0) / 1000);
            await waitDrained(deps, 300_000);
            r.full = await pacedRun(stack, watchers, tokens, PACED_RATE, pacedS, log);
            await waitDrained(deps, 300_000);
            r.carried = await pacedRun(stack, watchers, tokens, Math.max(10, Math.round(r.watched.rps / 2)), pacedS, log);
          } finally {
            await watchers.close();
            watchers = undefined;
          }
          await waitDrained(deps, 300_000);
        }
        results.push(r as Round);
      }
    } finally {
      await deps.close();
    }
    nginxWarnings = nginxComplaints(stack);
    if (nginxWarnings) log(`nginx: ${nginxWarnings}`);
  } finally {
    forget();
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  return markdown(results, { quick: opts.quick, n, duration, connections, pacedS, players, nginxWarnings, nginxConns });
}

// ------------------------------------------------------------ markdown ----

const FANOUT_GROUPS = ['leaderboard-service', 'api-gateway', 'nginx'];

/** Extra CPU µs per event delivered to one stream, of the given components: the watched run's CPU beyond its writes' cost at the idle run's rate. */
function perEventUs(r: Round, groups: readonly string[]): number {
  const w = r.watched;
  const extraMs = groups.reduce((a, g) => a + ((w.cpuMsPerReq[g] ?? 0) - (r.idle.cpuMsPerReq[g] ?? 0)) * w.requests, 0);
  return (1000 * extraMs) / (r.eventsPerS * (w.requests / w.rps));
}

/** The table rows of one kind of paced run. */
function pacedRows(rs: readonly Round[], key: 'full' | 'carried', label: string): string {
  const ps = rs.map((r) => r[key]);
  const share = (f: (d: DelayResult) => number) => ps.map((p) => (100 * f(p.delay)) / Math.max(1, p.delay.pairs));
  const p99s = ps.map((p) => p.delay.p99);
  const changes = VIEWS.map((v) => `${v.view} ${spread(ps.map((p) => p.delay.changes[v.view] ?? 0))}`).join(', ');
  return `| **paced ${label}**: writes/s asked → achieved | ${spread(ps.map((p) => p.rate))} → ${spread(ps.map((p) => p.achieved))} (errors ${ps.reduce((a, p) => a + p.errors, 0)}) | — |
| … write answered, p50 / p99 | ${spread(ps.map((p) => p.p50), 0, ' ms')} / ${spread(ps.map((p) => p.p99), 0, ' ms')} | — |
| … writes that changed a watched top, by view | ${changes} | — |
| … (watcher, change) pairs | ${spread(ps.map((p) => p.delay.pairs))} | — |
| … delivery delay p50 | ${spread(ps.map((p) => p.delay.p50), 0, ' ms')} | — |
| … delivery delay p99 | ${spread(p99s, 0, ' ms')} | < ${MAX_P99_MS} ms ${ok(median(p99s) < MAX_P99_MS)} |
| … delivery delay max | ${spread(ps.map((p) => p.delay.max), 0, ' ms')} | — |
| … pairs coalesced into a later event | ${spread(share((d) => d.coalesced), 1, '%')} | — |
| … pairs shown before the write's answer arrived (counted 0 ms) | ${spread(share((d) => d.beforeAck), 1, '%')} | — |
| … pairs never shown by the end of the run | ${spread(share((d) => d.missed), 2, '%')} | 0 |
| … events per stream per second | ${spread(ps.map((p) => p.delay.eventsPerStreamPerS), 2)} | ≤ 5 |`;
}

const ok = (good: boolean) => (good ? '✅' : '❌');
const cpuTotal = (r: RunResult) => Object.values(r.cpuMsPerReq).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

function markdown(rs: readonly Round[], m: { quick: boolean; n: number; duration: number; connections: number; pacedS: number; players: number; nginxWarnings: string; nginxConns: number }): string {
  const lost = rs.map((r) => 1 - r.watched.rps / r.idle.rps);
  // Round 1 opens the streams into fresh processes; later rounds reuse the memory earlier streams freed (RSS does not shrink), so they read low.
  const kib = (f: (r: Round) => number) => `${fmt(f(rs[0]!), 1)} KiB (later rounds: ${rs.slice(1).map((r) => fmt(f(r), 1)).join(', ') || '—'})`;
  const groups = [...new Set(rs.flatMap((r) => [...Object.keys(r.idle.cpuMsPerReq), ...Object.keys(r.watched.cpuMsPerReq)]))];
  const cpuRow = (label: string, f: (r: Round) => RunResult) =>
    `| ${label} | ${groups.map((g) => median(rs.map((r) => f(r).cpuMsPerReq[g] ?? NaN)).toFixed(3)).join(' | ')} | ${median(rs.map((r) => cpuTotal(f(r)))).toFixed(3)} |`;
  const refused = rs.flatMap((r) => Object.entries(r.refused).map(([k, v]) => `${k}×${v} (round ${r.round})`));
  return `## Live push (SSE fan-out)

Run: ${new Date().toISOString()} on ${machineLine()}${m.quick ? ' (--quick)' : ''}; 1-minute load average at the start of each round: ${rs.map((r) => fmt(r.load1, 2)).join(', ')} (this VM is shared). One stack as \`npm start\` runs it — 3 api-gateways × 3 replicas, worker, 3 Redis, Postgres (fsync on), nginx, and metrics on (the default: every service serves /metrics, Prometheus and the exporters run and scrape) — seeded with ${fmt(m.players)} players; the hot players p0…p${HOT - 1} (¼ each NA, EU, ASIA, GLOBAL-only) start at ${fmt(HOT_BASE)}–${fmt(HOT_BASE + 500)}, above every other score, so each watched top 10 is made of them. ${rs.length} rounds; figures are median (min–max) over the rounds.

- Watchers: ${fmt(m.n)} SSE streams through nginx (\`GET /live?region=…&limit=${LIMIT}\`: ${VIEWS.map((v) => `${fmt(v.share * 100)}% ${v.view}`).join(', ')}), opened in ${WATCHER_PROCESSES} child processes of the bench (node:http, a socket each, a streaming parser that keeps each event's arrival time and id), ${PER_ADDRESS} per source address from 127.0.0.2 on: nginx's in-flight limit per address and its LIVE_MAX_STREAMS_PER_IP stay as configured.
- Fan-out: nginx holds the streams (nchan) and writes every event; the replicas publish each changed channel once (one publication per channel per change across the 3 replicas), so a change costs the replicas the same whatever the number of watchers. nginx worker_connections as shipped (${fmt(m.nginxConns)}): a stream holds one connection.
- Delivery delay: writes paced open-loop for ${m.pacedS} s, at ${fmt(PACED_RATE)}/s (the issue's figure) and again at half the closed-loop rate measured with the watchers in that round (a rate the stack carries) (\`POST /score/add\`, a random hot player, +1…20) with the watchers open. A write changed a watched top when, replaying the answers' scores in answer order, its player is in that view's top ${LIMIT} right after it. Its delay on a watcher = arrival of the first event on that watcher showing that state or a later one (the player's row with that score or more, or the player pushed out of a full top whose rows all score more) − the moment the write's answer arrived; an event that arrived before the answer counts 0. "Coalesced": the exact (player, score) never reached that watcher in an event (a later event carried it along, ≤ 5 events/s per stream).
- Memory per stream: VmRSS (/proc/<pid>/status, each process with its children) of the replicas, the gateways and nginx 1 s before and 2 s after opening the watchers, divided by the watchers opened.
- Throughput lost to fan-out: closed-loop writes (${loadTool()}, ${m.connections} connections, \`POST /score/add\` +1 by the hot players, so every write moves the tops) for ${m.duration} s after an unrecorded ${WARM_UP_S} s warm-up, with no watcher and with the watchers open, in alternating order from round to round; lost = 1 − with/without within a round.

| measure | figure | target |
|---|---|---|
| watchers open | ${spread(rs.map((r) => r.opened))} of ${fmt(m.n)}${refused.length ? `; refused: ${refused.join(', ')}` : ''} | — |
| … subscribers nchan holds (its /nchan_status) | ${spread(rs.map((r) => r.subscribers))} | — |
| channels published per replica (/health live_channels.top) | ${rs.map((r) => r.perReplica.join(' / ')).join('; ')} | — |
| messages published to nchan per second, closed-loop run with watchers (all channels, all replicas) | ${spread(rs.map((r) => r.publishedPerS), 1)} | ≤ 5 per channel |
${pacedRows(rs, 'full', `at ${fmt(PACED_RATE)} writes/s`)}
${pacedRows(rs, 'carried', 'at half the closed-loop rate with watchers (what the stack carries)')}
| RSS per stream, first opening (round 1): replicas (all 3) | ${kib((r) => r.perStream.service)} | — |
| … gateways (all 3) | ${kib((r) => r.perStream.gateway)} | — |
| … nginx | ${kib((r) => r.perStream.nginx)} | — |
| … total | ${kib((r) => MEMORY_KINDS.reduce((a, k) => a + r.perStream[k], 0))} | — |
| closed-loop writes/s, 0 watchers | ${spread(rs.map((r) => r.idle.rps))} (p99 ${spread(rs.map((r) => r.idle.p99), 1, ' ms')}) | — |
| closed-loop writes/s, watchers open | ${spread(rs.map((r) => r.watched.rps))} (p99 ${spread(rs.map((r) => r.watched.p99), 1, ' ms')}) | — |
| throughput lost to fan-out | ${spread(lost.map((x) => 100 * x), 1, '%')} | < ${MAX_LOST * 100}% ${ok(median(lost) < MAX_LOST)} |
| errors + non-2xx in the closed-loop runs | ${rs.reduce((a, r) => a + r.idle.errors + r.idle.non2xx + r.watched.errors + r.watched.non2xx, 0)} | 0 |
| nginx's log: connection limits hit | ${m.nginxWarnings || 'none'} | none |
| CPU of the bench's watcher processes during the paced runs | ${spread(rs.flatMap((r) => [r.full.watcherCores, r.carried.watcherCores]), 2, ' cores')} | — |

CPU per delivered stream-event in the closed-loop run with watchers, by component: (CPU of the run − the same number of writes at the 0-watcher run's CPU per write) ÷ events the watchers received — an upper bound: the writes' own cost also grows when the CPUs are contended (${spread(rs.map((r) => r.eventsPerS))} events/s over all streams), µs, median over the rounds:

| ${FANOUT_GROUPS.join(' | ')} | these three |
|${FANOUT_GROUPS.map(() => '---').join('|')}|---|
| ${FANOUT_GROUPS.map((g) => fmt(median(rs.map((r) => perEventUs(r, [g]))))).join(' | ')} | ${fmt(median(rs.map((r) => perEventUs(r, FANOUT_GROUPS))))} |

CPU milliseconds per write in the closed-loop runs, by component (median over the rounds; user + system from /proc, each process with its children; the load generator is ${loadTool()}):

| run | ${groups.join(' | ')} | total |
|---|${groups.map(() => '---').join('|')}|---|
${cpuRow('0 watchers', (r) => r.idle)}
${cpuRow(`${fmt(m.n)} watchers`, (r) => r.watched)}

Where the time goes when a target is missed, and the levers: see "Live push: analysis" below this section (written by hand; the figures above are rewritten by every run).`;
}
