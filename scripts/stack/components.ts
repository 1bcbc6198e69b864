/**
 * The components of a stack. Each knows how to start (and start again on the
 * same port, with the same data), how to tell it is healthy, how to stop
 * gracefully and how to be killed for fault tests. The stack (stack.ts)
 * decides the order, what a failure means and when to restart.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  distNodeArgs,
  freePort,
  pingRedis,
  redisRole,
  SENTINEL_DEFAULTS,
  SOURCE_NODE_ARGS,
  startHaRedisNode,
  startPostgres,
  startRedis,
  startSentinel,
  type NodeRole,
  type PostgresProcess,
  type RedisProcess,
  type RedisRole,
  type SentinelMaster,
  type SentinelProcess,
} from '@lb/devtools/infra';
import { describeExit, spawnProcess, type ExitInfo, type Proc } from './children.js';
import { probe, waitHealthy, type WaitOutcome } from './health.js';
import { ComponentLog, type Color, type LogTarget } from './logs.js';
import { nginxArgs, renderNginxConf, type LiveStreamSettings } from './nginx.js';
import type { NodeCode } from './options.js';
import { REPO_ROOT } from './paths.js';
import { childPids, pidAlive, processStartTime, signal, waitGone } from './proc.js';

export type ComponentKind = 'redis' | 'sentinel' | 'postgres' | 'service' | 'worker' | 'gateway' | 'nginx' | 'exporter' | 'prometheus';

/**
 * - `pending`: not started yet; `starting`: launched, not yet healthy
 * - `healthy`: passed its health check; `unhealthy`: running but never passed it
 * - `exited`: died, or was killed through the stack, and will not be restarted
 *   (restarts off, or a deliberate kill); `missing`: its entry point does not exist
 * - `restarting`: died on its own; a restart is scheduled after the backoff
 * - `failed`: died too often within the restart window; left down for good
 * - `stopping` / `stopped`: during and after a deliberate stop
 */
export type ComponentStatus =
  | 'pending'
  | 'starting'
  | 'healthy'
  | 'unhealthy'
  | 'exited'
  | 'restarting'
  | 'failed'
  | 'missing'
  | 'stopping'
  | 'stopped';

/** A snapshot of one component, as the stack reports it. */
export interface ComponentInfo {
  /**
   * `redis-na`, `redis-na-b` (a shard's second Redis node), `sentinel-1`,
   * `postgres`, `leaderboard-service-1`, `worker-service-1`,
   * `api-gateway-1`, `nginx`, `redis-exporter-na`, `postgres-exporter`,
   * `nginx-exporter`, `prometheus`.
   */
  readonly name: string;
  readonly kind: ComponentKind;
  /** Listening port (the worker's is its /health port); undefined before the first start. */
  readonly port: number | undefined;
  /**
   * Node services: the port of their `GET /metrics` (METRICS_PORT, on
   * 127.0.0.1); undefined with metrics off or before the first start.
   * Exporters and Prometheus serve /metrics on {@link port}.
   */
  readonly metricsPort: number | undefined;
  /** Current process id; undefined when not running. */
  readonly pid: number | undefined;
  /** `redis://…`, `postgres://…` (server, no database), or `http://127.0.0.1:<port>`. */
  readonly url: string | undefined;
  /** Its log file under `<dataDir>/logs/`. */
  readonly logFile: string;
  readonly status: ComponentStatus;
  /** How it last exited, once it has. */
  readonly exit: ExitInfo | undefined;
  /** Why it is unhealthy, missing, exited, restarting or failed (probe answer, error), when known. */
  readonly detail: string | undefined;
  /** How many times the stack restarted it after it died on its own (deliberate restarts not counted). */
  readonly restarts: number;
  /** Stopped with SIGSTOP through the stack (Stack.sendSignal) and not continued yet: it runs, frozen. */
  readonly paused: boolean;
}

/**
 * The stack starts redis (the primaries, then their replicas), the
 * Sentinels, postgres, services, workers, gateways, nginx, the exporters,
 * then Prometheus, and stops in this order: Prometheus and the exporters
 * first (they only watch), nginx and the gateways (no new traffic), then the
 * services (no new events), then the worker (it drains what the services
 * queued), then the stores: the Sentinels before Redis, so that stopping a
 * primary is not taken for a failure and failed over.
 */
