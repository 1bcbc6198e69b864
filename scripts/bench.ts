/**
 * npm run bench [-- --only persistence|http|observability|live|runtime|ha] [--quick] [--runs baseline,top,reads,writes,mix,login,boards | --runs cpu]
 *   [--gateways N] [--replicas N] [--connections N] [--duration <seconds per HTTP run>] [--profile <dir>]  (CPU profiles of the stack's Node services: node --cpu-prof, written when they stop)
 *   [--rounds N]  (http: rounds of (baseline, shape) pairs, every selected shape right after a baseline of its own, ratios from the adjacent pairs, median (min–max) over the rounds, default 3;
 *                  observability: rounds of metrics off / metrics on / metrics + tracing, default 3; runtime: rounds of Node 20 / 26, each with and without tracing, default 3; live: rounds of 0 / N watchers, default 3;
 *                  persistence: rounds of the CPU-per-event runs, default 3; ha: rounds of (no replicas, replicated) pairs per shape, default 3)
 *   [--kills N]  (ha: NA primary kills under load, default 5, --quick 2)
 *   [--hangs N]  (ha: NA primary hangs (SIGSTOP) under load after the kills, default 3, --quick 1)
 *   (http: the baseline runs before every selected shape whether or not --runs names it; --runs baseline alone runs only baselines, one per round)
 *   (persistence: --runs cpu runs only the CPU-per-event rounds and prints them, without writing docs/BENCHMARKS.md: for A/B comparisons of two checkouts)
 *   [--watchers N]  (live: SSE watchers, default 2,000, --quick 500)
 *
 * Prints figures and writes them to docs/BENCHMARKS.md. Speed targets live
 * here, never in tests.
 */
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findRepoRoot } from '@lb/devtools/testing';
import { benchPersistence, benchPipelineCpu, cpuTable, type PersistenceResult } from './bench/persistence.js';
import { fmt, machineLine } from './bench/machine.js';

const { values: args } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, runs: { type: 'string' }, profile: { type: 'string' }, duration: { type: 'string' }, gateways: { type: 'string' }, replicas: { type: 'string' }, connections: { type: 'string' }, rounds: { type: 'string' }, watchers: { type: 'string' }, kills: { type: 'string' }, hangs: { type: 'string' }, help: { type: 'boolean' } } });
if (args.help) {
  process.stdout.write(
    'Usage: npm run bench [-- --only persistence|http|observability|live|runtime|ha] [--quick] [--runs baseline,top,reads,writes,mix,login,boards | cpu] [--profile <dir>] [--duration <s>] [--gateways N] [--replicas N] [--connections N] [--rounds N] [--watchers N] [--kills N] [--hangs N]\n' +
      '  --rounds N: rounds of every section that repeats its runs (default 3). http: each round runs, for every selected shape, a baseline right before it; ratios come from these adjacent pairs, medians (min–max) over the rounds.\n',
  );
  process.exit(0);
}
const root = findRepoRoot();
const log = (s: string) => process.stdout.write(`${s}\n`);

function section(name: string, body: string, file = join(root, 'docs', 'BENCHMARKS.md')): void {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nWritten by `npm run bench`; each section is replaced by its latest run.\n';
  const block = `${start}\n${body.trim()}\n${end}`;
  const re = new RegExp(`${start}[\\s\\S]*?${end}`);
  doc = re.test(doc) ? doc.replace(re, block) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, doc);
}

function persistenceMarkdown(r: PersistenceResult, quick: boolean): string {
  const ratio = (100 * r.oneShardEventsPerS) / r.rawEventsPerS;
  return `## Persistence (write-behind pipeline)

Run: ${new Date().toISOString()} on ${machineLine()}${quick ? ' (--quick)' : ''}. Every process (Redis ×3, Postgres, service, worker, the bench itself) shares the machine. Postgres runs with its defaults (fsync on).

| measure | figure | target |
|---|---|---|
| raw baseline: batched UPSERT, 1,000 rows per batch, one shard | ${fmt(r.rawEventsPerS)} events/s | — |
| pipeline, one shard alone (enqueue → COMMIT) | ${fmt(r.oneShardEventsPerS)} events/s (${fmt(ratio)}% of raw) | ≥ 50% of raw ${ratio >= 50 ? '✅' : '❌'} |
| pipeline, one shard, one job per event (writes trickling in one at a time) | ${fmt(r.singleJobEventsPerS)} events/s (${fmt((100 * r.singleJobEventsPerS) / r.rawEventsPerS)}% of raw) | — |
| pipeline, three shards at once (total) | ${fmt(r.threeShardEventsPerS)} events/s | — |
| … per shard | ${Object.entries(r.perShard).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')} events/s | — |
| end-to-end lag at ${fmt(r.lag.rate)} writes/s for ${r.lag.seconds} s, p50 | ${fmt(r.lag.p50)} ms | — |
| … p99 | ${fmt(r.lag.p99)} ms | < 1,000 ms at 2,000 writes/s ${r.lag.p99 < 1000 && r.lag.rate >= 1900 ? '✅' : '❌'} |
| … max | ${fmt(r.lag.max)} ms | — |
| writes acknowledged / refused | ${fmt(r.lag.ok)} / ${fmt(r.lag.refused)} | 0 refused |

CPU per persisted event, ms (median of ${r.cpu[0]!.length} rounds, each round every rate once; RELAY_LINGER_MS ${r.cpu[0]![0]!.lingerMs}, RELAY_ENVELOPE_MAX ${r.cpu[0]![0]!.envelopeMax}):

${cpuTable(r.cpu)}

How it is measured: the raw baseline calls the worker's own \`ScoreRepository.applyBatch\` in a loop (the same SQL, no queue). The pipeline runs start a worker-service process, write the events (2 versions per player) to the shards' outboxes as the write script does, start the service's own relay (its default settings: a job of up to RELAY_ENVELOPE_MAX events per turn, the next turn at once after a full one) and time until every event is in \`score_events\` (jobs complete only after their batch's COMMIT). The one-job-per-event row pre-loads the queue with single-event jobs: it shows BullMQ's fixed per-job cost (its scripts, a lock and about ten Redis round trips per job), which is why the relay packs envelopes. Lag = \`score_events.created_at\` (the batch transaction's time) − the moment the client received 200 for that write; the writes are paced by the clock and spread over two leaderboard-service replicas, and the rate shown is the one achieved (requests completed per second of the run).

CPU per persisted event: a process of its own (scripts/bench/relay-driver.ts) runs the relays of three replicas (as \`npm start\` runs them: each replica its own connections and a relay per shard, with the service's relay settings) and writes, paced by the clock, events in the write script's shape spread over the three shards to the shards' outboxes (one HSET and one ZADD per shard every 50 ms); a worker-service process with its default settings (metrics on) persists them. After 2 s of unmeasured warm-up at the same rate: the CPU time (user + system, from /proc, exited children included) of that process (relay), the three redis-server processes, the worker and Postgres (postmaster, backends, WAL writer, checkpointer, autovacuum) from the first event to the last COMMIT, divided by the events persisted. The same events are then written on the same clock with no relay and no worker, and that run's CPU in the driver and Redis is subtracted (the "bench's outbox writes" column): in the service the event reaches the outbox inside the write script, in a call the write makes anyway. The saturation row writes the events as fast as Redis takes them; its rate is events ÷ time to the last COMMIT. Idle costs of these processes (metrics, timers, the relays' turns, BullMQ's blocking waits) are counted: they are what persistence costs the machine at that rate. Lag here = the transaction's time − the event's write to the outbox.`;
}

