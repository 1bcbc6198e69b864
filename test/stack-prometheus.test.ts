/**
 * Prometheus configuration without a stack: the generated scrape
 * configuration, the recording and alerting rules (checked, and their alerts
 * unit-tested, by the real promtool), the committed docker-compose renderings,
 * and the Grafana dashboard's shape. test/stack-prometheus.e2e.test.ts runs
 * all of it against a real Prometheus scraping a real stack.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { METRIC } from '@lb/common/platform';
import { findBinary } from '@lb/devtools/infra';
import { REPO_ROOT } from '../scripts/stack/paths.js';
import {
  COMMITTED_PROMETHEUS_FILES,
  DEFAULT_QUEUE_REJECT_LENGTH,
  dockerScrapeTargets,
  JOBS,
  queueRejectLength,
  RECORDING_RULES,
  renderAlertRules,
  renderPrometheusConfig,
  type ScrapeTarget,
} from '../scripts/stack/prometheus.js';
import { dashboardExpressions, DASHBOARD_FILE, type Dashboard } from './support/grafana.js';

/** The layout of a local stack: every job, ports made up. */
const LOCAL_TARGETS: ScrapeTarget[] = [
  { job: JOBS.gateway, address: '127.0.0.1:9105', instance: 'api-gateway-1' },
  { job: JOBS.service, address: '127.0.0.1:9101', instance: 'leaderboard-service-1' },
  { job: JOBS.worker, address: '127.0.0.1:9104', instance: 'worker-service-1' },
  { job: JOBS.redis, address: '127.0.0.1:9121', instance: 'redis-na', labels: { shard: 'na' } },
  { job: JOBS.postgres, address: '127.0.0.1:9187', instance: 'postgres' },
  { job: JOBS.nginx, address: '127.0.0.1:9113', instance: 'nginx' },
  { job: JOBS.prometheus, address: '127.0.0.1:9090', instance: 'prometheus' },
];