export const STOP_ORDER: readonly ComponentKind[] = ['prometheus', 'exporter', 'nginx', 'gateway', 'service', 'worker', 'postgres', 'sentinel', 'redis'];

export const KIND_COLORS: Readonly<Record<ComponentKind, Color>> = {
  redis: 'cyan',
  sentinel: 'cyan',
  postgres: 'blue',
  service: 'green',
  worker: 'yellow',
  gateway: 'magenta',
  nginx: 'bold',
  exporter: 'gray',
  prometheus: 'red',
};

/** What every component needs from the stack. */
export interface ComponentContext {
  readonly logsDir: string;
  readonly logTarget: LogTarget;
  readonly healthTimeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** The Node.js binary of the Node services. */
  readonly node: string;
}

/** Graceful stop timeouts before SIGKILL. */
const NODE_STOP_TIMEOUT_MS = 35_000; // the worker allows itself 30 s to commit its last batch
const NGINX_STOP_TIMEOUT_MS = 10_000;

export abstract class Component {
  status: ComponentStatus = 'pending';
  exit: ExitInfo | undefined;
  detail: string | undefined;
  port: number | undefined;
  metricsPort: number | undefined;
  /** Set while we stop or kill it on purpose, so its exit is not reported as a crash. */
  deliberate = false;
  /** Automatic restarts so far; kept by the stack's supervisor. */
  restarts = 0;
  /** SIGSTOPped through the stack (fault injection): still running, so never restarted; continued before a stop. */
  paused = false;

  constructor(
    readonly name: string,
    readonly kind: ComponentKind,
    readonly logFile: string,
    protected readonly ctx: ComponentContext,
  ) {}

  abstract pid(): number | undefined;
  /** Process start time for stack.json. */
  abstract startTime(): number | undefined;
  abstract running(): boolean;
  abstract url(): string | undefined;
  /** Starts the process; resolves once it runs (not necessarily healthy). Throws if it cannot start. */
  protected abstract launch(): Promise<void>;
  /** Waits until healthy (or dead, or out of time). */
  protected abstract ready(): Promise<WaitOutcome>;
  /** Graceful stop, escalating to SIGKILL. */
  protected abstract halt(): Promise<ExitInfo | undefined>;
  /** Sends `sig` and waits for the exit (SIGKILL after a grace period for other signals). */
  protected abstract signalAndWait(sig: NodeJS.Signals): Promise<ExitInfo | undefined>;

  /** Starts and waits for health; sets the status. Infra start errors propagate. */
  async start(): Promise<WaitOutcome> {
    this.deliberate = false;
    this.paused = false;
    this.exit = undefined;
    this.detail = undefined;
    this.status = 'starting';
    await this.launch();
    const outcome = await this.ready();
    if (outcome.ok) {
      this.status = 'healthy';
    } else if (outcome.reason === 'exited' || !this.running()) {
      this.status = 'exited';
      this.detail = this.exit ? `exited with ${describeExit(this.exit)}` : outcome.last;
    } else {
      this.status = 'unhealthy';
      this.detail = `${outcome.reason === 'timeout' ? `not healthy after ${this.ctx.healthTimeoutMs} ms` : outcome.reason}: ${outcome.last}`;
    }
    return outcome;
  }

  async stop(): Promise<void> {
    // A crashed, missing or never-started component keeps saying so.
    if (!this.running()) return;
    this.deliberate = true;
    this.status = 'stopping';
    this.resume();
    this.exit = await this.halt();
    this.status = 'stopped';
  }

  /** Fault injection: signal it (default SIGKILL) and wait until it is gone. Not reported as a crash. */
  async kill(sig: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo | undefined> {
    if (!this.running()) return this.exit;
    this.deliberate = true;
    if (sig !== 'SIGKILL') this.resume();
    this.exit = await this.signalAndWait(sig);
    this.status = 'exited';
    this.detail = `killed with ${sig}`;
    return this.exit;
  }

  /**
   * Fault injection by PID, as from outside the stack: SIGKILL (or SIGTERM)
   * is a crash the supervisor restarts; SIGSTOP freezes the process (it
   * still runs, so it is not restarted) until SIGCONT.
   */
  sendSignal(sig: 'SIGKILL' | 'SIGTERM' | 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.running() ? this.pid() : undefined;
    if (pid === undefined) throw new Error(`${this.name} is not running (status ${this.status})`);
    process.kill(pid, sig);
    this.paused = sig === 'SIGSTOP';
  }

  /** Continues a SIGSTOPped process (a stopped process cannot act on SIGTERM). */
  protected resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const pid = this.pid();
    if (pid !== undefined) signal(pid, 'SIGCONT');
  }