async function main(): Promise<void> {
  const quick = Boolean(args.quick);
  if (!args.only || args.only === 'persistence') {
    log('== persistence ==');
    const rounds = args.rounds ? Number(args.rounds) : 3;
    const cpu = { seconds: quick ? 5 : 15, saturationPerShard: quick ? 20_000 : 100_000, rounds };
    if (args.runs === 'cpu') {
      log(cpuTable(await benchPipelineCpu(log, cpu)));
      log('(--runs cpu: docs/BENCHMARKS.md not written)');
      return;
    }
    const r = await benchPersistence(log, { perShard: quick ? 20_000 : 100_000, lagRate: 2000, lagSeconds: quick ? 5 : 20, cpuSeconds: cpu.seconds, rounds });
    section('persistence', persistenceMarkdown(r, quick));
  }
  if (!args.only || args.only === 'http') {
    const http = await import('./bench/http.js').catch(() => undefined);
    if (http) {
      log('== http through nginx ==');
      section('http', await http.benchHttp(log, { quick, runs: args.runs?.split(','), profileDir: args.profile, durationS: args.duration ? Number(args.duration) : undefined, gateways: args.gateways ? Number(args.gateways) : undefined, replicas: args.replicas ? Number(args.replicas) : undefined, connections: args.connections ? Number(args.connections) : undefined, rounds: args.rounds ? Number(args.rounds) : undefined }));
    } else log('http bench not available');
  }
  if (!args.only || args.only === 'observability') {
    log('== observability overhead ==');
    const { benchObservability } = await import('./bench/observability.js');
    section(
      'observability',
      await benchObservability(log, {
        quick,
        rounds: args.rounds ? Number(args.rounds) : undefined,
        durationS: args.duration ? Number(args.duration) : undefined,
        connections: args.connections ? Number(args.connections) : undefined,
      }),
    );
  }
  // Not part of a full run: it is asked for when the runtime changes.
  if (args.only === 'runtime') {
    log(`== runtime: Node 20 against Node ${process.versions.node} ==`);
    const { benchObservability } = await import('./bench/observability.js');
    section(
      'runtime',
      await benchObservability(log, {
        quick,
        preset: 'runtime',
        rounds: args.rounds ? Number(args.rounds) : undefined,
        durationS: args.duration ? Number(args.duration) : undefined,
        connections: args.connections ? Number(args.connections) : undefined,
      }),
    );
  }
  if (!args.only || args.only === 'live') {
    log('== live push (SSE fan-out) ==');
    const { benchLive } = await import('./bench/live.js');
    section(
      'live',
      await benchLive(log, {
        quick,
        rounds: args.rounds ? Number(args.rounds) : undefined,
        durationS: args.duration ? Number(args.duration) : undefined,
        connections: args.connections ? Number(args.connections) : undefined,
        watchers: args.watchers ? Number(args.watchers) : undefined,
        profileDir: args.profile,
      }),
    );
  }
  if (!args.only || args.only === 'ha') {
    log('== Redis high availability: replica + WAIT cost, failover window ==');
    const { benchHa } = await import('./bench/ha.js');
    section(
      'ha',
      await benchHa(log, {
        quick,
        rounds: args.rounds ? Number(args.rounds) : undefined,
        durationS: args.duration ? Number(args.duration) : undefined,
        connections: args.connections ? Number(args.connections) : undefined,
        kills: args.kills ? Number(args.kills) : undefined,
        hangs: args.hangs ? Number(args.hangs) : undefined,
      }),
    );
  }
  log(`figures written to docs/BENCHMARKS.md`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
