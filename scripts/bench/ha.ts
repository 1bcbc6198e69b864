/**
 * Redis high availability (`npm run bench -- --only ha`): what a shard's
 * replica and Sentinels cost the write path, and how long writes fail when a
 * primary dies.
 *
 * 1. Cost. Two stacks are started and seeded once, one as `npm start` runs
 *    it (each shard a primary + a replica, three Sentinels; every write
 *    script answered only once its turn's `WAIT 1` counts the replica) and
 *    one with `redisReplicas: false` (one plain redis-server per shard).
 *    Both stay up for the whole section, but only one is loaded at a time:
 *    the idle one's CPU over each measured run is read from /proc and
 *    reported. In each round (--rounds N, default 3) every load shape (the
 *    http bench's writes, POST /score/add, and its 80/20 mix) runs on both
 *    stacks back to back, the first stack alternating between rounds; the
 *    ratios replicated / no-replicas come from those adjacent pairs, median
 *    (min–max) over the rounds.
 * 2. Failover. On the replicated stack alone (the other stopped), a steady
 *    keyed write load to NA, EU and ASIA (plain fetch loops: every answer is
 *    seen; a 503 is retried with the same Idempotency-Key), and NA's current
 *    primary killed with SIGKILL, again and again (≥ 5, --quick 2); the
 *    killed node is restarted by the stack's supervisor and rejoins as the
 *    promoted node's replica before the next kill. Per kill: the window from
 *    the kill to the first acknowledged NA write sent after it, and where it
 *    goes (the Sentinels' +sdown/+odown/+switch-master from their logs, the
 *    supervisor's restart, the old primary an in-sync replica again, the
 *    promoted primary counting it); NA's 503s (all must be clean
 *    `unavailable` with Retry-After) and any other answer in EU/ASIA (must be
 *    none). Then, under the same load, NA's current primary frozen with
 *    SIGSTOP (--hangs N, default 3, --quick 1), measured the same way: the
 *    Sentinels fail it over, the supervisor SIGKILLs it once it has not
 *    answered PING for REDIS_HUNG_MS ("hung; killing it" in the stack's log)
 *    and restarts it as the promoted node's replica. A second failover in an
 *    episode (two +switch-master pairs) is reported. After the load: every
 *    acknowledged write is in Redis exactly once, and, once the queues drain,
 *    in Postgres.
 */
import { readFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, signToken, topologyJson } from '@lb/common/platform';
import { createDeps } from '@lb/leaderboard-service/deps';
import { loadConfig } from '@lb/leaderboard-service/config';
import { StackStores } from '../../test/support/e2e.js';
import { sentinelMasterName } from '../stack/options.js';
import { DEFAULT_RESTART_POLICY, REDIS_HUNG_MS, startStack, type Stack } from '../stack/stack.js';
import { infoField, redisCommand, SENTINEL_DEFAULTS } from '@lb/devtools/infra';
import { BENCH_LIMITS, cpuByGroup, groupsOf, playerTokens, REGIONS, run, seedPlayers, waitDrained, WARM_UP_S, type RunResult } from './http.js';
import { onInterrupt } from './interrupt.js';
import { loadTool, type MixEntry } from './load.js';
import { fmt, machineLine, median, spread } from './machine.js';

export interface HaBenchOptions {
  quick: boolean;
  /** Rounds of (no-replicas, replicated) pairs per shape (default 3). */
  rounds?: number;
  /** Seconds per measured run (default 15, --quick 5). */
  durationS?: number;
  connections?: number;
  /** Primary kills (default 5, --quick 2). */
  kills?: number;
  /** Primary hangs (SIGSTOP) after the kills (default 3, --quick 1). */
  hangs?: number;
}

/** The failover target: writes succeed again within this long after the primary dies. */
const TARGET_WINDOW_MS = 5000;
/** Keyed-write lanes per region in the failover load, and each lane's pause between acknowledged writes. */
const LANES_PER_REGION = 4;
const LANE_PAUSE_MS = 20;
/** A lane's pause before retrying a key after a 503 or no answer. */
const RETRY_MS = 50;
/** Longer than nginx's proxy timeouts: past this a request counts as unanswered. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Bounds of one kill's wait for a promotion, a first ack, a rejoin. */
const STEP_MS = 60_000;
/** The load is steady again when NA had this long of answers, all 200. */
const STEADY_MS = 2000;
const FAILOVER_REGIONS = ['NA', 'EU', 'ASIA'] as const;

interface Variant {
  readonly key: 'plain' | 'replicated';
  readonly label: string;
  stack: Stack;
  dataDir: string;
  tokens: string[];
}

interface Pair {
  plain: RunResult;
  replicated: RunResult;
  /** CPU share of the machine (% of all cores) the idle stack used during each run. */
  idlePct: { plain: number; replicated: number };
  first: Variant['key'];
}

interface ShapeRounds {
  key: string;
  name: string;
  mix: MixEntry[];
  pairs: Pair[];
}

/** One NA answer of the failover load. */
interface Answer {
  sent: number;
  done: number;
  status: number;
  clean: boolean;
  /** A 503's `message`. */
  msg?: string;
}

interface KillResult {
  /** SIGKILL: a kill; SIGSTOP: a hang (the supervisor kills the frozen node after REDIS_HUNG_MS without a PONG). */
  signal: 'SIGKILL' | 'SIGSTOP';
  node: string;
  promoted: string | undefined;
  /** Every time in ms after the kill. */
  firstAckMs: number;
  sdownMs: number;
  odownMs: number;
  switchLogMs: number;
  /** The Sentinels' answer (`get-master-addr-by-name`, polled every ~50 ms) names the promoted node. */
  switchPollMs: number;
  /** The supervisor's restarted node came up healthy (ComponentInfo has its new pid). */
  restartedMs: number;
  /** From the stack's log: a hang's "hung; killing it" (NaN for a kill), the supervisor seeing the death, and the restart it scheduled (its backoff). */
  hungKilledMs: number;
  deathSeenMs: number;
  restartDelayMs: number;
  /** +switch-master lines for NA's master in the episode, counted once per distinct new address and second (more than one: a second failover). */
  switches: string[];
  electedMs: number;
  promotedMs: number;
  /** From the killed node's own log: its new process starting, ready for connections, synced with the promoted node. */
  processStartMs: number;
  readyMs: number;
  syncedMs: number;
  sync: 'full' | 'partial' | '?';
  loadLine?: string;
  /** The killed node answers INFO replication as a replica with its link up. */
  rejoinedMs: number;
  /** The promoted primary counts a connected replica (INFO connected_slaves, from the sync's start). */
  replicaCountedMs: number;
  /** The promoted primary's min_slaves_good_slaves ≥ 1: a replica that acknowledged within min-replicas-max-lag, what min-replicas-to-write needs. */
  goodReplicaMs: number;
  /** NA answers after the kill that were not 200, clean 503 and other. */
  na503: number;
  naBad: string[];
  /** NA's non-200 answers of the episode by message (digits as N), with when they came. */
  messages: string[];
  /** NA requests in flight at the kill, and the longest any took. */
  inFlightAtKill: number;
  slowestMs: number;
  /** Duration of the episode (kill → steady again), and the acknowledged NA writes in it. */
  episodeMs: number;
}