  info(): ComponentInfo {
    return Object.freeze({
      name: this.name,
      kind: this.kind,
      port: this.port,
      metricsPort: this.metricsPort,
      pid: this.running() ? this.pid() : undefined,
      url: this.url(),
      logFile: this.logFile,
      status: this.status,
      exit: this.exit,
      detail: this.detail,
      restarts: this.restarts,
      paused: this.paused && this.running(),
    });
  }
}

// ------------------------------------------------- Redis and Postgres ----

/** What a server started by @lb/devtools/infra offers (RedisProcess, PostgresProcess). */
interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  running(): boolean;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** A Redis or Postgres server started (and stopped) through @lb/devtools/infra. */
abstract class ServerComponent<P extends ServerProcess> extends Component {
  protected proc: P | undefined;

  /** How long a polite signal may take before SIGKILL. */
  protected abstract readonly stopTimeoutMs: number;

  pid(): number | undefined {
    return this.proc?.pid;
  }
  startTime(): number | undefined {
    return this.proc && processStartTime(this.proc.pid);
  }
  running(): boolean {
    return this.proc?.running() ?? false;
  }

  protected async halt(): Promise<ExitInfo | undefined> {
    await this.proc?.stop();
    return undefined;
  }

  protected async signalAndWait(sig: NodeJS.Signals): Promise<ExitInfo | undefined> {
    if (sig === 'SIGKILL') await this.proc?.kill();
    else {
      process.kill(this.proc!.pid, sig);
      await waitUntil(() => !this.running(), this.stopTimeoutMs);
      if (this.running()) await this.proc?.kill();
    }
    return { code: null, signal: sig };
  }
}

/** What a Redis node of a shard with a replica (and Sentinels) needs. */
export interface RedisHaSettings {
  /** The shard's Sentinel master name (`lb-na`). */
  readonly master: string;
  /** The Sentinels' ports (read at each launch: they start after Redis, on ports that may be ephemeral). */
  readonly sentinelPorts: () => number[];
  /** Its role at its first start: primary, or the replica of the node that starts as primary (read after that one started). */
  readonly initialRole: () => NodeRole;
  /** Where its role decisions are reported (the stack's log). */
  readonly log: (line: string) => void;
}

/**
 * `min-replicas-to-write 1`, `min-replicas-max-lag 2`: a primary of a shard
 * with a replica refuses writes its replica has not been keeping up with
 * (set on both nodes, either may be primary).
 */
const HA_WRITE_SAFETY = { minReplicasToWrite: 1, minReplicasMaxLagSeconds: 2 } as const;

export class RedisComponent extends ServerComponent<RedisProcess> {
  protected readonly stopTimeoutMs = 15_000;
  /** The role it took at its last start; undefined before the first. */
  startedAs: NodeRole | undefined;

  constructor(
    readonly shardId: string,
    name: string,
    private readonly dir: string,
    port: number,
    ctx: ComponentContext,
    /** Undefined: a shard without replicas (one plain server). */
    readonly ha?: RedisHaSettings,
  ) {
    super(name, 'redis', join(ctx.logsDir, `${name}.log`), ctx);
    this.port = port;
  }

  url(): string | undefined {
    return this.port ? `redis://127.0.0.1:${this.port}` : undefined;
  }

  /** Its role now, from INFO replication; rejects when it does not answer (down, or SIGSTOPped). */
  role(timeoutMs = 1000): Promise<RedisRole> {
    if (!this.port || !this.running()) return Promise.reject(new Error(`${this.name} is not running`));
    return redisRole(this.port, timeoutMs);
  }

