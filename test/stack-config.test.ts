/**
 * The deployment files agree with each other and with the local topology:
 * the committed nginx configurations are the template's current rendering
 * (and nginx accepts it), docker-compose.yml wires the same shards,
 * replicas, gateways and secrets as `npm start`, and the image runs compiled
 * code on production dependencies only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { DEFAULT_TOPOLOGY, validateTopology } from '@lb/common/platform';
import { findBinary } from '@lb/devtools/infra';
import { CONFIG_KEYS as GATEWAY_KEYS } from '../api-gateway/src/config.js';
import { CONFIG_KEYS as SERVICE_KEYS } from '../leaderboard-service/src/config.js';
import { CONFIG_KEYS as WORKER_KEYS } from '../worker-service/src/config.js';
import { COMMITTED_NGINX_CONFS, NCHAN_MODULE, nginxArgs, renderNginxConf } from '../scripts/stack/nginx.js';
import { REPO_ROOT } from '../scripts/stack/paths.js';

const read = (rel: string) => readFileSync(join(REPO_ROOT, rel), 'utf8');

/** The workspaces the image compiles and ships: the references of tsconfig.build.json. */
const PRODUCTION_WORKSPACES = (JSON.parse(read('tsconfig.build.json')) as { references: Array<{ path: string }> }).references.map((r) =>
  dirname(r.path),
);

/**
 * A Dockerfile's stages by name, each a list of its instructions (the FROM
 * line first), with comments and blank lines dropped and continuation lines
 * joined.
 */
function dockerStages(text: string): Map<string, string[]> {
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  const joined = text.replace(/\\\n\s*/g, ' ');
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM \S+ AS (\S+)$/.exec(line);
    if (from) stages.set(from[1]!, (current = []));
    current?.push(line);
  }
  return stages;
}

/** `upstream api_gateways { server a; server b; }` → ['a', 'b']. */
function upstreamServers(conf: string): string[] {
  const block = /upstream api_gateways \{([\s\S]*?)\}/.exec(conf)?.[1] ?? '';
  return [...block.matchAll(/^\s*server\s+(\S+)/gm)].map((m) => m[1]!);
}

/** Asserts `text` has every one of `directives`. */
function includesAll(text: string, directives: readonly string[]): void {
  for (const d of directives) expect(text).to.include(d);
}