interface FailoverResult {
  kills: KillResult[];
  hangs: KillResult[];
  /** The pause under load between the kills and the hangs (the restart window emptying). */
  hangPauseMs: number;
  writes: { acked: number; requests: number; perRegion: Record<string, { ok: number; unavailable: number; bad: string[] }> };
  lostOrDoubled: string[];
  postgresMismatches: number;
  postgresChecked: boolean;
  loadSeconds: number;
}

export async function benchHa(log: (s: string) => void, opts: HaBenchOptions): Promise<string> {
  const rounds = Math.max(1, opts.rounds ?? 3);
  const duration = opts.durationS ?? (opts.quick ? 5 : 15);
  const connections = opts.connections ?? 32;
  const players = opts.quick ? 5_000 : 20_000;
  const kills = Math.max(1, opts.kills ?? (opts.quick ? 2 : 5));
  const hangs = Math.max(0, opts.hangs ?? (opts.quick ? 1 : 3));
  const variants: Variant[] = [];
  const stackLog: { t: number; line: string }[] = [];
  const stopAll = () => Promise.allSettled(variants.map((v) => v.stack.stop().then(() => rm(v.dataDir, { recursive: true, force: true }))));
  const forget = onInterrupt(stopAll);
  try {
    for (const key of ['plain', 'replicated'] as const) {
      const dataDir = await mkdtemp(join(tmpdir(), `lb-bench-ha-${key}-`));
      log(`starting the ${key === 'plain' ? '--no-replicas' : 'replicated'} stack (data in ${dataDir})`);
      const stack = await startStack({
        dataDir,
        ports: 'ephemeral',
        redisReplicas: key === 'replicated',
        env: BENCH_LIMITS,
        nginxAccessLog: false,
        // Both stacks stay up; no exporters and no Prometheus, so the idle one costs little.
        metrics: false,
        log: (line) => {
          if (key === 'replicated') stackLog.push({ t: performance.now(), line });
        },
      });
      const v: Variant = { key, label: key === 'plain' ? 'no replicas' : 'replica + WAIT', stack, dataDir, tokens: [] };
      variants.push(v);
      const config = loadConfig({ TOPOLOGY: topologyJson(stack.topology), JWT_SECRET: stack.jwtSecret, ...BENCH_LIMITS, PORT: '0' });
      const deps = await createDeps(config, { log: createLogger('bench-seed', 'error') });
      try {
        const t0 = performance.now();
        await seedPlayers(deps, players);
        await waitDrained(deps, 300_000);
        log(`seeded ${fmt(players)} players in ${fmt((performance.now() - t0) / 1000, 1)} s`);
      } finally {
        await deps.close();
      }
      v.tokens = playerTokens(players, stack.jwtSecret, config.jwtIssuer);
    }
    const [plain, replicated] = variants as [Variant, Variant];
    const stores = new Map<Variant, StackStores>();
    for (const v of variants) stores.set(v, await StackStores.open(v.stack.topology));

    const randomId = () => `p${Math.floor(Math.random() * players)}`;
    const reads: MixEntry[] = [
      { weight: 40, method: 'GET', paths: REGIONS.map((r) => `/top?region=${r}&limit=10`) },
      { weight: 30, method: 'GET', paths: Array.from({ length: 20_000 }, () => `/rank/${randomId()}?region=GLOBAL`) },
      { weight: 30, method: 'GET', paths: Array.from({ length: 20_000 }, () => `/around/${randomId()}?region=GLOBAL&range=5`) },
    ];
    const write = (v: Variant): MixEntry => ({ weight: 20, method: 'POST', paths: ['/score/add'], body: '{"delta":1}', tokens: v.tokens });
    const shapes: ShapeRounds[] = [
      { key: 'writes', name: 'writes (POST /score/add)', mix: [], pairs: [] },
      { key: 'reads', name: 'read mix (40% top 10, 30% rank, 30% around), no writes', mix: [], pairs: [] },
      { key: 'mix', name: 'mix (80% reads, 20% writes)', mix: [], pairs: [] },
    ];
    const mixFor = (sh: ShapeRounds, v: Variant): MixEntry[] =>
      sh.key === 'writes' ? [write(v)] : sh.key === 'reads' ? reads : [...reads.map((e) => ({ ...e, weight: (e.weight * 80) / 100 })), write(v)];
    const drained = async (v: Variant) => {
      const deadline = Date.now() + 300_000;
      while (!(await stores.get(v)!.drained())) {
        if (Date.now() > deadline) throw new Error(`${v.key}: queues did not drain`);
        await sleep(200);
      }
    };
    const cores = (await import('node:os')).cpus().length;
    const runOn = async (sh: ShapeRounds, v: Variant): Promise<{ r: RunResult; idlePct: number }> => {
      const idle = variants.find((x) => x !== v)!;
      const idleGroups = groupsOf(idle.stack);
      let before = 0;
      let t0 = 0;
      let idlePct = NaN;
      const sum = (g: Record<string, number>) => Object.values(g).reduce((a, b) => a + b, 0);
      const r = await run(`${sh.name}, ${v.label}`, v.stack.url, groupsOf(v.stack), {
        duration,
        connections,
        mix: mixFor(sh, v),
        window: {
          start: () => {
            before = sum(cpuByGroup(idleGroups));
            t0 = performance.now();
          },
          end: () => {
            idlePct = (100 * (sum(cpuByGroup(idleGroups)) - before)) / (((performance.now() - t0) / 1000) * cores);
          },
        },
      }, log);
      await drained(v);
      return { r, idlePct };
    };

    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [plain, replicated] : [replicated, plain];
      log(`-- round ${round}/${rounds}: ${order.map((v) => v.label).join(', then ')} --`);
      for (const sh of shapes) {
        const got = new Map<Variant, { r: RunResult; idlePct: number }>();
        for (const v of order) got.set(v, await runOn(sh, v));
        sh.pairs.push({
          plain: got.get(plain)!.r,
          replicated: got.get(replicated)!.r,
          idlePct: { plain: got.get(plain)!.idlePct, replicated: got.get(replicated)!.idlePct },
          first: order[0]!.key,
        });
        const p = sh.pairs.at(-1)!;
        log(`${sh.name}: replicated / no-replicas ${fmt((100 * p.replicated.rps) / p.plain.rps)}% req/s, p99 ×${fmt(p.replicated.p99 / p.plain.p99, 2)}`);
      }
    }

    // The failover runs on the replicated stack alone.
    await stores.get(plain)!.close();
    stores.delete(plain);
    await plain.stack.stop();
    await rm(plain.dataDir, { recursive: true, force: true });
    variants.splice(variants.indexOf(plain), 1);
    log(`-- failover: NA primary killed (${kills}×), then frozen (${hangs}×), under a keyed write load --`);
    const failover = await benchFailover(replicated.stack, stores.get(replicated)!, stackLog, kills, hangs, log);
    await stores.get(replicated)!.close();

    const md = markdown({ shapes, rounds, duration, connections, players, quick: opts.quick, failover, cores });
    log(md);
    return md;
  } finally {
    forget();
    await stopAll();
  }
}