  protected async launch(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    // Port 0 only on the very first start: a restart must come back where
    // the topology (and every client) expects it.
    const base = { port: this.port || 0, dir: this.dir, appendOnly: true, logFile: this.logFile, name: this.name };
    if (!this.ha) {
      this.proc = await startRedis(base);
      this.startedAs = 'primary';
    } else {
      // The restart rule (devtools/src/infra/redis-ha.ts): the first start
      // takes its given role; any later one asks the Sentinels, and never
      // comes back as a stale primary while its replica may be promoted.
      const first = this.startedAs === undefined;
      const started = await startHaRedisNode({
        ...base,
        ...HA_WRITE_SAFETY,
        master: this.ha.master,
        sentinelPorts: this.ha.sentinelPorts(),
        ...(first ? { initial: this.ha.initialRole() } : { fallback: this.startedAs! }),
        log: this.ha.log,
        ...(this.ctx.signal && { signal: this.ctx.signal }),
      });
      this.proc = started.proc;
      this.startedAs = started.replicaOf ?? 'primary';
    }
    this.port = this.proc.port;
  }

  protected async ready(): Promise<WaitOutcome> {
    return (await pingRedis(this.port!, 2000)) ? { ok: true } : { ok: false, reason: 'timeout', last: 'no PONG' };
  }
}

/** One of the Redis Sentinels watching every shard of a stack with replicas. */
export class SentinelComponent extends ServerComponent<SentinelProcess> {
  protected readonly stopTimeoutMs = 10_000;
  private launched = false;

  constructor(
    name: string,
    private readonly dir: string,
    port: number,
    /** The primaries to monitor when it writes a new configuration (read at launch: their ports may be ephemeral). */
    private readonly masters: () => SentinelMaster[],
    /** Replace a configuration left by an earlier run at the first start (it names other ports). */
    private readonly replaceConfig: boolean,
    ctx: ComponentContext,
  ) {
    super(name, 'sentinel', join(ctx.logsDir, `${name}.log`), ctx);
    this.port = port;
  }

  url(): string | undefined {
    return this.port ? `redis://127.0.0.1:${this.port}` : undefined;
  }

  protected async launch(): Promise<void> {
    // A restart keeps the configuration Sentinel rewrote: it names the current primaries.
    this.proc = await startSentinel({
      port: this.port || 0,
      dir: this.dir,
      masters: this.masters(),
      ...SENTINEL_DEFAULTS,
      logFile: this.logFile,
      name: this.name,
      replaceConfig: !this.launched && this.replaceConfig,
    });
    this.launched = true;
    this.port = this.proc.port;
  }

  protected async ready(): Promise<WaitOutcome> {
    return (await pingRedis(this.port!, 2000)) ? { ok: true } : { ok: false, reason: 'timeout', last: 'no PONG' };
  }
}

export class PostgresComponent extends ServerComponent<PostgresProcess> {
  protected readonly stopTimeoutMs = 30_000;

  constructor(
    private readonly dataDir: string,
    port: number,
    private readonly fast: boolean,
    ctx: ComponentContext,
  ) {
    super('postgres', 'postgres', join(ctx.logsDir, 'postgres.log'), ctx);
    this.port = port;
  }

  url(): string | undefined {
    return this.port ? `postgres://leaderboard@127.0.0.1:${this.port}` : undefined;
  }

  /** The running server (after start). */
  server(): PostgresProcess {
    if (!this.proc) throw new Error('postgres is not started');
    return this.proc;
  }

  protected async launch(): Promise<void> {
    this.proc = await startPostgres({ port: this.port || 0, dataDir: this.dataDir, fast: this.fast, logFile: this.logFile });
    this.port = this.proc.port;
  }

  protected async ready(): Promise<WaitOutcome> {
    return { ok: true }; // startPostgres resolves only once it accepts connections
  }
}

// ------------------------------------------------ Processes we spawn -------

/** A component whose process we spawn ourselves and whose output we log. */
abstract class SpawnedComponent extends Component {
  protected proc: Proc | undefined;
  private log: ComponentLog | undefined;
  /** Called when the process exits without us asking it to. */
  onCrash: ((c: Component, exit: ExitInfo) => void) | undefined;

  pid(): number | undefined {
    return this.proc?.pid;
  }
  startTime(): number | undefined {
    return this.proc?.startTime;
  }
  running(): boolean {
    return this.proc?.running() ?? false;
  }

  protected logger(): ComponentLog {
    this.log ??= new ComponentLog(this.name, this.logFile, KIND_COLORS[this.kind], this.ctx.logTarget);
    return this.log;
  }