describe('stack configuration', () => {
  describe('nginx', () => {
    for (const { file, options } of COMMITTED_NGINX_CONFS) {
      it(`when the template is rendered for ${relative(REPO_ROOT, file)}, then it equals the committed file`, () => {
        expect(readFileSync(file, 'utf8'), 'stale: run `npm run nginx:render`').to.equal(renderNginxConf(options));
      });
    }

    it('when rendered, then it has the proxy settings the platform relies on', () => {
      const conf = renderNginxConf(COMMITTED_NGINX_CONFS[0]!.options);
      for (const directive of [
        'worker_processes 1;',
        'daemon off;',
        'keepalive 64;',
        'proxy_http_version 1.1;',
        'proxy_set_header Connection "";',
        // Replaced, never appended to: a client cannot forge hops.
        'proxy_set_header X-Forwarded-For $remote_addr;',
        'proxy_set_header X-Real-IP $remote_addr;',
        'proxy_set_header X-Forwarded-Proto $scheme;',
        'proxy_set_header X-Request-Id $lb_request_id;',
        'add_header X-Upstream-Addr $upstream_addr always;',
        'client_max_body_size 16k;',
        'proxy_connect_timeout 2s;',
        'proxy_read_timeout 10s;',
        'proxy_send_timeout 10s;',
        // An answer of any status never counts against a gateway.
        'proxy_next_upstream error timeout;',
        'proxy_request_buffering off;',
        'limit_conn conn_per_ip 256;',
        'client_header_timeout 10s;',
        'proxy_next_upstream_tries 2;',
        'listen 127.0.0.1:8080;',
      ]) {
        expect(conf).to.include(directive);
      }
      // Retrying a POST could apply a score write twice (the API's location and the live streams' one).
      const retryLines = conf.split('\n').filter((l) => /^\s*proxy_next_upstream\s/.test(l));
      expect(retryLines).to.have.length(2);
      for (const l of retryLines) expect(l).not.to.include('non_idempotent');
      expect(conf).not.to.match(/http_50[0-9]/);
      for (const [status, code] of [
        ['400', 'invalid_payload'],
        ['431', 'headers_too_large'],
        ['408', 'request_timeout'],
        ['413', 'payload_too_large'],
        ['414', 'uri_too_long'],
        ['429', 'too_many_connections'],
        ['500', 'internal'],
        ['502', 'bad_gateway'],
        ['503', 'unavailable'],
        ['504', 'gateway_timeout'],
      ] as const) {
        expect(conf).to.match(new RegExp(`return ${status} '\\{"error":"${code}","message":"[^"]+"(,"retry_after":1)?\\}'`));
      }
    });

    it('when rendered, then a live stream is checked by a gateway and a replica, capped per address, and held by nchan in an internal location', () => {
      for (const { options } of COMMITTED_NGINX_CONFS) {
        const conf = renderNginxConf(options);
        // The public location checks the subscription (gateway, replica) and caps it; the internal one holds it.
        const locations: [string, RegExp, string[]][] = [
          [
            'the live location',
            /location ~ \(\^\/live\$\|\^\/boards\/\[\^\/\]\+\/live\$\|\^\/me\/live\$\) \{([^}]*)\}/,
            ['proxy_pass http://api_gateways;', 'proxy_http_version 1.1;', 'proxy_set_header X-Forwarded-For $remote_addr;', 'proxy_set_header Connection "";', 'limit_conn conn_per_ip 256;', 'limit_conn live_per_ip 20;', 'error_page 429 /_lb_error/too_many_streams;'],
          ],
          [
            'the internal subscriber location',
            /location ~ \^\/_lb_live\/sub\/\(\.\+\)\$ \{\n\s+internal;([^}]*)\}/,
            // Only the id the replica chose (lid): never the client's Last-Event-ID header.
            ['nchan_subscriber eventsource;', 'nchan_channel_id $1;', 'nchan_subscriber_last_message_id $arg_lid;', 'nchan_subscriber_first_message oldest;', 'nchan_eventsource_ping_interval 15;', 'sub_filter ": hi\\n" "retry: 3000\\n: hi\\n";'],
          ],
        ];
        for (const [what, re, directives] of locations) {
          const m = re.exec(conf);
          expect(m, what).to.not.equal(null);
          includesAll(m![1]!, directives);
        }
        expect(conf).to.match(/^load_module \/usr\/lib\/nginx\/modules\/ngx_nchan_module\.so;$/m);
        expect(conf).to.include('limit_conn_zone $binary_remote_addr zone=live_per_ip:10m;');
        expect(conf).to.match(/return 429 '\{"error":"too_many_streams","message":"[^"]+","retry_after":5\}'/);
        expect(conf).to.match(/location ~ \^\/_lb_live\/via\/\(\.\+\)\$ \{\n\s+internal;[^}]*proxy_pass_request_headers off;/);
      }
      const live = renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, live: { heartbeatMs: 1500, retryMs: 500, maxStreamsPerIp: 3 } });
      expect(live).to.include('limit_conn live_per_ip 3;');
      expect(live).to.include('nchan_eventsource_ping_interval 2;');
      expect(live).to.include('retry: 500\\n');
      expect(() => renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, live: { maxStreamsPerIp: 0 } })).to.throw(/maxStreamsPerIp/);
      expect(() => renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, livePort: 8080 })).to.throw(/livePort/);
    });

    it('when rendered, then nchan\'s publisher is on the internal live server only: 127.0.0.1 locally, never the public listener', () => {
      for (const { options } of COMMITTED_NGINX_CONFS) {
        const conf = renderNginxConf(options);
        const servers = conf.split(/^    server \{$/m).slice(1);
        const publishers = servers.filter((x) => x.includes('nchan_publisher'));
        expect(publishers).to.have.length(1);
        expect(publishers[0]).to.include(options.mode === 'local' ? `listen 127.0.0.1:${options.livePort};` : `listen ${options.livePort};`);
        expect(publishers[0]).not.to.include(`listen ${options.mode === 'local' ? '127.0.0.1:' : ''}${options.listenPort};`);
        expect(publishers[0]).to.match(/location = \/nchan_status \{\s+nchan_stub_status;/);
        expect(servers[0]).not.to.include('nchan_publisher');
        expect(servers[0]).not.to.include('nchan_stub_status');
      }
    });

    it('when rendered, then /metrics on the public listener is a JSON 404 and stub_status listens on 127.0.0.1 only, on its own server', () => {
      for (const { options } of COMMITTED_NGINX_CONFS) {
        const conf = renderNginxConf(options);
        expect(conf).to.include(`location ~ ^/metrics(/|$) {`);
        expect(conf).to.match(/return 404 '\{"error":"not_found","message":"[^"]+"\}'/);
        const servers = conf.split(/^    server \{$/m).slice(1);
        // The public listener, the internal live server, the stub_status server.
        expect(servers).to.have.length(3);
        expect(servers[0]).not.to.include('stub_status');
        expect(servers[2]).to.include(`listen 127.0.0.1:${options.statusPort};`);
        expect(servers[2]).to.match(/location = \/stub_status \{\s+stub_status;/);
        expect(servers[2]!.match(/^\s*listen /gm)).to.have.length(1);
      }
      const without = renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, statusPort: undefined });
      expect(without).not.to.match(/^\s*stub_status;/m);
      expect(without).not.to.include('STATUS');
      expect(() => renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, statusPort: 8080 })).to.throw(/statusPort/);
    });

    it('when rendered with a worker user, then the workers run as that user (the stack passes root when it runs as root); without one nginx keeps its default', () => {
      const local = COMMITTED_NGINX_CONFS[0]!.options;
      expect(renderNginxConf({ ...local, user: 'root' })).to.match(/^user root;$/m);
      expect(renderNginxConf(local)).not.to.match(/^user /m);
      expect(() => renderNginxConf({ ...local, user: 'root; worker_processes 8' })).to.throw(/plain path/);
    });

    it('when rendered with a web root, then / and /assets/ are served from it (typed, CSP on the page) and everything else still goes to the gateways', () => {
      for (const { options } of COMMITTED_NGINX_CONFS) {
        const conf = renderNginxConf(options);
        expect(conf).to.include(`location = / {\n            root ${options.webRoot};\n            try_files /index.html =404;`);
        expect(conf).to.include(`location /assets/ {\n            root ${options.webRoot};`);
        expect(conf).to.match(/types \{ application\/javascript js; text\/css css;/);
        expect(conf).to.include('Content-Security-Policy "default-src \'self\';');
        expect(conf).to.include('location / {\n            proxy_pass http://api_gateways;');
        expect(conf).not.to.include('WEB_');
      }
      const without = renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, webRoot: undefined });
      expect(without).not.to.include('location = / {');
      expect(without).not.to.include('/assets/');
      expect(without).not.to.include('WEB_');
      expect(() => renderNginxConf({ ...COMMITTED_NGINX_CONFS[0]!.options, webRoot: '/srv/web; evil' })).to.throw(/plain path/);
    });

    it('when rendered for docker, then it listens on every interface and leaves "daemon off" to the image', () => {
      const conf = readFileSync(COMMITTED_NGINX_CONFS[1]!.file, 'utf8');
      expect(conf).to.include('listen 8080;');
      expect(conf).not.to.match(/^daemon /m);
    });

    it('when the input is malformed, then rendering refuses', () => {
      const base = COMMITTED_NGINX_CONFS[0]!.options;
      expect(() => renderNginxConf({ ...base, gateways: [] })).to.throw(/at least one gateway/);
      expect(() => renderNginxConf({ ...base, gateways: ['127.0.0.1:4000; evil'] })).to.throw(/host:port/);
      expect(() => renderNginxConf({ ...base, listenPort: 0 })).to.throw(/listenPort/);
      expect(() => renderNginxConf({ ...base, tempDir: '/tmp/x; y' })).to.throw(/plain path/);
    });

    it('when nginx is installed, then `nginx -t` accepts the rendered local configuration', function () {
      const nginx = findBinary('nginx');
      if (!nginx || !findBinary('nchan')) {
        console.log('      (skipped: nginx or its nchan module is not installed; `npm start` installs them via scripts/bootstrap.mjs)');
        this.skip();
      }
      const dir = mkdtempSync(join(tmpdir(), 'lb-nginx-'));
      try {
        mkdirSync(join(dir, 'temp'));
        const conf = join(dir, 'nginx.conf');
        writeFileSync(
          conf,
          renderNginxConf({
            listenPort: 18080,
            gateways: ['127.0.0.1:14000', '127.0.0.1:14001', '127.0.0.1:14002'],
            mode: 'local',
            pidFile: join(dir, 'nginx.pid'),
            errorLog: 'stderr',
            accessLog: join(dir, 'access.log'),
            tempDir: join(dir, 'temp'),
            webRoot: join(dir, 'web'),
            livePort: 18091,
          }),
        );
        try {
          execFileSync(nginx, nginxArgs(nginx, conf, dir, 'stderr', true), { stdio: 'pipe', encoding: 'utf8' });
        } catch (e) {
          const err = e as { stderr?: string; message: string };
          expect.fail(`nginx -t rejected the configuration:\n${err.stderr ?? err.message}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('docker-compose.yml', () => {
    interface Service {
      image?: string;
      build?: unknown;
      command?: string[];
      ports?: unknown[];
      environment?: Record<string, string>;
      volumes?: string[];
      networks?: string[];
      network_mode?: string;
      depends_on?: Record<string, { condition: string }>;
    }
    const compose = parse(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, Service>;
      networks: Record<string, { internal?: boolean } | null>;
    };
    const services = compose.services;
    const replicas = ['leaderboard-service-1', 'leaderboard-service-2', 'leaderboard-service-3'];
    const gateways = ['api-gateway-1', 'api-gateway-2', 'api-gateway-3'];
    const redis = DEFAULT_TOPOLOGY.shards.map((s) => `redis-${s.id}`);
    /** Each shard's second node, its first replica. */
    const redisReplicas = DEFAULT_TOPOLOGY.shards.map((s) => `redis-${s.id}-b`);
    const sentinels = ['sentinel-1', 'sentinel-2', 'sentinel-3'];
    const redisExporters = DEFAULT_TOPOLOGY.shards.map((s) => `redis-exporter-${s.id}`);
    const observability = [...redisExporters, 'postgres-exporter', 'nginx-exporter', 'prometheus', 'grafana', 'jaeger'];
    /** Published on the host's loopback only: the UIs of the observability stack. */
    const uis: Record<string, string> = {
      prometheus: '127.0.0.1:${PROMETHEUS_PORT:-9090}:9090',
      grafana: '127.0.0.1:${GRAFANA_PORT:-3000}:3000',
      jaeger: '127.0.0.1:${JAEGER_UI_PORT:-16686}:16686',
    };
    const nodeServices = Object.entries(services).filter(([, s]) => s.command?.[0] === 'node');
    const topologyFile = read('docker/topology.compose.json');

    it('when parsed, then it has exactly the services of the local topology', () => {
      expect(Object.keys(services).sort()).to.deep.equal(
        [...redis, ...redisReplicas, ...sentinels, 'postgres', 'migrate', ...replicas, 'worker-service', ...gateways, 'nginx', ...observability].sort(),
      );
    });

    it('when parsed, then only nginx publishes a port to the world, the observability UIs to the host\'s loopback, and everything else is on the internal network', () => {
      const publishing = Object.entries(services).filter(([, s]) => s.ports !== undefined).map(([name]) => name);
      expect(publishing.sort()).to.deep.equal(['nginx', ...Object.keys(uis)].sort());
      expect(services.nginx!.ports).to.deep.equal(['${NGINX_PORT:-8080}:8080']);
      for (const [name, port] of Object.entries(uis)) expect(services[name]!.ports, name).to.deep.equal([port]);
      expect(compose.networks.backend?.internal).to.equal(true);
      for (const [name, s] of Object.entries(services)) {
        if (name === 'nginx-exporter') {
          // In nginx's network namespace, to read its 127.0.0.1-only stub_status.
          expect(s.network_mode).to.equal('service:nginx');
          expect(s.networks).to.equal(undefined);
          continue;
        }
        expect(s.networks, name).to.deep.equal(name === 'nginx' || name in uis ? ['edge', 'backend'] : ['backend']);
      }
    });

    it('when parsed, then the Node services serve /metrics on the private network and export traces to jaeger', () => {
      for (const [name, s] of nodeServices) {
        expect(s.environment?.METRICS_HOST, name).to.equal('0.0.0.0');
        expect(s.environment?.OTEL_EXPORTER_OTLP_ENDPOINT, name).to.equal('http://jaeger:4318');
        expect(s.environment, name).not.to.have.property('METRICS_PORT'); // each service's own default
      }
      expect(services.jaeger!.environment?.COLLECTOR_OTLP_ENABLED).to.equal('true');
    });

    it('when parsed, then every exporter watches its own store, and Prometheus and Grafana mount the committed files', () => {
      DEFAULT_TOPOLOGY.shards.forEach((_shard, i) => {
        expect(services[redisExporters[i]!]!.environment?.REDIS_ADDR).to.equal(`redis://${redis[i]}:6379`);
      });
      expect(services['postgres-exporter']!.environment?.DATA_SOURCE_NAME).to.match(/^postgresql:\/\/leaderboard:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\//);
      expect(services['nginx-exporter']!.command).to.include('-nginx.scrape-uri=http://127.0.0.1:8081/stub_status');
      expect(read('nginx/nginx.docker.conf')).to.include('listen 127.0.0.1:8081;');
      expect(services.prometheus!.volumes).to.include.members([
        './docker/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro',
        './prometheus/rules/recording.yml:/etc/prometheus/rules/recording.yml:ro',
        './docker/prometheus/alerts.yml:/etc/prometheus/rules/alerts.yml:ro',
      ]);
      expect(services.grafana!.volumes).to.include.members([
        './docker/grafana/provisioning:/etc/grafana/provisioning:ro',
        './docs/grafana:/var/lib/grafana/dashboards:ro',
      ]);
      for (const v of [...services.prometheus!.volumes!, ...services.grafana!.volumes!]) {
        const host = v.split(':')[0]!;
        if (host.startsWith('./')) expect(existsSync(join(REPO_ROOT, host)), host).to.equal(true);
      }
      const datasource = parse(read('docker/grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ uid: string; url: string }> };
      expect(datasource.datasources).to.deep.equal([{ ...datasource.datasources[0], uid: 'prometheus', url: 'http://prometheus:9090' }]);
    });

    it('when docker/prometheus/prometheus.yml is read, then it scrapes every Node service on its METRICS_PORT and every exporter', () => {
      const conf = parse(read('docker/prometheus/prometheus.yml')) as {
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[]; labels: Record<string, string> }> }>;
      };
      const targets = conf.scrape_configs.flatMap((j) => j.static_configs.flatMap((c) => c.targets.map((t) => ({ job: j.job_name, address: t, labels: c.labels }))));
      const defaultPort = (keys: readonly { env: string; defaultText: string | undefined }[]): string => keys.find((k) => k.env === 'METRICS_PORT')!.defaultText!;
      const expected = [
        ...gateways.map((g) => ({ job: 'api-gateway', address: `${g}:${defaultPort(GATEWAY_KEYS)}`, labels: { instance: g } })),
        ...replicas.map((r) => ({ job: 'leaderboard-service', address: `${r}:${defaultPort(SERVICE_KEYS)}`, labels: { instance: r } })),
        { job: 'worker-service', address: `worker-service:${defaultPort(WORKER_KEYS)}`, labels: { instance: 'worker-service' } },
        ...DEFAULT_TOPOLOGY.shards.map((s) => ({ job: 'redis', address: `redis-exporter-${s.id}:9121`, labels: { instance: `redis-${s.id}`, shard: s.id } })),
        { job: 'postgres', address: 'postgres-exporter:9187', labels: { instance: 'postgres' } },
        { job: 'nginx', address: 'nginx:9113', labels: { instance: 'nginx' } },
        { job: 'prometheus', address: 'localhost:9090', labels: { instance: 'prometheus' } },
      ];
      expect(targets).to.deep.equal(expected);
      // Every scraped host is a compose service (the nginx exporter answers as nginx).
      for (const t of targets) {
        const host = t.address.split(':')[0]!;
        if (host !== 'localhost') expect(services, t.address).to.have.property(host);
      }
    });

    it('when parsed, then the compose topology has the shards and regions of DEFAULT_TOPOLOGY', () => {
      const topology = validateTopology(JSON.parse(topologyFile), 'docker/topology.compose.json');
      expect(topology.regions).to.deep.equal(DEFAULT_TOPOLOGY.regions);
      expect(topology.shards.map((s) => s.id)).to.deep.equal(DEFAULT_TOPOLOGY.shards.map((s) => s.id));
      topology.shards.forEach((s, i) => {
        // Behind the Sentinels: the master lb-<shard>, whose first primary is redis-<shard>.
        expect(s.redis, s.id).to.deep.equal({ kind: 'sentinel', master: `lb-${s.id}`, sentinels: sentinels.map((host) => ({ host, port: 26379 })) });
        const pg = new URL(s.postgres);
        expect(pg.host).to.equal('postgres:5432');
        expect(pg.password, 'the password comes from PGPASSWORD').to.equal('');
        expect(pg.pathname).to.equal(new URL(DEFAULT_TOPOLOGY.shards[i]!.postgres).pathname);
      });
      const init = readdirSync(join(REPO_ROOT, 'docker', 'postgres-init'))
        .map((f) => read(join('docker', 'postgres-init', f)))
        .join('\n');
      for (const s of topology.shards) expect(init).to.include(`CREATE DATABASE ${new URL(s.postgres).pathname.slice(1)};`);
      expect(services.postgres!.volumes).to.include('./docker/postgres-init:/docker-entrypoint-initdb.d:ro');
    });

    it('when parsed, then every Redis node runs redis:7 by the restart rule, with the append-only file on and writes refused while its replica lags', () => {
      DEFAULT_TOPOLOGY.shards.forEach((shard, i) => {
        for (const name of [redis[i]!, redisReplicas[i]!]) {
          const s = services[name]!;
          expect(s.image, name).to.equal('redis:7');
          const cmd = s.command!;
          // MASTER SELF FIRST_PRIMARY, then the redis-server options.
          expect(cmd.slice(0, 5), name).to.deep.equal(['sh', '/etc/leaderboard/redis/redis-node.sh', `lb-${shard.id}`, name, redis[i]]);
          const opt = (o: string): string | undefined => (cmd.includes(o) ? cmd[cmd.indexOf(o) + 1] : undefined);
          expect(opt('--appendonly'), name).to.equal('yes');
          expect(opt('--min-replicas-to-write'), name).to.equal('1');
          expect(opt('--min-replicas-max-lag'), name).to.equal('2');
          expect(opt('--replica-announce-ip'), name).to.equal(name);
          expect(s.volumes, name).to.deep.equal([`${name}:/data`, './docker/redis:/etc/leaderboard/redis:ro']);
        }
      });
      const script = read('docker/redis/redis-node.sh');
      expect(script).to.include('SENTINEL get-master-addr-by-name');
      expect(script).to.include('--replicaof');
      expect(script, 'waits for a promotion before coming back as primary').to.match(/wait_ms=\d+/);
    });

    it('when parsed, then three Sentinels watch every shard with a configuration of their own, and the services wait for them', () => {
      const script = read('docker/redis/sentinel.sh');
      for (const name of sentinels) {
        const s = services[name]!;
        expect(s.image, name).to.equal('redis:7');
        expect(s.command, name).to.deep.equal(['sh', '/etc/leaderboard/redis/sentinel.sh', name]);
        // Its own volume: Sentinel rewrites sentinel.conf, and a restart must remember the current primaries.
        expect(s.volumes, name).to.deep.equal([`${name}:/data`, './docker/redis:/etc/leaderboard/redis:ro']);
        expect(Object.keys(s.depends_on ?? {}).sort(), name).to.deep.equal([...redis, ...redisReplicas].sort());
      }
      expect(script).to.include('for shard in na eu asia');
      expect(DEFAULT_TOPOLOGY.shards.map((sh) => sh.id)).to.deep.equal(['na', 'eu', 'asia']);
      expect(script).to.include('sentinel monitor lb-$shard redis-$shard 6379 2');
      expect(script).to.include('sentinel down-after-milliseconds lb-$shard 1500');
      expect(script).to.include('sentinel failover-timeout lb-$shard 4000');
      expect(script).to.include('if [ ! -s "$conf" ]');
      for (const name of [...replicas, 'worker-service']) {
        for (const sentinel of sentinels) expect(services[name]!.depends_on?.[sentinel], name).to.deep.equal({ condition: 'service_healthy' });
      }
    });

    it('when parsed, then every Node service shares one image, the topology file and the same secrets', () => {
      expect(nodeServices.map(([n]) => n).sort()).to.deep.equal(['migrate', ...replicas, 'worker-service', ...gateways].sort());
      const jwt = new Set(nodeServices.map(([, s]) => s.environment?.JWT_SECRET));
      expect([...jwt]).to.have.length(1);
      expect([...jwt][0]).to.match(/^\$\{JWT_SECRET:\?/);
      const pgPassword = new Set(nodeServices.map(([, s]) => s.environment?.PGPASSWORD));
      expect([...pgPassword]).to.deep.equal([services.postgres!.environment!.POSTGRES_PASSWORD]);
      for (const [name, s] of nodeServices) {
        expect(s.image, name).to.equal('leaderboard-platform:local');
        expect(s.environment?.TOPOLOGY_FILE, name).to.equal('/etc/leaderboard/topology.json');
        expect(s.volumes, name).to.include('./docker/topology.compose.json:/etc/leaderboard/topology.json:ro');
      }
      for (const name of [...replicas, 'worker-service']) {
        expect(services[name]!.depends_on?.migrate, name).to.deep.equal({ condition: 'service_completed_successfully' });
      }
    });

    it('when parsed, then the replicas publish live messages to nginx\'s internal live server, which no port publishes', () => {
      for (const name of replicas) expect(services[name]!.environment?.LIVE_PUBLISH_URL, name).to.equal(`http://nginx:${COMMITTED_NGINX_CONFS[1]!.options.livePort}`);
      expect(services.nginx!.ports!.join(' ')).not.to.include(String(COMMITTED_NGINX_CONFS[1]!.options.livePort));
    });

    it('when parsed, then every Node service runs a compiled entry point of its workspace, never tsx', () => {
      const expected: Record<string, string> = { migrate: 'common/dist/migrate-cli.js', 'worker-service': 'worker-service/dist/index.js' };
      for (const r of replicas) expected[r] = 'leaderboard-service/dist/index.js';
      for (const g of gateways) expected[g] = 'api-gateway/dist/index.js';
      for (const [name, s] of nodeServices) {
        expect(s.command, name).to.deep.equal(['node', expected[name]]);
        // What the build compiles it from.
        const source = expected[name]!.replace('/dist/', '/src/').replace(/\.js$/, '.ts');
        expect(existsSync(join(REPO_ROOT, source)), source).to.equal(true);
      }
      expect(read('docker-compose.yml')).not.to.match(/tsx/);
    });

    it('when parsed, then every gateway lists all three replicas and nginx lists every gateway', () => {
      const replicaUrls = replicas.map((r) => `http://${r}:${services[r]!.environment!.PORT}`);
      for (const g of gateways) {
        const urls = services[g]!.environment!.LEADERBOARD_SERVICE_URLS!.split(',');
        expect(urls, g).to.deep.equal(replicaUrls);
        expect(services[g]!.environment!.GATEWAY_ID).to.equal(g);
      }
      expect(services.nginx!.volumes).to.deep.equal(['./nginx/nginx.docker.conf:/etc/nginx/nginx.conf:ro']);
      const upstream = upstreamServers(read('nginx/nginx.docker.conf'));
      expect(upstream).to.deep.equal(gateways.map((g) => `${g}:${services[g]!.environment!.PORT}`));
      expect(Object.keys(services.nginx!.depends_on ?? {})).to.deep.equal(gateways);
    });

    it('when parsed, then the local nginx.conf upstream matches the default gateway ports', () => {
      expect(upstreamServers(read('nginx/nginx.conf'))).to.deep.equal(['127.0.0.1:4000', '127.0.0.1:4001', '127.0.0.1:4002']);
    });

    it('when the Dockerfile is read, then a build stage compiles and the node:26-slim runtime stage has only dist/, sql/ and production dependencies', () => {
      const dockerfile = read('Dockerfile');
      expect(dockerfile).to.match(/^ARG NODE_IMAGE=node:26-slim$/m);
      const stages = dockerStages(dockerfile);
      // The runtime stage last: it is the default target, the image of the Node services.
      expect([...stages.keys()]).to.deep.equal(['build', 'nginx', 'runtime']);
      // nginx: Debian's nginx and nchan module (the module is built for that nginx), plus the page the
      // build stage bundled, where nginx.docker.conf serves it from, and the module it loads.
      const nginx = stages.get('nginx')!;
      expect(nginx[0]).to.equal('FROM debian:bookworm-slim AS nginx');
      expect(nginx.join(' ')).to.match(/apt-get install -y --no-install-recommends nginx libnginx-mod-nchan /);
      expect(nginx).to.include(`COPY --from=build /app/web/dist ${COMMITTED_NGINX_CONFS[1]!.options.webRoot}`);
      expect(nginx).to.include('CMD ["nginx", "-g", "daemon off;"]');
      expect(read('nginx/nginx.docker.conf')).to.include(`load_module ${NCHAN_MODULE};`);
      const build = stages.get('build')!;
      const runtime = stages.get('runtime')!;
      expect(build[0]).to.equal('FROM ${NODE_IMAGE} AS build');
      expect(runtime[0]).to.equal('FROM ${NODE_IMAGE} AS runtime');
      // Every workspace's manifest, so npm ci finds the tree its lockfile describes.
      const workspaces = (JSON.parse(read('package.json')) as { workspaces: string[] }).workspaces;
      for (const stage of [build, runtime]) {
        for (const ws of workspaces) expect(stage).to.include(`COPY ${ws}/package.json ${ws}/`);
      }
      expect(build).to.include('RUN npm ci --no-audit --no-fund');
      expect(build).to.include('RUN npm run build');
      expect(runtime.filter((i) => i.startsWith('RUN '))).to.deep.equal([
        'RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force',
      ]);
      const copies = runtime.filter((i) => i.startsWith('COPY ') && !/package(-lock)?\.json/.test(i));
      expect(copies).to.deep.equal([
        ...PRODUCTION_WORKSPACES.map((ws) => `COPY --from=build /app/${ws}/dist ${ws}/dist`),
        'COPY sql sql',
      ]);
      expect(runtime).to.include('USER node');
      expect(runtime.at(-1)).to.equal('CMD ["node", "leaderboard-service/dist/index.js"]');
      expect([...build, ...runtime].join('\n')).not.to.match(/tsx/);
    });

    it('when .dockerignore is read, then local builds stay out of the context and the build script gets in', () => {
      const ignore = read('.dockerignore').split('\n').map((l) => l.trim());
      expect(ignore).to.include('**/dist');
      expect(ignore).to.include('**/node_modules');
      expect(ignore).to.include('!scripts/build.mjs');
    });
  });
});