// ----------------------------------------------------------- failover ----

interface LanePlayer {
  userId: string;
  region: (typeof FAILOVER_REGIONS)[number];
  token: string;
  acked: number;
  seq: number;
}

async function benchFailover(stack: Stack, stores: StackStores, stackLog: { t: number; line: string }[], kills: number, hangs: number, log: (s: string) => void): Promise<FailoverResult> {
  const stamp = Date.now().toString(36);
  const issuer = loadConfig({ TOPOLOGY: topologyJson(stack.topology), JWT_SECRET: stack.jwtSecret, PORT: '0' }).jwtIssuer;
  const players: LanePlayer[] = FAILOVER_REGIONS.flatMap((region) =>
    Array.from({ length: LANES_PER_REGION }, (_, i) => {
      const userId = `ha-${region.toLowerCase()}-${i}-${stamp}`;
      return { userId, region, token: signToken({ userId, name: `HA ${region} ${i}`, region }, { secret: stack.jwtSecret, issuer, ttlSeconds: 3600 }), acked: 0, seq: 0 };
    }),
  );
  const perRegion = Object.fromEntries(FAILOVER_REGIONS.map((r) => [r, { ok: 0, unavailable: 0, bad: [] as string[] }]));
  const naAnswers: Answer[] = [];
  /** NA requests in flight: their send times. */
  const naInFlight = new Set<{ sent: number }>();
  let requests = 0;
  let stop = false;
  const url = `${stack.url}/score/add`;

  const lane = async (p: LanePlayer): Promise<void> => {
    while (!stop) {
      const key = `${p.userId}-${++p.seq}`;
      // A key is sent until it is acknowledged: after a 503 or no answer (in doubt or not) the same key again.
      for (let tries = 0; ; tries++) {
        const flight = { sent: performance.now() };
        if (p.region === 'NA') naInFlight.add(flight);
        let status = 0;
        let clean = false;
        let what = '';
        let msg: string | undefined;
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${p.token}`, 'idempotency-key': key },
            body: '{"delta":1}',
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          const text = await res.text();
          status = res.status;
          if (status !== 200) {
            let body: { error?: string; message?: string } | undefined;
            try {
              body = JSON.parse(text) as { error?: string; message?: string };
            } catch {
              /* not JSON */
            }
            clean = status === 503 && body?.error === 'unavailable' && Number(res.headers.get('retry-after')) >= 1;
            if (!clean) what = `${status} ${text.slice(0, 200)} (retry-after ${res.headers.get('retry-after')})`;
            msg = body?.message?.replace(/\d+/g, 'N');
          }
        } catch (e) {
          what = `no answer: ${(e as Error).message}`;
        }
        const done = performance.now();
        requests++;
        naInFlight.delete(flight);
        const t = perRegion[p.region]!;
        if (p.region === 'NA') naAnswers.push({ sent: flight.sent, done, status, clean, ...(msg !== undefined && { msg }) });
        if (status === 200) {
          t.ok++;
          p.acked++;
          break;
        }
        if (clean) t.unavailable++;
        else if (t.bad.length < 20) t.bad.push(`${new Date().toISOString()} ${key}: ${what}`);
        if (tries > 2000) throw new Error(`write ${key} not acknowledged after ${tries} tries`);
        await sleep(RETRY_MS);
      }
      await sleep(LANE_PAUSE_MS);
    }
  };

  const loadStart = performance.now();
  const running = Promise.all(players.map(lane));
  const killResults: KillResult[] = [];
  const hangResults: KillResult[] = [];
  let hangPauseMs = 0;
  try {
    const steady = async (since: number) => {
      const deadline = performance.now() + STEP_MS;
      for (;;) {
        const now = performance.now();
        let n = 0;
        let all200 = true;
        for (let i = naAnswers.length - 1; i >= 0 && naAnswers[i]!.done >= now - STEADY_MS; i--) {
          n++;
          if (naAnswers[i]!.status !== 200) all200 = false;
        }
        if (now - since >= STEADY_MS && n >= 10 && all200) return now;
        if (now > deadline) throw new Error('the NA write load did not become steady again');
        await sleep(100);
      }
    };
    await steady(performance.now());
    /** One episode: NA's current primary sent `signal` (SIGKILL: a kill; SIGSTOP: a hang), measured until NA is steady again. */
    const episode = async (signal: 'SIGKILL' | 'SIGSTOP', k: number, n: number, results: KillResult[]): Promise<void> => {
      const what = signal === 'SIGKILL' ? 'kill' : 'hang';
      const primary = await stack.redisPrimary('na');
      if (!primary?.name) throw new Error('no NA primary named by the Sentinels');
      const killed = primary.name;
      const promoted = stack.redisNodes('na').find((n) => n.name !== killed)?.name;
      const oldPid = stack.component(killed).pid;
      const sentinelLogs = logOffsets(stack.components.filter((c) => c.kind === 'sentinel').map((c) => c.logFile));
      const nodeLog = logOffsets([stack.component(killed).logFile]);
      const serviceLogs = logOffsets(stack.components.filter((c) => c.kind === 'service' || c.kind === 'gateway').map((c) => c.logFile));
      const shardLogs = logOffsets([...stack.redisNodes('na').map((n) => n.logFile), ...stack.components.filter((c) => c.kind === 'sentinel').map((c) => c.logFile)]);
      const inFlightAtKill = naInFlight.size;
      const from = naAnswers.length;
      const killWall = Date.now();
      const t0 = performance.now();
      stack.sendSignal(killed, signal);
      const r: KillResult = {
        signal,
        node: killed,
        promoted,
        firstAckMs: NaN,
        sdownMs: NaN,
        odownMs: NaN,
        switchLogMs: NaN,
        switchPollMs: NaN,
        restartedMs: NaN,
        hungKilledMs: NaN,
        deathSeenMs: NaN,
        restartDelayMs: NaN,
        switches: [],
        rejoinedMs: NaN,
        electedMs: NaN,
        promotedMs: NaN,
        processStartMs: NaN,
        readyMs: NaN,
        syncedMs: NaN,
        sync: '?',
        messages: [],
        replicaCountedMs: NaN,
        goodReplicaMs: NaN,
        na503: 0,
        naBad: [],
        inFlightAtKill,
        slowestMs: 0,
        episodeMs: NaN,
      };
      const since = () => performance.now() - t0;
      // Everything of the episode polled every ~50 ms until the window is closed and the node is back.
      while (!(Number.isFinite(r.firstAckMs) && Number.isFinite(r.rejoinedMs) && Number.isFinite(r.replicaCountedMs) && Number.isFinite(r.switchPollMs))) {
        if (since() > STEP_MS) throw new Error(`${what} ${k} of ${killed}: not over within ${STEP_MS} ms: ${JSON.stringify(r)}`);
        if (!Number.isFinite(r.firstAckMs)) {
          const first = naAnswers.slice(from).find((a) => a.sent > t0 && a.status === 200);
          if (first) r.firstAckMs = first.done - t0;
        }
        if (!Number.isFinite(r.switchPollMs)) {
          const p = await stack.redisPrimary('na').catch(() => undefined);
          if (p?.name && p.name !== killed) r.switchPollMs = since();
        }
        if (!Number.isFinite(r.restartedMs)) {
          const c = stack.component(killed);
          if (c.pid && c.pid !== oldPid) r.restartedMs = since();
        }
        if (Number.isFinite(r.restartedMs) && !Number.isFinite(r.rejoinedMs)) {
          const role = await stack.redisRole(killed, 300).catch(() => undefined);
          if (role?.role === 'slave' && role.linkUp) r.rejoinedMs = since();
        }
        if (promoted && Number.isFinite(r.switchPollMs) && Number.isFinite(r.replicaCountedMs) && !Number.isFinite(r.goodReplicaMs)) {
          const info = await redisCommand(stack.component(promoted).port!, ['INFO', 'replication'], 300).catch(() => undefined);
          if (typeof info === 'string' && Number(infoField(info, 'min_slaves_good_slaves') ?? 0) >= 1) r.goodReplicaMs = since();
        }
        if (promoted && Number.isFinite(r.switchPollMs) && !Number.isFinite(r.replicaCountedMs)) {
          const role = await stack.redisRole(promoted, 300).catch(() => undefined);
          if (role?.role === 'master' && (role.connectedReplicas ?? 0) >= 1) r.replicaCountedMs = since();
        }
        await sleep(50);
      }
      const end = await steady(t0 + r.firstAckMs);
      r.episodeMs = end - t0;
      const episode = naAnswers.slice(from).filter((a) => a.done <= end);
      r.na503 = episode.filter((a) => a.clean).length;
      r.naBad = episode.filter((a) => a.status !== 200 && !a.clean).map((a) => `${a.status === 0 ? 'no answer' : a.status} after ${fmt(a.done - a.sent)} ms`);
      r.slowestMs = Math.max(0, ...episode.map((a) => a.done - a.sent));
      const byMsg = new Map<string, { n: number; first: number; last: number }>();
      for (const a of episode.filter((a) => a.status !== 200)) {
        const m = byMsg.get(a.msg ?? String(a.status)) ?? { n: 0, first: a.done - t0, last: 0 };
        m.n++;
        m.last = a.done - t0;
        byMsg.set(a.msg ?? String(a.status), m);
      }
      r.messages = [...byMsg].map(([msg, m]) => `${m.n} × "${msg}" (${fmt(m.first)}–${fmt(m.last)} ms)`);
      if (r.firstAckMs - r.replicaCountedMs > 1000) {
        // Writes failed well after Redis could take them: what the services and gateways said meanwhile.
        for (const [file, offset] of serviceLogs) {
          const lines = readFileSync(file).subarray(offset).toString('utf8').split('\n').filter((l) => l.trim() !== '');
          if (lines.length) log(`  ${file.split('/').pop()} during the episode (${lines.length} lines, first 15):\n${lines.slice(0, 15).map((l) => `    ${l.slice(0, 400)}`).join('\n')}`);
        }
        for (const [file, offset] of shardLogs) {
          const lines = readFileSync(file).subarray(offset).toString('utf8').split('\n').filter((l) => l.trim() !== '' && (!file.includes('sentinel') || l.includes(sentinelMasterName('na'))));
          if (lines.length) log(`  ${file.split('/').pop()} during the episode (${lines.length} lines):\n${lines.slice(0, 80).map((l) => `    ${l.slice(0, 300)}`).join('\n')}`);
        }
      }
      const master = sentinelMasterName('na');
      const ev = firstEvents(sentinelLogs, killWall, {
        sdown: new RegExp(`^\\+sdown master ${master} `),
        odown: new RegExp(`^\\+odown master ${master} `),
        elected: new RegExp(`^\\+elected-leader master ${master} `),
        promoted: new RegExp(`^\\+promoted-slave slave .* @ ${master} `),
        switchMaster: new RegExp(`^\\+switch-master ${master} `),
      });
      r.sdownMs = ev.sdown;
      r.odownMs = ev.odown;
      r.electedMs = ev.elected;
      r.promotedMs = ev.promoted;
      r.switchLogMs = ev.switchMaster;
      // The supervisor's side, from the stack's log callback (performance.now() stamps, like t0).
      const plainLog = stackLog.filter((l) => l.t >= t0 && l.t <= end).map((l) => ({ t: l.t - t0, line: l.line.replace(/\x1b\[[0-9;]*m/g, '') }));
      const at = (re: RegExp) => plainLog.find((l) => re.test(l.line));
      r.hungKilledMs = at(new RegExp(`✖ ${killed} \\(port \\d+, pid ${oldPid}\\) has not answered PING .*hung; killing it`))?.t ?? NaN;
      r.deathSeenMs = at(new RegExp(`✖ ${killed} \\(port \\d+\\) exited unexpectedly`))?.t ?? NaN;
      const restartLine = at(new RegExp(`↻ restarting ${killed} in ([\\d.]+) s`));
      r.restartDelayMs = restartLine ? 1000 * Number(/in ([\d.]+) s/.exec(restartLine.line)![1]) : NaN;
      // Every Sentinel logs the same switch: one per distinct (from, to) pair; a second one in an episode is a second failover.
      r.switches = [...new Set(sentinelLines(sentinelLogs, new RegExp(`\\+switch-master ${master} (\\S+ \\d+ \\S+ \\d+)`)))];
      const node = firstEvents(nodeLog, killWall, {
        starting: /Redis is starting/,
        loaded: /DB loaded from (append only file|disk)/,
        ready: /Ready to accept connections/,
        synced: /MASTER <-> REPLICA sync: Finished with success|Successful partial resynchronization with master/,
        full: /Full resync from master|Partial resynchronization not possible/,
      });
      r.processStartMs = node.starting;
      r.readyMs = node.ready;
      r.syncedMs = node.synced;
      r.sync = Number.isFinite(node.synced) ? (Number.isFinite(node.full) ? 'full' : 'partial') : '?';
      r.loadLine = node.lines.loaded;
      results.push(r);
      log(
        `${what} ${k}/${n} of ${killed}: first NA ack ${fmt(r.firstAckMs)} ms after the ${signal} (${signal === 'SIGSTOP' ? `supervisor: hung; killing it ${fmt(r.hungKilledMs)} ms, ` : ''}death seen ${fmt(r.deathSeenMs)}, restart in ${fmt(r.restartDelayMs)} ms; switches ${r.switches.length}${r.switches.length > 1 ? ` (A SECOND FAILOVER: ${r.switches.join('; ')})` : ''}; Sentinels: +sdown ${fmt(r.sdownMs)}, +odown ${fmt(r.odownMs)}, +elected-leader ${fmt(r.electedMs)}, +promoted-slave ${fmt(r.promotedMs)}, +switch-master ${fmt(r.switchLogMs)} (poll ${fmt(r.switchPollMs)}) ms; ` +
          `${killed}: process start ${fmt(r.processStartMs)}, ready ${fmt(r.readyMs)}, ${r.sync} sync done ${fmt(r.syncedMs)}, healthy ${fmt(r.restartedMs)}, in-sync replica (poll) ${fmt(r.rejoinedMs)}, counted by ${promoted} ${fmt(r.replicaCountedMs)} ms; ${r.loadLine ?? 'no load line'}); NA 503s ${r.na503} (${r.messages.join(', ')}), other ${r.naBad.length}; in flight at the kill ${r.inFlightAtKill}, slowest ${fmt(r.slowestMs)} ms`,
      );
      for (const l of stackLog.filter((l) => l.t >= t0 && l.t <= end)) log(`  stack +${fmt(l.t - t0)} ms: ${l.line.replace(/\x1b\[[0-9;]*m/g, '')}`);
    };
    for (let k = 1; k <= kills; k++) await episode('SIGKILL', k, kills, killResults);
    if (hangs > 0) {
      // The supervisor's backoff doubles with each restart of a node in the last 60 s, and the nodes take
      // turns: without a pause the hangs would be the 6th-8th events in about a minute and measure a 2-4 s
      // backoff rather than the hang path. Wait (under the load) until no restart is in the window.
      const lastRestart = stackLog.findLast((l) => /↻ restarting redis-/.test(l.line))?.t ?? 0;
      const wait = lastRestart + DEFAULT_RESTART_POLICY.windowMs + 1000 - performance.now();
      if (wait > 0) {
        log(`waiting ${fmt(wait / 1000, 1)} s under the load for the supervisor's restart window to empty before the hangs`);
        await sleep(wait);
      }
      hangPauseMs = Math.max(0, wait);
      await steady(performance.now());
    }
    for (let k = 1; k <= hangs; k++) await episode('SIGSTOP', k, hangs, hangResults);
  } finally {
    stop = true;
    await running;
  }
  const loadSeconds = (performance.now() - loadStart) / 1000;

  const lostOrDoubled: string[] = [];
  for (const p of players) {
    const e = await stores.redisUser(p.userId, p.region);
    // The first write creates the entry at version 1: score and version both count the acknowledged keys.
    if (e.score !== p.acked || e.version !== p.acked) lostOrDoubled.push(`${p.userId}: acked ${p.acked}, Redis score ${e.score} version ${e.version}`);
  }
  let postgresChecked = false;
  let postgresMismatches = NaN;
  // Through connections made now: the bench's own clients lived through every failover, and a long-lived ioredis
  // producer of this process has been seen to end ("Connection is closed.") after several (the stack's went on).
  const after = await StackStores.open(stack.topology);
  try {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && !(await after.drained().catch(() => false))) await sleep(250);
    if (await after.drained().catch(() => false)) {
      postgresChecked = true;
      const m = await after.compareRedisWithPostgres(players.map((p) => ({ user_id: p.userId, region: p.region })));
      postgresMismatches = m.length;
      for (const x of m.slice(0, 5)) log(`Postgres differs from Redis: ${JSON.stringify(x)}`);
    } else log(`queues not drained after 120 s; the bench's first connections say: ${await stores.drained().catch((e: Error) => e.message)}`);
  } finally {
    await after.close();
  }
  for (const x of lostOrDoubled) log(`acknowledged writes and Redis differ: ${x}`);
  for (const [region, t] of Object.entries(perRegion)) for (const b of t.bad) log(`${region} non-200 answer: ${b}`);
  return {
    kills: killResults,
    hangs: hangResults,
    hangPauseMs,
    writes: { acked: players.reduce((a, p) => a + p.acked, 0), requests, perRegion },
    lostOrDoubled,
    postgresMismatches,
    postgresChecked,
    loadSeconds,
  };
}