  protected async spawn(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
    const log = this.logger();
    log.note(`starting ${this.name}: ${[cmd, ...args].map(shortPath).join(' ')}`);
    const proc = await spawnProcess(cmd, args, { cwd: REPO_ROOT, env, log });
    this.proc = proc;
    log.note(`pid ${proc.pid}`);
    void proc.exited.then((exit) => {
      if (this.proc !== proc) return; // a newer process replaced this one
      log.note(`exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`);
      this.exit = exit;
      this.afterExit();
      if (this.deliberate) return;
      // Dying during start-up is reported by the start itself.
      const wasStarting = this.status === 'starting';
      this.status = 'exited';
      if (!wasStarting) this.onCrash?.(this, exit);
    });
  }

  protected async signalAndWait(sig: NodeJS.Signals): Promise<ExitInfo | undefined> {
    return this.proc?.stop(sig, sig === 'SIGKILL' ? 10_000 : NODE_STOP_TIMEOUT_MS);
  }

  /** Runs when its process has exited, whoever asked (nothing to clean up by default). */
  protected afterExit(): void {}

  /** Health wait that, when the process died, also waits for its exit status (and last log lines). */
  protected async waitReady(path: string): Promise<WaitOutcome> {
    const outcome = await waitHealthy(`${this.url()}${path}`, {
      timeoutMs: this.ctx.healthTimeoutMs,
      alive: () => this.running(),
      signal: this.ctx.signal,
    });
    if (!outcome.ok && outcome.reason === 'exited') await this.proc?.exited;
    return outcome;
  }

  /** Flushes and closes the log file (after the final stop). */
  async closeLog(): Promise<void> {
    await this.log?.close();
    this.log = undefined;
  }
}

/**
 * A Node service of this repository: compiled, `node <workspace>/dist/index.js`,
 * or from source, `node --conditions=development --import tsx <workspace>/src/index.ts`
 * (see {@link NodeCode}).
 */
export class NodeComponent extends SpawnedComponent {
  /** Repository-relative entry point. */
  readonly entry: string;
  private readonly metricsOn: boolean;

  constructor(
    name: string,
    kind: 'service' | 'worker' | 'gateway',
    port: number,
    /** The environment for a given port and metrics port (both only known at launch; metrics port 0 = off). */
    private readonly envFor: (port: number, metricsPort: number) => NodeJS.ProcessEnv,
    ctx: ComponentContext,
    /** Which code it runs. */
    private readonly code: NodeCode,
    /** Node.js flags before the entry point. */
    private readonly nodeArgs: readonly string[] = [],
    /** Port of its /metrics: > 0 fixed, 0 a free one, undefined = metrics off. */
    metricsPort: number | undefined = undefined,
  ) {
    super(name, kind, join(ctx.logsDir, `${name}.log`), ctx);
    this.port = port;
    this.metricsPort = metricsPort;
    this.metricsOn = metricsPort !== undefined;
    const workspace = { service: 'leaderboard-service', worker: 'worker-service', gateway: 'api-gateway' }[kind];
    this.entry = code === 'dist' ? join(workspace, 'dist', 'index.js') : join(workspace, 'src', 'index.ts');
  }

  url(): string | undefined {
    return (this.port ? `http://127.0.0.1:${this.port}` : undefined);
  }

  override async start(): Promise<WaitOutcome> {
    if (!existsSync(join(REPO_ROOT, this.entry))) {
      this.status = 'missing';
      this.detail = `${this.entry} does not exist (yet)`;
      return { ok: false, reason: 'exited', last: this.detail };
    }
    return super.start();
  }

  protected async launch(): Promise<void> {
    // Chosen once: a restarted replica must come back on the port the
    // gateways (or nginx) were configured with.
    this.port ||= await freePort();
    if (this.metricsOn) this.metricsPort ||= await freePort();
    const loader = this.code === 'source' ? SOURCE_NODE_ARGS : distNodeArgs(this.ctx.node);
    await this.spawn(this.ctx.node, [...this.nodeArgs, ...loader, join(REPO_ROOT, this.entry)], this.envFor(this.port, this.metricsPort ?? 0));
  }

  protected ready(): Promise<WaitOutcome> {
    return this.waitReady('/health');
  }