/** Runs promtool; fails the test with its output when it exits non-zero. */
function promtool(promtoolBin: string, args: string[]): string {
  try {
    return execFileSync(promtoolBin, args, { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return expect.fail(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`);
  }
}

describe('Prometheus configuration', () => {
  describe('scrape configuration', () => {
    it('when rendered, then each job lists its targets with the component as instance and Redis with its shard', () => {
      const conf = parse(renderPrometheusConfig({ targets: LOCAL_TARGETS, scrapeIntervalSeconds: 1, ruleFiles: ['/r.yml'], note: 'test' })) as {
        global: Record<string, unknown>;
        rule_files: string[];
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[]; labels: Record<string, string> }> }>;
      };
      expect(conf.global).to.include({ scrape_interval: '1s', evaluation_interval: '1s' });
      expect(conf.rule_files).to.deep.equal(['/r.yml']);
      expect(conf.scrape_configs.map((j) => j.job_name)).to.deep.equal([
        'api-gateway', 'leaderboard-service', 'worker-service', 'redis', 'postgres', 'nginx', 'prometheus',
      ]);
      const redis = conf.scrape_configs.find((j) => j.job_name === 'redis')!;
      expect(redis.static_configs).to.deep.equal([{ targets: ['127.0.0.1:9121'], labels: { instance: 'redis-na', shard: 'na' } }]);
    });

    it('when a job has no target, then it is left out; malformed or duplicate targets are refused', () => {
      const conf = renderPrometheusConfig({ targets: LOCAL_TARGETS.filter((t) => t.job !== JOBS.worker), scrapeIntervalSeconds: 5, ruleFiles: [], note: 'test' });
      expect(conf).not.to.include('worker-service');
      const base = { scrapeIntervalSeconds: 5, ruleFiles: [], note: 'test' };
      expect(() => renderPrometheusConfig({ ...base, targets: [{ ...LOCAL_TARGETS[0]!, address: 'x:1\n  evil: 1' }] })).to.throw(/host:port/);
      expect(() => renderPrometheusConfig({ ...base, targets: [LOCAL_TARGETS[0]!, LOCAL_TARGETS[0]!] })).to.throw(/both named api-gateway-1/);
      expect(() => renderPrometheusConfig({ ...base, targets: [{ ...LOCAL_TARGETS[3]!, labels: { shard: 'a"b' } }] })).to.throw(/label value/);
      expect(() => renderPrometheusConfig({ ...base, targets: LOCAL_TARGETS, scrapeIntervalSeconds: 0 })).to.throw(/scrape interval/);
    });

    for (const { file, render } of COMMITTED_PROMETHEUS_FILES) {
      it(`when ${relative(REPO_ROOT, file)} is rendered again, then it equals the committed file`, () => {
        expect(readFileSync(file, 'utf8'), 'stale: run `npm run prometheus:render`').to.equal(render());
      });
    }
  });

  describe('alerting rules', () => {
    type Rule = { alert?: string; record?: string; expr: string; for?: string };
    const rules = (text: string): Rule[] => (parse(text) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

    it('when rendered, then the backlog alert fires at half of QUEUE_REJECT_LENGTH (never when it is 0) and the others as the runbook says', () => {
      expect(DEFAULT_QUEUE_REJECT_LENGTH).to.equal(100_000);
      expect(queueRejectLength({ QUEUE_REJECT_LENGTH: '3000' })).to.equal(3000);
      const byName = new Map(rules(renderAlertRules(DEFAULT_QUEUE_REJECT_LENGTH)).map((r) => [r.alert, r]));
      expect(byName.get('BacklogHigh')!.expr).to.equal('max by (shard) (lb_backlog_events) > 50000');
      expect(rules(renderAlertRules(3001)).find((r) => r.alert === 'BacklogHigh')!.expr).to.match(/> 1500$/);
      expect(rules(renderAlertRules(0)).find((r) => r.alert === 'BacklogHigh')!.expr).to.match(/> \+Inf$/);
      expect(byName.get('LeaderboardReplicaDown')).to.include({ expr: 'up{job="leaderboard-service"} == 0', for: '30s' });
      expect(byName.get('GatewaySeesReplicaDown')).to.include({ expr: 'lb_gateway_replica_up == 0', for: '30s' });
      expect(byName.get('PersistenceLagHigh')).to.include({ expr: 'lb:persistence_lag_seconds:p99_1m > 1', for: '2m' });
      expect(byName.get('DeadLetters')!.expr).to.equal('max by (shard) (lb_dead_letter_jobs) > 0');
      expect(() => renderAlertRules(-1)).to.throw(/QUEUE_REJECT_LENGTH/);
    });

    it('when the recording rules are read, then they record the headline figures', () => {
      const names = rules(readFileSync(RECORDING_RULES, 'utf8')).map((r) => r.record);
      expect(names).to.include.members([
        'lb:writes_accepted:rate1m',
        'lb:writes:rate1m',
        'lb:reads:rate1m',
        'lb:http_request_duration_seconds:p99_1m',
        'lb:persistence_lag_seconds:p99_1m',
        'lb:backlog_events:max',
      ]);
    });
  });

  describe('promtool', () => {
    let promtoolBin: string;
    let dir: string;
    before(function () {
      const found = findBinary('promtool');
      if (!found) {
        console.log('      (skipped: promtool is not installed; npm test installs it via scripts/bootstrap.mjs)');
        this.skip();
      }
      promtoolBin = found;
      dir = mkdtempSync(join(tmpdir(), 'lb-promtool-'));
    });
    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('when the generated configuration of a local stack is checked, then promtool accepts it and its rule files', () => {
      const alerts = join(dir, 'alerts.yml');
      writeFileSync(alerts, renderAlertRules(DEFAULT_QUEUE_REJECT_LENGTH));
      const config = join(dir, 'prometheus.yml');
      writeFileSync(config, renderPrometheusConfig({ targets: LOCAL_TARGETS, scrapeIntervalSeconds: 5, ruleFiles: [RECORDING_RULES, alerts], note: 'test' }));
      expect(promtool(promtoolBin, ['check', 'config', config])).to.match(/SUCCESS: 2 rule files found/);
      // The docker one, with its rule files where the compose file mounts them from.
      const docker = renderPrometheusConfig({
        targets: dockerScrapeTargets(),
        scrapeIntervalSeconds: 5,
        ruleFiles: [RECORDING_RULES, join(REPO_ROOT, 'docker', 'prometheus', 'alerts.yml')],
        note: 'test',
      });
      writeFileSync(join(dir, 'docker.yml'), docker);
      expect(promtool(promtoolBin, ['check', 'config', join(dir, 'docker.yml')])).to.include('SUCCESS');
    });

    it('when the rules are checked, then promtool accepts the recording rules and every rendering of the alerts', () => {
      const files = [RECORDING_RULES, join(REPO_ROOT, 'docker', 'prometheus', 'alerts.yml')];
      for (const n of [0, 1, 3000]) {
        const f = join(dir, `alerts-${n}.yml`);
        writeFileSync(f, renderAlertRules(n));
        files.push(f);
      }
      const out = promtool(promtoolBin, ['check', 'rules', ...files]);
      expect(out.match(/SUCCESS/g)).to.have.length(files.length);
    });

    it('when the alerts are unit-tested with promtool test rules, then each fires on its condition, after its delay, and not before', () => {
      // promtool compares annotations too: the expressions, delays and labels are under test here
      // (`check rules` above validates the annotation templates).
      const rendered = parse(renderAlertRules(1000)) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
      for (const g of rendered.groups) for (const r of g.rules) delete r.annotations;
      const alerts = join(dir, 'alerts-1000.yml');
      writeFileSync(alerts, JSON.stringify(rendered));
      const tests = {
        rule_files: [RECORDING_RULES, alerts],
        evaluation_interval: '15s',
        tests: [
          {
            interval: '15s',
            input_series: [
              { series: 'up{job="leaderboard-service",instance="leaderboard-service-2"}', values: '1 0x8' },
              { series: 'lb_gateway_replica_up{job="api-gateway",instance="api-gateway-1",replica="http://127.0.0.1:5002"}', values: '1 0x8' },
              // 500 is not above half of 1000; 501 is.
              { series: 'lb_backlog_events{job="worker-service",instance="worker-service-1",shard="na"}', values: '500x4 501x8' },
              { series: 'lb_dead_letter_jobs{job="worker-service",instance="worker-service-1",shard="eu"}', values: '0 0 2x8' },
              { series: 'up{job="redis",instance="redis-na",shard="na"}', values: '1x8' },
            ],
            alert_rule_test: [
              { eval_time: '15s', alertname: 'LeaderboardReplicaDown', exp_alerts: [] },
              {
                eval_time: '1m',
                alertname: 'LeaderboardReplicaDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'leaderboard-service', instance: 'leaderboard-service-2' } }],
              },
              {
                eval_time: '1m',
                alertname: 'GatewaySeesReplicaDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'api-gateway', instance: 'api-gateway-1', replica: 'http://127.0.0.1:5002' } }],
              },
              { eval_time: '1m', alertname: 'BacklogHigh', exp_alerts: [] },
              { eval_time: '2m30s', alertname: 'BacklogHigh', exp_alerts: [{ exp_labels: { severity: 'warning', shard: 'na' } }] },
              { eval_time: '15s', alertname: 'DeadLetters', exp_alerts: [] },
              { eval_time: '30s', alertname: 'DeadLetters', exp_alerts: [{ exp_labels: { severity: 'warning', shard: 'eu' } }] },
              { eval_time: '2m', alertname: 'ScrapeTargetDown', exp_alerts: [] },
            ],
          },
          {
            // Lag: p99 of 2 s (every observation in the 2.5 s bucket) for more than 2 minutes.
            interval: '15s',
            input_series: [
              ...['0.5', '1', '2.5', '+Inf'].map((le) => ({
                series: `lb_persistence_lag_seconds_bucket{job="worker-service",instance="worker-service-1",shard="asia",le="${le}"}`,
                values: le === '0.5' || le === '1' ? '0x20' : '0+10x20',
              })),
            ],
            alert_rule_test: [
              { eval_time: '2m', alertname: 'PersistenceLagHigh', exp_alerts: [] },
              { eval_time: '4m', alertname: 'PersistenceLagHigh', exp_alerts: [{ exp_labels: { severity: 'warning', shard: 'asia' } }] },
            ],
          },
        ],
      };
      const file = join(dir, 'alerts.test.yml');
      writeFileSync(file, JSON.stringify(tests)); // JSON is YAML
      expect(promtool(promtoolBin, ['test', 'rules', file])).to.include('SUCCESS');
    });
  });

  describe('Grafana dashboard', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;

    it('when docs/grafana/leaderboard.json is read, then every panel queries the datasource variable and has a title and a query', () => {
      expect(dashboard).to.include({ uid: 'leaderboard', title: 'Leaderboard platform' });
      expect(dashboard.templating.list.find((v) => v.name === 'datasource')).to.include({ type: 'datasource', query: 'prometheus' });
      const panels = dashboard.panels.filter((p) => p.type !== 'row');
      expect(panels.length).to.be.greaterThan(15);
      expect(new Set(dashboard.panels.map((p) => p.id)).size, 'panel ids are unique').to.equal(dashboard.panels.length);
      for (const p of panels) {
        expect(p.title, `panel ${p.id}`).to.be.a('string').and.not.equal('');
        expect(p.datasource, p.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
        expect(p.targets, p.title).to.be.an('array').that.is.not.empty;
        for (const t of p.targets!) expect(t.datasource, p.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
      }
    });

    it('when its queries are read, then they cover the figures the issue asks for and name only metrics of the contract or the exporters', () => {
      const exprs = dashboardExpressions(dashboard).map((e) => e.expr);
      const all = exprs.join('\n');
      for (const needed of [
        METRIC.writes, METRIC.httpDuration, METRIC.persistLag, METRIC.backlog, METRIC.topCacheHits, METRIC.topCacheMisses,
        'redis_memory_used_bytes', METRIC.redisErrors, METRIC.pgErrors, METRIC.deadLetters, METRIC.upstreamFailovers,
        METRIC.replicaUp, 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds',
      ]) {
        expect(all, needed).to.include(needed);
      }
      const known = new Set<string>(Object.values(METRIC));
      for (const name of all.match(/\blb_[a-z_]+/g) ?? []) {
        expect(known.has(name.replace(/_(bucket|count|sum)$/, '')), `${name} is not in METRIC (common/src/platform/metrics.ts)`).to.equal(true);
      }
    });
  });
});
