/**
 * Metrics end to end: a real stack (startStack, ephemeral ports) with its
 * exporters and its Prometheus scraping every second; real traffic through
 * nginx; then every query of the Grafana dashboard, every recording rule and
 * the alerting rules, asked of that Prometheus's HTTP API. Also: /metrics is
 * not served through nginx, every metrics listener is bound to 127.0.0.1
 * only, and `metrics: false` leaves all of it out.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { METRICS_BINARIES } from '@lb/devtools/infra';
import { RECORDING_RULES } from '../scripts/stack/prometheus.js';
import type { Stack, StartStackOptions } from '../scripts/stack/stack.js';
import { readStackFile } from '../scripts/stack/state.js';
import { call, eventually, isErrorShape, post } from './support/e2e.js';
import { skipUnlessInstalled, STACK_BINARIES, startTestStack, type TestStack } from './support/test-stack.js';
import { dashboardExpressions, DASHBOARD_FILE, substituteVariables, type Dashboard } from './support/grafana.js';

const PASSWORD = 'a long enough password';
/** How long the scrapes after the traffic may take to show everything (the scrape interval is 1 s). */
const SCRAPE_WAIT_MS = 60_000;

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/** GET /api/v1/query at Prometheus; throws on an error answer (a malformed expression fails the test). */
async function query(prometheus: string, expr: string): Promise<Series[]> {
  const r = await call(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  if (r.status !== 200 || r.body?.status !== 'success') throw new Error(`query ${expr}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.data.result as Series[];
}

/**
 * Polls every expression until each returns at least one series, up to
 * `timeoutMs`; returns the ones that never did (empty = all good).
 */
async function emptyQueries(prometheus: string, exprs: readonly string[], timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let pending = [...exprs];
  for (;;) {
    const still: string[] = [];
    for (const e of pending) if ((await query(prometheus, e)).length === 0) still.push(e);
    pending = still;
    if (pending.length === 0 || Date.now() > deadline) return pending;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Addresses a TCP port listens on, from /proc/net/tcp{,6} (no traffic sent); undefined without /proc. */
function listenAddresses(port: number): string[] | undefined {
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      if (file === '/proc/net/tcp') return undefined;
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue; // 0A = LISTEN
      const [hexAddr, hexPort] = local.split(':');
      if (parseInt(hexPort!, 16) !== port) continue;
      out.push(
        hexAddr!.length === 8
          ? hexAddr!.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.') // little-endian IPv4
          : `[${hexAddr}]`,
      );
    }
  }
  return out;
}

/** The environment a process was started with, from /proc (undefined without /proc). */
function processEnv(pid: number): Record<string, string> | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
    return Object.fromEntries(raw.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  } catch {
    return undefined;
  }
}

describe('metrics and Prometheus (end to end)', function () {
  this.timeout(300_000);
  let running: TestStack | undefined;
  const lines: string[] = [];

  before(function () {
    skipUnlessInstalled(this, [...STACK_BINARIES, ...METRICS_BINARIES]);
  });
  afterEach(function () {
    // What the stack said: the first thing to read when a test fails.
    if (this.currentTest?.state === 'failed') console.log(lines.map((l) => `      | ${l}`).join('\n'));
    lines.length = 0;
  });
  /** A stack running the sources, on free ports, in a fresh data directory. */
  async function start(opts: StartStackOptions): Promise<Stack> {
    running = await startTestStack('lb-prom-', { log: (l) => lines.push(l), ...opts, env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn', ...opts.env } });
    return running.stack;
  }
  async function stopStack(): Promise<void> {
    await running?.stop();
    running = undefined;
  }

  describe('with metrics on', () => {
    let prometheus: string;

    before(async function () {
      await start({
        replicas: 2,
        gateways: 2,
        workers: 1,
        scrapeIntervalSeconds: 1,
        // MAX_SCORE low enough to refuse a write with score_out_of_range.
        env: { MAX_SCORE: '1000000' },
        // The alert rules must follow the services' configuration: half of 3000.
        envFor: { service: { QUEUE_REJECT_LENGTH: '3000' } },
      });
      prometheus = running!.stack.prometheusUrl!;

      // Traffic through nginx: registrations and writes in every region, a refused write, reads (twice: cache hits).
      const url = (path: string): string => `${running!.stack.url}${path}`;
      for (const region of ['NA', 'EU', 'ASIA']) {
        const user = `prom_${region.toLowerCase()}_${process.pid}`;
        const reg = await post(url('/auth/register'), { user_id: user, name: `P ${region}`, region, password: PASSWORD, initialScore: 10 });
        expect(reg.status, JSON.stringify(reg.body)).to.equal(201);
        const token = reg.body.token as string;
        expect((await post(url('/score/update'), { score: 120 }, { token })).status).to.equal(200);
        expect((await post(url('/score/add'), { delta: 5 }, { token })).status).to.equal(200);
        // Past MAX_SCORE: refused by the write itself (the shard's script), counted in lb_writes_total.
        const refused = await post(url('/score/add'), { delta: 2_000_000 }, { token });
        expect(refused.status, JSON.stringify(refused.body)).to.equal(400);
        expect(refused.body.error).to.equal('score_out_of_range');
        for (let i = 0; i < 2; i++) {
          expect((await call(url(`/top?region=${region}&limit=10`))).status).to.equal(200);
          expect((await call(url('/top?region=GLOBAL&limit=10'))).status).to.equal(200);
        }
        expect((await call(url(`/rank/${user}?region=GLOBAL`))).status).to.equal(200);
        expect((await call(url(`/around/${user}?region=${region}&range=2`))).status).to.equal(200);
      }
    });
    after(stopStack);

    it('when Prometheus runs, then it scrapes every Node service, exporter and itself, up, with job and instance labels', async () => {
      const s = running!.stack;
      expect(s.components.map((c) => `${c.name}:${c.kind}:${c.status}`).slice(-6)).to.deep.equal([
        'redis-exporter-na:exporter:healthy', 'redis-exporter-eu:exporter:healthy', 'redis-exporter-asia:exporter:healthy',
        'postgres-exporter:exporter:healthy', 'nginx-exporter:exporter:healthy', 'prometheus:prometheus:healthy',
      ]);
      const recorded = readStackFile(s.dataDir)!;
      expect(recorded.prometheusUrl).to.equal(prometheus);
      for (const c of s.components.filter((x) => ['service', 'worker', 'gateway'].includes(x.kind))) {
        expect(recorded.components.find((r) => r.name === c.name)?.metricsPort, c.name).to.equal(c.metricsPort).and.be.a('number');
      }
      const expected = [
        ...s.components.filter((c) => c.kind === 'gateway').map((c) => `api-gateway/${c.name}`),
        ...s.components.filter((c) => c.kind === 'service').map((c) => `leaderboard-service/${c.name}`),
        ...s.components.filter((c) => c.kind === 'worker').map((c) => `worker-service/${c.name}`),
        'redis/redis-na', 'redis/redis-eu', 'redis/redis-asia', 'postgres/postgres', 'nginx/nginx', 'prometheus/prometheus',
      ].sort();
      const up = await eventually(async () => {
        const r = await query(prometheus, 'up == 1');
        const names = r.map((x) => `${x.metric.job}/${x.metric.instance}`).sort();
        return names.length === expected.length ? r : undefined;
      }, SCRAPE_WAIT_MS, 'every target up');
      expect(up.map((x) => `${x.metric.job}/${x.metric.instance}`).sort()).to.deep.equal(expected);
      expect(up.filter((x) => x.metric.job === 'redis').map((x) => `${x.metric.instance}:${x.metric.shard}`).sort()).to.deep.equal([
        'redis-asia:asia', 'redis-eu:eu', 'redis-na:na',
      ]);
      // Every series of the Node services carries `service`.
      // (`up` and `scrape_*` are Prometheus's own, per target.)
      const unlabelled = await query(prometheus, 'count by (__name__) ({job=~"api-gateway|leaderboard-service|worker-service", service="", __name__!~"up|scrape_.+"})');
      expect(unlabelled.map((x) => x.metric.__name__)).to.deep.equal([]);
      expect((await query(prometheus, 'count by (service) ({job=~"api-gateway|leaderboard-service|worker-service", __name__!~"up|scrape_.+"})')).map((x) => x.metric.service).sort())
        .to.deep.equal(['api-gateway', 'leaderboard-service', 'worker-service']);
    });

    it('when /metrics is asked of nginx, then it is a JSON 404, and every metrics listener is bound to 127.0.0.1 only', async () => {
      const s = running!.stack;
      for (const path of ['/metrics', '/metrics/', '/metrics?x=1']) {
        const r = await call(`${s.url}${path}`);
        expect(r.status, path).to.equal(404);
        expect(isErrorShape(r.body), JSON.stringify(r.body)).to.equal(true);
        expect(r.body.error).to.equal('not_found');
      }
      const ports = s.components.flatMap((c) => {
        const own = ['exporter', 'prometheus'].includes(c.kind) ? [{ name: c.name, port: c.port! }] : [];
        return c.metricsPort ? [...own, { name: `${c.name} metrics`, port: c.metricsPort }] : own;
      });
      expect(ports).to.have.length(s.components.filter((c) => ['service', 'worker', 'gateway', 'exporter', 'prometheus'].includes(c.kind)).length);
      const conf = readFileSync(join(s.dataDir, 'nginx', 'nginx.conf'), 'utf8');
      const statusPort = Number(/listen 127\.0\.0\.1:(\d+);\n\s+server_name _;\n\s+access_log off;/.exec(conf)?.[1]);
      expect(statusPort).to.be.greaterThan(0);
      ports.push({ name: 'nginx stub_status', port: statusPort });
      for (const { name, port } of ports) {
        const addrs = listenAddresses(port);
        if (addrs) expect(addrs, `${name} (port ${port}) listens on`).to.deep.equal(['127.0.0.1']);
      }
      // They answer there: a Node service's /metrics in the text format, with its service label.
      const replica = s.component('leaderboard-service-1');
      const text = await call(`http://127.0.0.1:${replica.metricsPort}/metrics`);
      expect(text.status).to.equal(200);
      expect(text.headers.get('content-type')).to.match(/^text\/plain/);
      expect(text.body).to.match(/^lb_http_request_duration_seconds_count\{[^}]*service="leaderboard-service"/m);
      const env = processEnv(replica.pid!);
      if (env) expect(env).to.include({ METRICS_PORT: String(replica.metricsPort), METRICS_HOST: '127.0.0.1' });
    });

    it('when the traffic has been scraped, then every query of every panel of docs/grafana/leaderboard.json returns a series', async () => {
      const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
      const exprs = dashboardExpressions(dashboard);
      expect(exprs.length).to.be.greaterThan(20);
      const runnable = exprs.map((e) => substituteVariables(e.expr, dashboard, '1m'));
      const empty = await emptyQueries(prometheus, runnable, SCRAPE_WAIT_MS);
      const named = empty.map((e) => {
        const i = runnable.indexOf(e);
        return `${exprs[i]!.panel} [${exprs[i]!.refId}]: ${e}`;
      });
      expect(named, 'dashboard queries without a series').to.deep.equal([]);
    });

    it('when the rules are loaded, then every alert and recording rule is healthy, the backlog alert follows QUEUE_REJECT_LENGTH, and every recording rule produces series', async () => {
      const r = await call(`${prometheus}/api/v1/rules`);
      expect(r.status).to.equal(200);
      type Rule = { name: string; type: string; health: string; query: string; lastError?: string };
      const groups = r.body.data.groups as Array<{ name: string; rules: Rule[] }>;
      expect(groups.map((g) => g.name).sort()).to.deep.equal(['leaderboard-alerts', 'leaderboard-recording']);
      const rules = groups.flatMap((g) => g.rules);
      const alerts = rules.filter((x) => x.type === 'alerting');
      expect(alerts.map((a) => a.name)).to.deep.equal([
        'LeaderboardReplicaDown', 'GatewaySeesReplicaDown', 'ScrapeTargetDown', 'BacklogHigh', 'PersistenceLagHigh', 'DeadLetters',
        'RedisShardWithoutReplica', 'RedisReplicaLagHigh', 'RedisFailover',
      ]);
      expect(alerts.find((a) => a.name === 'BacklogHigh')!.query).to.match(/> 1500$/);
      const records = (parse(readFileSync(RECORDING_RULES, 'utf8')) as { groups: Array<{ rules: Array<{ record: string }> }> }).groups
        .flatMap((g) => g.rules.map((x) => x.record));
      expect(rules.filter((x) => x.type === 'recording').map((x) => x.name)).to.deep.equal(records);
      // Evaluated at least once, without error.
      await eventually(async () => {
        const now = ((await call(`${prometheus}/api/v1/rules`)).body.data.groups as Array<{ rules: Rule[] }>).flatMap((g) => g.rules);
        return now.every((x) => x.health === 'ok') ? true : undefined;
      }, SCRAPE_WAIT_MS, 'every rule evaluated healthy');
      expect(await emptyQueries(prometheus, records, SCRAPE_WAIT_MS), 'recording rules without a series').to.deep.equal([]);
      // The figures are the traffic's: writes were accepted (and one refused per region), reads were counted.
      // (Raw counters: a label set born with its first increment has no earlier sample for increase() to start from.)
      const writes = await query(prometheus, 'sum by (outcome) (lb_writes_total)');
      const byOutcome = new Map(writes.map((w) => [w.metric.outcome, Number(w.value[1])]));
      expect(byOutcome.get('accepted'), JSON.stringify(writes)).to.be.greaterThan(0);
      expect(byOutcome.get('score_out_of_range'), JSON.stringify(writes)).to.be.greaterThan(0);
      // No alert fires on a healthy stack.
      const firing = await query(prometheus, 'ALERTS{alertstate="firing"}');
      expect(firing.map((a) => a.metric.alertname)).to.deep.equal([]);
    });

    it('when Prometheus and an exporter are killed by PID, then the stack restarts each on its port, and the data survives', async () => {
      const s = running!.stack;
      const before = (await query(prometheus, 'count(up)'))[0]!.value[1];
      const killed = ['prometheus', 'nginx-exporter'].map((name) => {
        const c = s.component(name);
        process.kill(c.pid!, 'SIGKILL');
        return c;
      });
      for (const c of killed) {
        const back = await eventually(async () => {
          const now = s.component(c.name);
          return now.status === 'healthy' && now.pid !== c.pid ? now : undefined;
        }, 30_000, `${c.name} restarted`);
        expect(back).to.include({ port: c.port, restarts: 1 });
      }
      // Same port, same TSDB: what was scraped before is still there, and scraping goes on.
      expect((await query(prometheus, 'count(up)'))[0]!.value[1]).to.equal(before);
      await eventually(async () => ((await query(prometheus, 'up{job="nginx"} == 1')).length === 1 ? true : undefined), SCRAPE_WAIT_MS, 'nginx scraped again');
    });
  });

  describe('with metrics off', () => {
    after(stopStack);

    it('when started with metrics: false, then no process gets a metrics port, and there are no exporters, no stub_status and no Prometheus', async () => {
      // And without Redis replicas (`--no-replicas`): one plain server per shard, no Sentinels.
      const stack = await start({ replicas: 1, gateways: 1, workers: 1, metrics: false, redisReplicas: false });
      expect(stack.components.map((c) => c.kind)).to.deep.equal(['redis', 'redis', 'redis', 'postgres', 'service', 'worker', 'gateway', 'nginx']);
      expect(stack.redisReplicas).to.equal(false);
      expect(stack.sentinelPorts).to.deep.equal([]);
      expect(stack.topology.shards.map((sh) => sh.redis.kind)).to.deep.equal(['server', 'server', 'server']);
      expect((await stack.redisRole('redis-na')).role).to.equal('master');
      expect(stack.components.every((c) => c.metricsPort === undefined)).to.equal(true);
      expect(stack.prometheusUrl).to.equal(undefined);
      expect(readStackFile(stack.dataDir)!.prometheusUrl).to.equal(undefined);
      // (nchan_stub_status, on the internal live server, is nchan's, not the exporter's.)
      expect(readFileSync(join(stack.dataDir, 'nginx', 'nginx.conf'), 'utf8')).not.to.match(/^\s*stub_status;/m);
      for (const c of stack.components.filter((x) => ['service', 'worker', 'gateway'].includes(x.kind))) {
        const env = processEnv(c.pid!);
        if (env) expect(env.METRICS_PORT, c.name).to.equal('0');
      }
      const r = await call(`${stack.url}/metrics`);
      expect(r.status).to.equal(404);
      expect(r.body.error).to.equal('not_found');
    });
  });
});