/** Byte lengths of log files now: events after a kill are read from there on. */
function logOffsets(files: readonly string[]): Map<string, number> {
  return new Map(files.map((f) => [f, existsSync(f) ? readFileSync(f).length : 0]));
}

/** Every line the files got after their offsets (a file that cannot be read gives none). */
function* linesAfter(offsets: Map<string, number>): Generator<string> {
  for (const [file, offset] of offsets) {
    let text: string;
    try {
      text = readFileSync(file).subarray(offset).toString('utf8');
    } catch {
      continue;
    }
    yield* text.split('\n');
  }
}

/** The first capture group of every line matching `re` in the files after their offsets. */
function sentinelLines(offsets: Map<string, number>, re: RegExp): string[] {
  const out: string[] = [];
  for (const line of linesAfter(offsets)) {
    const m = re.exec(line);
    if (m) out.push(m[1] ?? m[0]);
  }
  return out;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** A Redis or Sentinel log line: `pid:X 08 Dec 2026 01:21:22.123 # +sdown master lb-na …` (local time, ms). */
const LOG_LINE = /^\d+:[XCMS] (\d{2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) . (.*)$/;

/**
 * The first line matching each pattern in the files after their offsets, in
 * ms after `killWall` (NaN when none), and the matching lines' texts.
 */
function firstEvents<K extends string>(offsets: Map<string, number>, killWall: number, patterns: Record<K, RegExp>): Record<K, number> & { lines: Partial<Record<K, string>> } {
  const out = { lines: {} } as Record<K, number> & { lines: Partial<Record<K, string>> };
  for (const k of Object.keys(patterns) as K[]) out[k] = NaN as never;
  for (const line of linesAfter(offsets)) {
    const m = LOG_LINE.exec(line);
    if (!m) continue;
    const [, d, mon, y, h, mi, s, ms, rest] = m;
    const t = new Date(Number(y), MONTHS.indexOf(mon!), Number(d), Number(h), Number(mi), Number(s), Number(ms)).getTime() - killWall;
    for (const k of Object.keys(patterns) as K[]) {
      if (patterns[k].test(rest!) && !((out[k] as number) <= t)) {
        out[k] = t as never;
        out.lines[k] = rest!;
      }
    }
  }
  return out;
}

// ----------------------------------------------------------- markdown ----

/** The supervisor's infra check period (INFRA_MONITOR_MS in scripts/stack/stack.ts). */
const INFRA_CHECK_MS = 500;

/** Where the median event's window went, from the step medians, in time order. */
function pathText(rs: readonly KillResult[]): string {
  if (rs.length === 0) return '';
  const med = (get: (k: KillResult) => number) => median(rs.map(get).filter(Number.isFinite));
  const m = (x: number) => (Number.isFinite(x) ? `${fmt(x / 1000, 2)} s` : 'n/a');
  const hang = rs[0]!.signal === 'SIGSTOP';
  const steps: [string, number][] = [
    ["`+sdown`", med((k) => k.sdownMs)],
    ["`+switch-master`", med((k) => k.switchLogMs)],
    ...(hang ? ([["the supervisor's SIGKILL of the hung node", med((k) => k.hungKilledMs)]] as [string, number][]) : []),
    ["the old primary's new process", med((k) => k.processStartMs)],
    ['its full resync done', med((k) => k.syncedMs)],
    ['a good replica for min-replicas-to-write', med((k) => k.goodReplicaMs)],
    ['the first NA write acknowledged', med((k) => k.firstAckMs)],
  ];
  steps.sort((x, y) => x[1] - y[1]);
  const first = med((k) => k.firstAckMs);
  const sw = med((k) => k.switchLogMs);
  const synced = med((k) => k.syncedMs);
  const share = (x: number) => (Number.isFinite(x) && Number.isFinite(first) ? `${fmt(x / 1000, 2)} s (${fmt((100 * x) / first)}%)` : 'n/a');
  return (
    `Medians, after the ${hang ? 'SIGSTOP' : 'kill'}: ${steps.map(([what, t]) => `${what} ${m(t)}`).join(', ')}. ` +
    `So of the window the Sentinels' detection and promotion take ${share(sw)}, the old primary's return after it (its restart, which the restart rule holds until the Sentinels name the promoted node, and its full resync) ${share(synced - sw)}, and the rest, ${share(first - synced)}, lies between the resync and the first acknowledged write${
      first - med((k) => k.goodReplicaMs) >= 200
        ? `: the promoted primary has a good replica (Redis would take the write) within a poll of the resync, and NA's 503s go on after it, so that part is spent in the services and their Redis clients, not in Redis`
        : ''
    }.`
  );
}

function markdown(m: { shapes: ShapeRounds[]; rounds: number; duration: number; connections: number; players: number; quick: boolean; failover: FailoverResult; cores: number }): string {
  const total = (r: RunResult) => Object.values(r.cpuMsPerReq).reduce((a, b) => a + b, 0);
  const errs = (rs: readonly RunResult[]) => rs.reduce((a, r) => a + r.errors + r.non2xx, 0);
  const rows = m.shapes.flatMap((sh) => {
    const side = (k: 'plain' | 'replicated', label: string) => {
      const rs = sh.pairs.map((p) => p[k]);
      return `| ${sh.name}, ${label} | ${spread(rs.map((r) => r.rps))} | ${spread(rs.map((r) => r.p50), 1)} | ${spread(rs.map((r) => r.p99), 1)} | ${spread(rs.map(total), 2)} | ${spread(rs.map((r) => r.cpuMsPerReq.redis ?? NaN), 3)} | ${spread(sh.pairs.map((p) => p.idlePct[k]), 1, '%')} | ${errs(rs)} |`;
    };
    return [side('plain', 'no replicas'), side('replicated', 'replica + WAIT')];
  });
  const ratioRows = m.shapes.map((sh) => {
    const rps = sh.pairs.map((p) => (100 * p.replicated.rps) / p.plain.rps);
    const p99 = sh.pairs.map((p) => p.replicated.p99 / p.plain.p99);
    const cpu = sh.pairs.map((p) => total(p.replicated) / total(p.plain));
    const perRound = sh.pairs.map((p, i) => `${i + 1}: ${fmt((100 * p.replicated.rps) / p.plain.rps)}% (${p.first === 'plain' ? 'no replicas first' : 'replicated first'})`).join('; ');
    return `| ${sh.name} | ${spread(rps, 0, '%')} | ×${spread(p99, 2)} | ×${spread(cpu, 2)} | ${perRound} |`;
  });

  const f = m.failover;
  const ms = (x: number) => (Number.isFinite(x) ? fmt(x) : 'n/a');
  const stat = (xs: number[]) => (xs.some(Number.isFinite) ? `${ms(median(xs.filter(Number.isFinite)))} / ${ms(Math.max(...xs.filter(Number.isFinite)))}` : 'n/a');
  const within = (rs: KillResult[]) => rs.every((k) => k.firstAckMs <= TARGET_WINDOW_MS);
  /** The per-event table of a kind (kills or hangs). */
  const eventTable = (rs: KillResult[], what: 'kill' | 'hang') => {
    const windows = rs.map((k) => k.firstAckMs);
    const rowsOf = rs.map(
      (k, i) =>
        `| ${i + 1} | ${k.node} → ${k.promoted ?? '?'} | **${ms(k.firstAckMs)}** ${k.firstAckMs <= TARGET_WINDOW_MS ? '✅' : '❌'} | ${k.na503} | ${k.naBad.length}${k.naBad.length ? ` (${k.naBad.slice(0, 3).join('; ')})` : ''} | ${k.inFlightAtKill} | ${ms(k.slowestMs)} |`,
    );
    const sum = `| median / worst | | **${stat(windows)}** | ${fmt(rs.reduce((a, k) => a + k.na503, 0))} (sum) | ${rs.reduce((a, k) => a + k.naBad.length, 0)} (sum) | | ${stat(rs.map((k) => k.slowestMs))} |`;
    return `| ${what} | node → promoted | window, ms | NA clean 503s | NA other answers | NA requests in flight at the ${what === 'kill' ? 'kill' : 'SIGSTOP'} | slowest NA answer, ms |
|---|---|---|---|---|---|---|
${rowsOf.join('\n')}
${sum}`;
  };
  /** Where the window goes, per event of a kind. */
  const stepTable = (rs: KillResult[], what: 'kill' | 'hang') => {
    const steps: [string, (k: KillResult) => number][] = [
      ['+sdown', (k) => k.sdownMs],
      ['+odown', (k) => k.odownMs],
      ['+elected-leader', (k) => k.electedMs],
      ['+promoted-slave', (k) => k.promotedMs],
      ['+switch-master', (k) => k.switchLogMs],
      ['Sentinels answer the new primary (poll)', (k) => k.switchPollMs],
      ...(what === 'hang' ? ([[`supervisor: "hung; killing it" (SIGKILL; no PONG for ${fmt(REDIS_HUNG_MS / 1000)} s)`, (k) => k.hungKilledMs]] as [string, (k: KillResult) => number][]) : []),
      ['supervisor: sees the death', (k) => k.deathSeenMs],
      ['… its restart delay (backoff, not a moment)', (k) => k.restartDelayMs],
      ['old primary: new process starts', (k) => k.processStartMs],
      ['… ready for connections', (k) => k.readyMs],
      ['… synced with the promoted node', (k) => k.syncedMs],
      ['promoted primary: a connected replica (poll)', (k) => k.replicaCountedMs],
      ['… a good one, so min-replicas-to-write lets writes in (poll)', (k) => k.goodReplicaMs],
      ['**first NA write acknowledged**', (k) => k.firstAckMs],
    ];
    return `| step | ${rs.map((_, i) => `${what} ${i + 1}`).join(' | ')} | median / worst |
|---|${rs.map(() => '---').join('|')}|---|
${steps.map(([name, get]) => `| ${name} | ${rs.map((k) => ms(get(k))).join(' | ')} | ${stat(rs.map(get))} |`).join('\n')}`;
  };
  const messagesOf = (rs: KillResult[], what: string) => rs.map((k, i) => `${what} ${i + 1}: ${k.messages.join(', ') || 'none'}`).join('; ');
  const resyncOf = (rs: KillResult[]) => {
    const loads = [...new Set(rs.map((k) => k.loadLine).filter((x): x is string => x !== undefined))];
    return `${rs.map((k) => k.sync).join(', ')}${loads.length ? `; on restart it logged "${loads.join('", "')}"` : ''}`;
  };
  const all = [...f.kills, ...f.hangs];
  const seconds = all.filter((k) => k.switches.length > 1);
  const secondText = seconds.length
    ? `**A second failover happened** in ${seconds.map((k) => `${k.signal === 'SIGKILL' ? 'kill' : 'hang'} ${(k.signal === 'SIGKILL' ? f.kills : f.hangs).indexOf(k) + 1} (${k.switches.join(' then ')})`).join(', ')}: the Sentinels failed the just-promoted node over again; the bench's log has the episode's Sentinel and Redis lines.`
    : `No second failover: every episode's Sentinel logs have one \`+switch-master\` (from, to) pair for NA.`;
  const kw = f.kills.map((k) => k.firstAckMs);
  const hw = f.hangs.map((k) => k.firstAckMs);
  const other = ['EU', 'ASIA'].map((r) => ({ r, t: f.writes.perRegion[r]! }));
  const otherBad = other.reduce((a, { t }) => a + t.unavailable + t.bad.length, 0);
  const naBadTotal = f.writes.perRegion.NA!.bad.length;
  const windowTarget = (rs: KillResult[], what: string): [string, string, boolean] => {
    const w = rs.map((k) => k.firstAckMs);
    const worst = Math.max(...w);
    return [`writes succeed again within ${fmt(TARGET_WINDOW_MS / 1000)} s of the primary's ${what}, every time`, `median ${ms(median(w))} ms, worst ${ms(worst)} ms${within(rs) ? '' : ` (${ms(worst - TARGET_WINDOW_MS)} ms over)`}`, within(rs)];
  };
  const targets: [string, string, boolean][] = [
    windowTarget(f.kills, 'death (SIGKILL)'),
    ...(f.hangs.length ? [windowTarget(f.hangs, 'hang (SIGSTOP)')] : []),
    ['NA answers during the failovers: 200 or a clean 503 `unavailable` with Retry-After', `${fmt(f.writes.perRegion.NA!.unavailable)} clean 503s, ${naBadTotal} other`, naBadTotal === 0],
    ['EU and ASIA: no answer other than 200', other.map(({ r, t }) => `${r} ${fmt(t.ok)} × 200, ${t.unavailable + t.bad.length} other`).join('; '), otherBad === 0],
    ['every acknowledged write in Redis exactly once (score = version = acknowledged keys, per player)', f.lostOrDoubled.length ? `${f.lostOrDoubled.length} players differ: ${f.lostOrDoubled.slice(0, 3).join('; ')}` : `all ${LANES_PER_REGION * 3} players, ${fmt(f.writes.acked)} writes`, f.lostOrDoubled.length === 0],
    ['… and in Postgres once the queues drained (score, version, each version logged once)', f.postgresChecked ? `${f.postgresMismatches} players differ` : 'queues did not drain within 120 s', f.postgresChecked && f.postgresMismatches === 0],
  ];
  const mark = (b: boolean) => (b ? '✅' : '❌');

  return `## Redis high availability: the cost of a replica + WAIT, and the failover window

Run: ${new Date().toISOString()} on ${machineLine()}${m.quick ? ' (--quick)' : ''}. Everything (both stacks, the load generator, the bench) shares these ${m.cores} cores.

### Write cost: replica + \`WAIT 1\` against \`--no-replicas\`

Two stacks as \`npm start\` runs them (3 api-gateways, 3 replicas, a worker, Postgres with fsync on, nginx; \`metrics: false\` on both, so no exporters or Prometheus), one with each shard a primary + a replica behind three Sentinels (every write script answered once its event-loop turn's \`WAIT 1\` counts the replica; \`min-replicas-to-write 1\`), one with one plain redis-server per shard. Each is seeded once with ${fmt(m.players)} players (¼ each NA, EU, ASIA, GLOBAL-only). Both stay up for the whole section, but only one is loaded at a time; the idle stack's CPU over each measured run is shown (% of all cores). Load: ${loadTool()}, ${m.connections} connections, ${m.duration} s per run after an unrecorded ${WARM_UP_S} s warm-up with the same mix, through nginx, the http bench's shapes (writes: \`POST /score/add\` with a random player's token). ${m.rounds} rounds; in each round every shape runs on both stacks back to back, the first stack alternating between rounds, and the queues are drained after every run. Ratios are per round (adjacent runs), then median (min–max) over the rounds.

| run | req/s | p50 ms | p99 ms | CPU ms/req, all processes | of which Redis (all nodes) | idle stack's CPU | errors + non-2xx (sum) |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

| shape | req/s, replicated / no replicas | p99, replicated / no replicas | CPU per request, replicated / no replicas | per round |
|---|---|---|---|---|
${ratioRows.join('\n')}

### Failover: NA's primary killed (SIGKILL) under a keyed write load, ${f.kills.length} times

The replicated stack alone (the other stopped). Load: ${LANES_PER_REGION} client loops per region (NA, EU, ASIA), each its own player writing \`add 1\` through nginx with a new Idempotency-Key per write and a ${LANE_PAUSE_MS} ms pause after each acknowledged one; a 503 or no answer is retried with the same key after ${RETRY_MS} ms (so the window is known to ~${RETRY_MS} ms). ${fmt(f.writes.requests)} requests, ${fmt(f.writes.acked)} acknowledged, over ${fmt(f.loadSeconds)} s (the kills, then the hangs below, under one load). Sentinels: three, quorum ${SENTINEL_DEFAULTS.quorum}, \`down-after-milliseconds\` ${fmt(SENTINEL_DEFAULTS.downAfterMs)} (a node without a valid reply that long is subjectively down; a Sentinel pings each node every second), \`failover-timeout\` ${fmt(SENTINEL_DEFAULTS.failoverTimeoutMs)}. Each kill: \`stack.redisPrimary('na')\` (the Sentinels' answer), then \`SIGKILL\` to it; the stack's supervisor sees the death at its next check (every ${fmt(INFRA_CHECK_MS)} ms), restarts the node after its backoff (default restart policy: 0.5 s, doubling with each restart of that node in the last 60 s, at most 5 s; the two nodes take turns as primary, so each is restarted every other event: the "restart delay" row) and the restart rule starts it as the replica of the node the Sentinels promoted, once they name one; the next event waits until it is an in-sync replica and NA's writes have been all 200 for ${fmt(STEADY_MS / 1000)} s. **Window** = from the signal to the first 200 of an NA write sent after it. Until the old primary is back as a replica, the promoted one has none, and \`min-replicas-to-write 1\` refuses writes (NOREPLICAS, answered as 503): the window is therefore the kill → \`+sdown\` (down-after) → the vote and promotion → the old primary restarted and resynced (a full resync), not the promotion alone. ${pathText(f.kills)}

${eventTable(f.kills, 'kill')}

Where the window goes, ms after each kill (Sentinel events: the first such line for NA's master in any Sentinel's log; the supervisor's from the stack's log; the old primary's steps from its own log; "poll": polled every ~50 ms):

${stepTable(f.kills, 'kill')}

NA's non-200 answers by message (digits shown as N; ms after the kill of the first and last): ${messagesOf(f.kills, 'kill')}.

The old primary's resync with the promoted node: ${resyncOf(f.kills)}.
${
  f.hangs.length
    ? `
### Failover: NA's primary frozen (SIGSTOP) under the same load, ${f.hangs.length} times

After the kills, under the same load${f.hangPauseMs > 0 ? ` and ${fmt(f.hangPauseMs / 1000)} s after them (the bench waits until no node has a restart in the supervisor's last 60 s, so that the hangs meet its 0.5 s backoff again rather than the 2–4 s the 6th–8th event in a minute would)` : ''}, with the same wait between events: \`SIGSTOP\` to NA's current primary (\`stack.sendSignal(name, 'SIGSTOP')\`). A frozen node keeps its sockets open and answers nothing, so an NA write sent to it waits instead of failing: it gets its clean 503 at the services' Redis command timeout (\`REDIS_COMMAND_TIMEOUT_MS\`, 2 s: no NA answer at all for the first ~2 s, and the slowest answers ≈ 2 s), or, for the few whose connection the supervisor's SIGKILL closes, the in-doubt 503 ("may or may not have been applied") at that moment. The Sentinels take it for down once a PING of theirs has gone unanswered for down-after (they ping every second, so 1.5–2.5 s after the SIGSTOP, where a killed node's refused connection counts from about the death: compare the \`+sdown\` rows) and promote the replica. The supervisor pings every Redis node of a replicated shard at each check (every ${fmt(INFRA_CHECK_MS)} ms, a PING waiting up to ${fmt(REDIS_HUNG_MS / 1000)} s) and SIGKILLs one that has not answered PING for ${fmt(REDIS_HUNG_MS / 1000)} s (\`REDIS_HUNG_MS\`), so some ${fmt(REDIS_HUNG_MS / 1000)}–${fmt((REDIS_HUNG_MS + INFRA_CHECK_MS) / 1000)} s after the SIGSTOP; from there it is a kill: the death seen, the backoff, the restart as the promoted node's replica, the resync. Same window (the SIGSTOP → the first 200 of an NA write sent after it), same checks. ${pathText(f.hangs)}

${eventTable(f.hangs, 'hang')}

Where the window goes, ms after each SIGSTOP:

${stepTable(f.hangs, 'hang')}

NA's non-200 answers by message (ms after the SIGSTOP): ${messagesOf(f.hangs, 'hang')}.

The old primary's resync with the promoted node: ${resyncOf(f.hangs)}.

Hangs against kills: window median ${ms(median(hw))} ms against ${ms(median(kw))} ms, worst ${ms(Math.max(...hw))} against ${ms(Math.max(...kw))} ms.
`
    : ''
}
${secondText}

| target | measured | |
|---|---|---|
${targets.map(([what, shown, b]) => `| ${what} | ${shown} | ${mark(b)} |`).join('\n')}
`;
}
