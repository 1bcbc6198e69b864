/**
 * Renders nginx/nginx.conf.template for the local stack (scripts/start.ts)
 * and for docker-compose, and knows the command line that runs it.
 *
 * The committed files nginx/nginx.conf and nginx/nginx.docker.conf are the
 * template rendered with {@link COMMITTED_NGINX_CONFS}; `npm run nginx:render`
 * rewrites them and test/stack-config.test.ts checks they are in sync.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveLocationRegex } from '@lb/common/contracts';
import { NGINX_TEMPLATE, REPO_ROOT } from './paths.js';

/** Inputs of {@link renderNginxConf}. */
export interface NginxConfOptions {
  /** Port nginx listens on (127.0.0.1 only in local mode, every interface in docker mode). */
  readonly listenPort: number;
  /** The api-gateway instances, `host:port` each. */
  readonly gateways: readonly string[];
  /**
   * `local`: runs in the foreground under our supervisor (`daemon off`).
   * `docker`: for the official image, whose command already passes
   * `-g 'daemon off;'` (repeating it in the file would be a fatal duplicate).
   */
  readonly mode: 'local' | 'docker';
  /** Paths below are absolute, or relative to nginx's prefix (`nginx -p`). */
  readonly pidFile: string;
  /** A file, or `stderr`. */
  readonly errorLog: string;
  /** A file, `/dev/stdout`, or `off`. */
  readonly accessLog: string;
  /** Directory for the *_temp paths (nginx creates the subdirectories). */
  readonly tempDir: string;
  /** Concurrent requests one client address may have in flight (429 above); default {@link DEFAULT_CONN_PER_IP}. */
  readonly connPerIp?: number;
  /**
   * `user` of the worker processes (only meaningful when nginx is started as
   * root; undefined: nginx's default, `nobody`).
   */
  readonly user?: string;
  /**
   * Port of the `stub_status` server (on 127.0.0.1 only, in both modes: in
   * docker the exporter shares nginx's network namespace). Undefined: no
   * such server (a stack without metrics).
   */
  readonly statusPort?: number;
  /**
   * Directory of the live page's bundle (web/dist: index.html and assets/),
   * served at `/` and `/assets/`. Undefined: no page, every path goes to
   * the gateways.
   */
  readonly webRoot?: string;
  /**
   * Port of the internal live server: nchan's publisher (`/pub/<channel>`,
   * where the replicas publish: their LIVE_PUBLISH_URL), its stub status
   * and the subscriber behind /_lb_live/via/. On 127.0.0.1 in local mode;
   * in docker mode on the container's interfaces, for the replicas'
   * containers, and never published.
   */
  readonly livePort: number;
  /** The live streams' settings; each key defaults to {@link DEFAULT_LIVE}. */
  readonly live?: Partial<LiveStreamSettings>;
  /** nchan's module file (`load_module`); default {@link NCHAN_MODULE}. */
  readonly nchanModule?: string;
}

/** What nginx, which holds the live streams, announces and enforces. */
export interface LiveStreamSettings {
  /** A heartbeat comment (`: hb`) this often, ms; nchan counts whole seconds (rounded up). */
  readonly heartbeatMs: number;
  /** The `retry:` a stream starts with (the client's reconnection delay), ms. */
  readonly retryMs: number;
  /** Streams one client address may hold open (LIVE_MAX_STREAMS_PER_IP); one more is 429 too_many_streams. */
  readonly maxStreamsPerIp: number;
}

export const DEFAULT_LIVE: LiveStreamSettings = Object.freeze({ heartbeatMs: 15_000, retryMs: 3000, maxStreamsPerIp: 20 });

/** Where Debian's libnginx-mod-nchan puts the module (nginx's --modules-path), in the docker image too. */
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

/**
 * The nchan subscriber of both subscriber locations (the public server's
 * internal one and the live server's), indented for a location body.
 * sub_filter writes the `retry:` line into nchan's greeting (`: hi`, the
 * first bytes of every stream): nchan has no setting for it.
 */
function liveSubscriber(live: LiveStreamSettings): string {
  return [
    'nchan_subscriber eventsource;',
    'nchan_channel_id $1;',
    'nchan_subscriber_last_message_id $arg_lid;',
    '# A new subscriber (no lid) gets the message the channel holds: its current state.',
    'nchan_subscriber_first_message oldest;',
    `nchan_eventsource_ping_interval ${Math.max(1, Math.ceil(live.heartbeatMs / 1000))};`,
    'nchan_eventsource_ping_comment " hb";',
    'nchan_eventsource_ping_event "";',
    '# No other site\'s page may read the streams (nchan would echo any Origin).',
    'nchan_access_control_allow_origin $scheme://$http_host;',
    `sub_filter ": hi\\n" "retry: ${live.retryMs}\\n: hi\\n";`,
    'sub_filter_once on;',
    'sub_filter_types *;',
    '# nchan sends Cache-Control: no-cache itself.',
    'add_header X-Accel-Buffering no always;',
  ]
    .map((l) => `            ${l}`)
    .join('\n');
}