  protected async halt(): Promise<ExitInfo | undefined> {
    return this.proc?.stop('SIGTERM', NODE_STOP_TIMEOUT_MS);
  }
}

/** What nginx needs to know to render its configuration. */
export interface NginxSettings {
  readonly binary: string;
  /** `<dataDir>/nginx`: prefix, rendered conf, pid file, temp dirs. */
  readonly dir: string;
  readonly accessLog: string | 'off';
  /** `127.0.0.1:<port>` of every gateway, read at launch (their ports may be ephemeral). */
  readonly gateways: () => string[];
  /** Port of the 127.0.0.1-only `stub_status` server: > 0 fixed, 0 a free one, undefined = none (metrics off). */
  readonly statusPort: number | undefined;
  /** The live page's bundle (web/dist), served at / and /assets/; undefined: no page. */
  readonly webRoot?: string;
  /** The live streams' settings (heartbeat, retry, streams per address); defaults where not given. */
  readonly live?: Partial<LiveStreamSettings>;
  readonly nchanModule: string;
}

export class NginxComponent extends SpawnedComponent {
  /**
   * The worker processes of the current master. A master killed with
   * SIGKILL (from outside, or by {@link kill}) cannot take them down: they
   * would keep serving and hold the port a restarted nginx needs to bind.
   */
  private workers: Array<{ pid: number; startTime?: number }> = [];
  /** Settles once the workers of the last master to exit are gone. */
  private reaping: Promise<void> = Promise.resolve();
  /** Port of its `stub_status` server (chosen at the first launch when ephemeral). */
  statusPort: number | undefined;
  /** Port of its internal live server (nchan's publisher), chosen by {@link livePublishUrl} before the replicas start. */
  private livePort: number;

  constructor(
    port: number,
    livePort: number,
    private readonly settings: NginxSettings,
    ctx: ComponentContext,
  ) {
    super('nginx', 'nginx', join(ctx.logsDir, 'nginx.log'), ctx);
    this.port = port;
    this.statusPort = settings.statusPort;
    this.livePort = livePort;
  }

  /**
   * `http://127.0.0.1:<port>` of the internal live server, where the
   * replicas publish (their LIVE_PUBLISH_URL): known before nginx starts,
   * since the replicas start first (an ephemeral port is picked here).
   */
  async livePublishUrl(): Promise<string> {
    this.livePort ||= await freePort();
    return `http://127.0.0.1:${this.livePort}`;
  }

  /** `http://127.0.0.1:<port>/nchan_status`: nchan's channels, subscribers and messages. */
  nchanStatusUrl(): string | undefined {
    return this.livePort ? `http://127.0.0.1:${this.livePort}/nchan_status` : undefined;
  }

  /** `http://127.0.0.1:<port>/stub_status` (what the nginx exporter reads), once its port is known. */
  statusUrl(): string | undefined {
    return this.statusPort ? `http://127.0.0.1:${this.statusPort}/stub_status` : undefined;
  }

  url(): string | undefined {
    return (this.port ? `http://127.0.0.1:${this.port}` : undefined);
  }

  /** The rendered configuration file. */
  confFile(): string {
    return join(this.settings.dir, 'nginx.conf');
  }

  protected async launch(): Promise<void> {
    await this.reaping;
    // The live port was picked (not bound) before the replicas started: the others must not be handed it again.
    await this.livePublishUrl();
    this.port ||= await freePort([this.livePort]);
    if (this.statusPort === 0) this.statusPort = await freePort([this.livePort, this.port]);
    const { dir } = this.settings;
    // nginx creates the *_temp subdirectories but not their parent.
    mkdirSync(join(dir, 'temp'), { recursive: true });
    const gateways = this.settings.gateways();
    if (gateways.length === 0) throw new Error('no api-gateway instance was started, so there is nothing to proxy to');
    const conf = renderNginxConf({
      listenPort: this.port,
      gateways,
      mode: 'local',
      pidFile: join(dir, 'nginx.pid'),
      // stderr is piped into logs/nginx.log (and the terminal) like every other component.
      errorLog: 'stderr',
      accessLog: this.settings.accessLog,
      tempDir: join(dir, 'temp'),
      // Started as root, nginx would run its workers as `nobody`, who cannot read
      // web/dist (nor write the temp paths) in a checkout or data directory only
      // its owner may enter, such as one under `mktemp -d` (0700). The stack's
      // other processes all run as the invoking user; so do nginx's workers.
      ...(process.getuid?.() === 0 && { user: 'root' }),
      ...(this.statusPort !== undefined && { statusPort: this.statusPort }),
      ...(this.settings.webRoot !== undefined && { webRoot: this.settings.webRoot }),
      livePort: this.livePort,
      ...(this.settings.live !== undefined && { live: this.settings.live }),
      nchanModule: this.settings.nchanModule,
    });
    writeFileSync(this.confFile(), conf);
    await this.spawn(this.settings.binary, nginxArgs(this.settings.binary, this.confFile(), dir, 'stderr'), process.env);
  }

  protected async ready(): Promise<WaitOutcome> {
    const outcome = await this.waitReady('/nginx-health');
    // Serving means the workers are up; remember who they are while their parent is known.
    const master = this.pid();
    if (master !== undefined && this.running()) {
      this.workers = childPids(master).map((pid) => {
        const startTime = processStartTime(pid);
        return startTime === undefined ? { pid } : { pid, startTime };
      });
    }
    return outcome;
  }

  protected override afterExit(): void {
    // Right away, so an orphan does not go on serving for a stack that says
    // nginx is down; a restart waits for it.
    this.reaping = this.killOrphanedWorkers();
  }

  /** SIGKILLs the recorded workers that outlived their master (same PID and start time only) and waits for them. */
  private async killOrphanedWorkers(): Promise<void> {
    const orphans = this.workers.filter((w) => pidAlive(w.pid, w.startTime));
    this.workers = [];
    for (const w of orphans) signal(w.pid, 'SIGKILL');
    if (orphans.length > 0) await waitGone(orphans, 5000);
  }

  protected async halt(): Promise<ExitInfo | undefined> {
    // SIGQUIT = graceful: finish the requests in flight, then exit.
    return this.proc?.stop('SIGQUIT', NGINX_STOP_TIMEOUT_MS);
  }

  /** GET `path` through nginx (to a gateway), for the end-to-end check. */
  probeThrough(path: string): ReturnType<typeof probe> {
    return probe(`${this.url()}${path}`, 3000);
  }
}

/** How to run one of the monitoring programs (an exporter, Prometheus). */
export interface BinarySpec {
  readonly binary: string;
  /** Its command line for a port (known at launch: it may be ephemeral). */
  readonly args: (port: number) => string[];
  /** Extra environment (secrets such as a DSN go here, not on the command line). */
  readonly env?: () => NodeJS.ProcessEnv;
  /** Runs before each launch: writes configuration files. */
  readonly prepare?: (port: number) => void;
  /** Answers 200 once it is ready. */
  readonly healthPath: string;
  /** Grace period of SIGTERM before SIGKILL. */
  readonly stopTimeoutMs: number;
}

/**
 * A program with an HTTP port of its own that the stack spawns, watches and
 * restarts like the rest: the Redis, Postgres and nginx exporters, Prometheus.
 */
export class BinaryComponent extends SpawnedComponent {
  constructor(
    name: string,
    kind: 'exporter' | 'prometheus',
    port: number,
    private readonly spec: BinarySpec,
    ctx: ComponentContext,
  ) {
    super(name, kind, join(ctx.logsDir, `${name}.log`), ctx);
    this.port = port;
  }

  url(): string | undefined {
    return this.port ? `http://127.0.0.1:${this.port}` : undefined;
  }

  protected async launch(): Promise<void> {
    // Chosen once, like every port: Prometheus's targets must stay valid.
    this.port ||= await freePort();
    this.spec.prepare?.(this.port);
    await this.spawn(this.spec.binary, this.spec.args(this.port), { ...process.env, ...this.spec.env?.() });
  }

  protected ready(): Promise<WaitOutcome> {
    return this.waitReady(this.spec.healthPath);
  }

  protected async halt(): Promise<ExitInfo | undefined> {
    return this.proc?.stop('SIGTERM', this.spec.stopTimeoutMs);
  }
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(50);
}

/** Paths inside the repository relative to it, for shorter log lines. */
function shortPath(p: string): string {
  return p.startsWith(REPO_ROOT + sep) ? relative(REPO_ROOT, p) : p;
}