/** Requests one client address may have in flight at nginx: well above a load test's 32 connections. */
export const DEFAULT_CONN_PER_IP = 256;

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
// Anything that could end a directive or open a block has no place in a path.
const SAFE_PATH = /^[^\s;{}'"$#]+$/;

const MODE_NOTES = {
  local:
    '# Mode local: listens on 127.0.0.1 only and stays in the foreground under\n' +
    '# scripts/start.ts, which renders its own copy (absolute paths under .data/)\n' +
    '# into .data/nginx/nginx.conf. Relative paths are relative to `nginx -p`.',
  docker:
    "# Mode docker: for the Dockerfile's nginx stage (Debian's nginx and nchan;\n" +
    '# docker-compose.yml mounts this file as /etc/nginx/nginx.conf; its command\n' +
    "# supplies -g 'daemon off;'). Listens on every interface of the container;\n" +
    '# gateways by service name.',
} as const;

/** Renders the nginx configuration; throws on malformed input rather than writing a broken file. */
export function renderNginxConf(opts: NginxConfOptions): string {
  if (!Number.isInteger(opts.listenPort) || opts.listenPort < 1 || opts.listenPort > 65535) {
    throw new Error(`nginx listenPort must be 1..65535, got ${opts.listenPort}`);
  }
  if (opts.statusPort !== undefined && (!Number.isInteger(opts.statusPort) || opts.statusPort < 1 || opts.statusPort > 65535 || opts.statusPort === opts.listenPort)) {
    throw new Error(`nginx statusPort must be 1..65535 and not the listen port, got ${opts.statusPort}`);
  }
  if (!Number.isInteger(opts.livePort) || opts.livePort < 1 || opts.livePort > 65535 || opts.livePort === opts.listenPort || opts.livePort === opts.statusPort) {
    throw new Error(`nginx livePort must be 1..65535 and neither the listen nor the status port, got ${opts.livePort}`);
  }
  const live = { ...DEFAULT_LIVE, ...opts.live };
  for (const [key, value] of Object.entries(live)) {
    if (!Number.isInteger(value) || value < 1 || value > 86_400_000) throw new Error(`nginx live.${key} must be a positive integer, got ${value}`);
  }
  if (opts.gateways.length === 0) throw new Error('nginx needs at least one gateway');
  const connPerIp = opts.connPerIp ?? DEFAULT_CONN_PER_IP;
  if (!Number.isInteger(connPerIp) || connPerIp < 1) throw new Error(`nginx connPerIp must be a positive integer, got ${connPerIp}`);
  for (const g of opts.gateways) {
    if (!HOST_PORT.test(g)) throw new Error(`nginx gateway "${g}" is not host:port`);
  }
  for (const [key, value] of Object.entries({
    pidFile: opts.pidFile,
    errorLog: opts.errorLog,
    accessLog: opts.accessLog,
    tempDir: opts.tempDir,
    ...(opts.user !== undefined && { user: opts.user }),
    ...(opts.webRoot !== undefined && { webRoot: opts.webRoot }),
    nchanModule: opts.nchanModule ?? NCHAN_MODULE,
  })) {
    if (!SAFE_PATH.test(value)) throw new Error(`nginx ${key} "${value}" must be a plain path`);
  }
  const values: Record<string, string> = {
    MODE_NOTE: MODE_NOTES[opts.mode],
    DAEMON: opts.mode === 'local' ? 'daemon off;\n' : '',
    USER: opts.user === undefined ? '' : `user ${opts.user};\n`,
    PID_FILE: opts.pidFile,
    ERROR_LOG: opts.errorLog,
    ACCESS_LOG: opts.accessLog === 'off' ? 'off' : `${opts.accessLog} upstream buffer=32k flush=1s`,
    TEMP_DIR: opts.tempDir.replace(/\/+$/, ''),
    CONN_PER_IP: String(connPerIp),
    LISTEN: opts.mode === 'local' ? `127.0.0.1:${opts.listenPort}` : String(opts.listenPort),
    STATUS_LISTEN: `127.0.0.1:${opts.statusPort}`,
    WEB_ROOT: (opts.webRoot ?? '').replace(/(.)\/+$/, '$1'),
    // max_fails/fail_timeout: a gateway that failed is skipped for 5 s, then tried again.
    // The live streams' location: the stream rows of the public route table, as the gateways match them.
    LIVE_LOCATION: liveLocationRegex(),
    UPSTREAM_SERVERS: opts.gateways.map((g) => `        server ${g} max_fails=1 fail_timeout=5s;`).join('\n'),
    NCHAN_MODULE: opts.nchanModule ?? NCHAN_MODULE,
    LIVE_STREAMS_PER_IP: String(live.maxStreamsPerIp),
    LIVE_SUBSCRIBER: liveSubscriber(live),
    LIVE_LISTEN: opts.mode === 'local' ? `127.0.0.1:${opts.livePort}` : String(opts.livePort),
    LIVE_LOOPBACK: `127.0.0.1:${opts.livePort}`,
    LIVE_LISTEN_NOTE:
      opts.mode === 'local'
        ? 'it listens on 127.0.0.1 only.'
        : 'the replicas reach it on the compose network, and\n    # docker-compose.yml publishes only :8080.',
  };
  // The stub_status server and the page's locations are kept (without their markers) or dropped whole.
  const template = readFileSync(NGINX_TEMPLATE, 'utf8')
    .replace(/^[ \t]*\{\{STATUS_BEGIN\}\}\n([\s\S]*?)^[ \t]*\{\{STATUS_END\}\}\n/m, (_m, block: string) => (opts.statusPort === undefined ? '' : block))
    .replace(/^[ \t]*\{\{WEB_BEGIN\}\}\n([\s\S]*?)^[ \t]*\{\{WEB_END\}\}\n\n?/m, (_m, block: string) => (opts.webRoot === undefined ? '' : `${block}\n`));
  const out = template.replace(/\{\{([A-Z_]+)\}\}/g, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`nginx template: unknown placeholder {{${name}}}`);
    return v;
  });
  return out;
}

/** The rendered files kept in the repository, and what they are rendered from. */
export const COMMITTED_NGINX_CONFS: ReadonlyArray<{ readonly file: string; readonly options: NginxConfOptions }> = [
  {
    file: join(REPO_ROOT, 'nginx', 'nginx.conf'),
    options: {
      listenPort: 8080,
      gateways: ['127.0.0.1:4000', '127.0.0.1:4001', '127.0.0.1:4002'],
      mode: 'local',
      // Relative to the prefix: `nginx -p .data/nginx/ -c "$PWD/nginx/nginx.conf"`.
      pidFile: 'nginx.pid',
      errorLog: 'stderr',
      accessLog: 'access.log',
      tempDir: 'temp',
      statusPort: 8090,
      livePort: 8091,
      // web/dist of this checkout, relative to the prefix .data/nginx/ (npm start renders the absolute path).
      webRoot: '../../web/dist',
    },
  },
  {
    file: join(REPO_ROOT, 'nginx', 'nginx.docker.conf'),
    options: {
      listenPort: 8080,
      gateways: ['api-gateway-1:4000', 'api-gateway-2:4000', 'api-gateway-3:4000'],
      mode: 'docker',
      pidFile: '/var/run/nginx.pid',
      // The image (the Dockerfile's nginx stage) links these two to the container's stdout/stderr.
      errorLog: '/var/log/nginx/error.log',
      accessLog: '/var/log/nginx/access.log',
      tempDir: '/var/cache/nginx',
      // On the container's loopback: the nginx exporter runs in nginx's network namespace.
      statusPort: 8081,
      // The replicas publish to http://nginx:8091 (LIVE_PUBLISH_URL in docker-compose.yml).
      livePort: 8091,
      // Copied into the nginx image by the Dockerfile's `nginx` stage.
      webRoot: '/usr/share/leaderboard/web',
    },
  },
];

/** `nginx -v` as [major, minor, patch], or undefined if it cannot be read. */
export function nginxVersion(binary: string): [number, number, number] | undefined {
  try {
    // nginx prints its version on stderr; execFileSync returns stdout only.
    const out = execFileSync(binary, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return parseVersion(out);
  } catch (e) {
    return parseVersion(String((e as { stderr?: string }).stderr ?? ''));
  }
}

function parseVersion(text: string): [number, number, number] | undefined {
  const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/**
 * Arguments that run `confFile` with `prefix` as the base of relative paths.
 * `-e` (nginx >= 1.19.5) moves the log nginx writes before reading its
 * configuration away from the compiled-in /var/log/nginx/error.log, which
 * only root may write; older versions just warn about it.
 */
export function nginxArgs(binary: string, confFile: string, prefix: string, errorLog: string, test = false): string[] {
  const args = ['-p', prefix.endsWith('/') ? prefix : `${prefix}/`, '-c', confFile];
  const v = nginxVersion(binary);
  if (v && (v[0] > 1 || (v[0] === 1 && (v[1] > 19 || (v[1] === 19 && v[2] >= 5))))) args.push('-e', errorLog);
  if (test) args.push('-t');
  return args;
}
