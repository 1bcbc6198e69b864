/**
 * Starting and stopping private `redis-server` processes for tests and the
 * local topology. Each server is a direct child of this process (never
 * daemonised) so we own its PID, bound to 127.0.0.1 only, and without RDB
 * snapshots; AOF persistence is opt-in for tests that restart a server.
 * A server may start as the replica of another (`replicaOf`), with the
 * write-safety settings of a primary that has one (`minReplicasToWrite`,
 * `minReplicasMaxLagSeconds`); Sentinels are in sentinel.ts.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureBinaries } from './binaries.js';
import {
  closeQuietly,
  fileSize,
  logTail,
  manage,
  openLog,
  readFrom,
  stopChild,
  type ManagedChild,
} from './child.js';
import { freePort } from './ports.js';

/** Options for {@link startRedis}. */
export interface StartRedisOptions {
  /** TCP port; 0 or undefined picks a free ephemeral port. */
  readonly port?: number;
  /** Working directory for the server (AOF files); created if missing. Use one per server. */
  readonly dir: string;
  /** Enable the append-only file with `appendfsync everysec` (default false). */
  readonly appendOnly?: boolean;
  /** Where stdout/stderr go (appended); default `<dir>/<name>.log`. */
  readonly logFile?: string;
  /** Label used in log file names and error messages (default `redis`). */
  readonly name?: string;
  /** How long to wait for the server to accept commands (default 15 s). */
  readonly startTimeoutMs?: number;
  /** Start as a replica of this primary (`--replicaof host port`). */
  readonly replicaOf?: RedisAddress;
  /**
   * `min-replicas-to-write`: a primary refuses writes (NOREPLICAS) unless at
   * least this many replicas are connected with a lag of at most
   * {@link minReplicasMaxLagSeconds}. Set on every node of a shard with a
   * replica (a replica may be promoted). Default 0 (off).
   */
  readonly minReplicasToWrite?: number;
  /** `min-replicas-max-lag`, seconds (Redis' default 10). */
  readonly minReplicasMaxLagSeconds?: number;
  /** `repl-diskless-sync` (default false: the primary writes an RDB file for a full sync). */
  readonly replDisklessSync?: boolean;
  /**
   * A replica: how long to wait, once it answers, for `master_link_status:up`
   * (default 10 s). Past it, the replica is returned anyway (`linkUp: false`,
   * it goes on trying) and {@link onWarning} says so.
   */
  readonly syncTimeoutMs?: number;
  /** Where a replica that is not in sync yet is reported (default: stderr). */
  readonly onWarning?: (line: string) => void;
}

/** A Redis server's address (always 127.0.0.1 here, but Sentinel answers with host and port). */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** A running Redis server owned by this process. */
export interface RedisProcess {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly name: string;
  readonly logFile: string;
  /** The primary it was started as a replica of; undefined for a primary. */
  readonly replicaOf: RedisAddress | undefined;
  /** A replica: whether its link to the primary was up when it was returned (true for a primary). */
  readonly linkUp: boolean;
  /** True until the process has exited. */
  running(): boolean;
  /** Graceful shutdown (SIGTERM: no RDB save, AOF flushed), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, for fault tests: unflushed AOF writes (up to ~1 s) are lost. Idempotent. */
  kill(): Promise<void>;
}

const STOP_TIMEOUT_MS = 10_000;
const MAX_PORT_ATTEMPTS = 5;
const PORT_IN_USE = 'the port is already in use';

/**
 * Starts `redis-server` as a child process and resolves once it answers
 * commands and has finished loading any AOF. Rejects with the log tail if the
 * server exits or does not become ready in time. With an ephemeral port, a
 * lost race for the port is retried with a new one.
 */
export async function startRedis(opts: StartRedisOptions): Promise<RedisProcess> {
  const { 'redis-server': binary } = await ensureBinaries(['redis-server'], { install: false });
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const name = opts.name ?? 'redis';
  const logFile = resolve(opts.logFile ?? join(dir, `${name}.log`));
  const ephemeral = !opts.port;
  for (let attempt = 1; ; attempt++) {
    const port = ephemeral ? await freePort() : opts.port!;
    const result = await tryStart(binary, port, dir, name, logFile, opts);
    if (typeof result !== 'string') return result;
    if (!(ephemeral && result === PORT_IN_USE && attempt < MAX_PORT_ATTEMPTS)) {
      throw new Error(
        `redis-server "${name}" on 127.0.0.1:${port} did not start: ${result}. Last lines of ${logFile}:\n${logTail(logFile)}`,
      );
    }
  }
}

async function tryStart(
  binary: string,
  port: number,
  dir: string,
  name: string,
  logFile: string,
  opts: StartRedisOptions,
): Promise<RedisProcess | string> {
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--daemonize', 'no',
    // No RDB snapshots: they fork a copy of the dataset and we never restart from them.
    '--save', '',
    '--appendonly', opts.appendOnly ? 'yes' : 'no',
    '--appendfsync', 'everysec',
    '--dir', dir,
    '--repl-diskless-sync', opts.replDisklessSync ? 'yes' : 'no',
    ...(opts.minReplicasToWrite !== undefined ? ['--min-replicas-to-write', String(opts.minReplicasToWrite)] : []),
    ...(opts.minReplicasMaxLagSeconds !== undefined ? ['--min-replicas-max-lag', String(opts.minReplicasMaxLagSeconds)] : []),
    ...(opts.replicaOf ? ['--replicaof', opts.replicaOf.host, String(opts.replicaOf.port)] : []),
  ];
  const logStart = fileSize(logFile);
  const fd = openLog(logFile);
  let managed: ManagedChild;
  try {
    // stdout/stderr straight into the log file: no pipes to drain, and even
    // errors printed before Redis parses its config end up in the log.
    managed = manage(spawn(binary, args, { cwd: dir, stdio: ['ignore', fd, fd] }), `redis-server ${name}`);
  } finally {
    closeQuietly(fd);
  }
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  for (;;) {
    if (!managed.running()) {
      const exit = await managed.exited;
      return /address already in use/i.test(readFrom(logFile, logStart))
        ? PORT_IN_USE
        : `exited with ${exit.signal ?? `code ${exit.code}`}`;
    }
    const reply = await redisCommand(port, ['INFO'], 1000).catch(() => undefined);
    const info = typeof reply === 'string' ? reply : undefined;
    // Check the PID: with ephemeral ports another server might own the port
    // while ours failed to bind and is about to exit.
    if (info !== undefined && infoField(info, 'process_id') === String(managed.pid) && infoField(info, 'loading') === '0') {
      break;
    }
    if (Date.now() >= deadline) {
      await stopChild(managed, 'SIGKILL', STOP_TIMEOUT_MS);
      return `not ready after ${opts.startTimeoutMs ?? 15_000} ms`;
    }
    await sleep(50);
  }
  // A replica answers (and serves its own, possibly stale, data) before it
  // has synced: wait for the link, but a primary that is down must not keep
  // it from starting (it will sync when the primary is back).
  let linkUp = true;
  if (opts.replicaOf) {
    const syncTimeoutMs = opts.syncTimeoutMs ?? 10_000;
    const syncDeadline = Date.now() + syncTimeoutMs;
    let status: string | undefined;
    for (;;) {
      const reply = await redisCommand(port, ['INFO', 'replication'], 1000).catch(() => undefined);
      status = typeof reply === 'string' ? infoField(reply, 'master_link_status') : undefined;
      if (status === 'up' || !managed.running() || Date.now() >= syncDeadline) break;
      await sleep(50);
    }
    linkUp = status === 'up';
    if (!managed.running()) {
      const exit = await managed.exited;
      return `exited with ${exit.signal ?? `code ${exit.code}`} while syncing with its primary`;
    }
    if (!linkUp) {
      const warn = opts.onWarning ?? ((line: string) => void process.stderr.write(`${line}\n`));
      warn(
        `redis-server "${name}" on 127.0.0.1:${port} runs as a replica of ${opts.replicaOf.host}:${opts.replicaOf.port} ` +
          `but is NOT in sync after ${syncTimeoutMs} ms (master_link_status:${status ?? 'unknown'}); it keeps trying. See ${logFile}`,
      );
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: managed.pid,
    dir,
    name,
    logFile,
    replicaOf: opts.replicaOf,
    linkUp,
    running: managed.running,
    async stop() {
      await stopChild(managed, 'SIGTERM', STOP_TIMEOUT_MS);
    },
    async kill() {
      await stopChild(managed, 'SIGKILL', STOP_TIMEOUT_MS);
    },
  };
}

/** SIGKILLs a Redis server (fault injection) and waits until it is gone. */
export function killRedis(proc: RedisProcess): Promise<void> {
  return proc.kill();
}

/** True if a Redis server on 127.0.0.1:`port` answers PING with PONG. */
export async function pingRedis(port: number, timeoutMs = 1000): Promise<boolean> {
  try {
    return (await redisCommand(port, ['PING'], timeoutMs)) === 'PONG';
  } catch {
    return false;
  }
}

/** What INFO replication says about a node's role. */
export interface RedisRole {
  readonly role: 'master' | 'slave';
  /** A replica's primary (`master_host`, `master_port`). */
  readonly master?: RedisAddress;
  /** A replica: `master_link_status:up`. */
  readonly linkUp?: boolean;
  /** A primary: how many replicas are connected (`connected_slaves`). */
  readonly connectedReplicas?: number;
  /** `master_repl_offset`. */
  readonly offset: number;
}

/** The role of the Redis server on 127.0.0.1:`port` (INFO replication); rejects when it does not answer. */
export async function redisRole(port: number, timeoutMs = 1000): Promise<RedisRole> {
  const reply = await redisCommand(port, ['INFO', 'replication'], timeoutMs);
  if (typeof reply !== 'string') throw new Error(`redis on port ${port}: INFO replication gave no text`);
  const role = infoField(reply, 'role');
  const offset = Number(infoField(reply, 'master_repl_offset') ?? 0);
  if (role === 'master') return { role, connectedReplicas: Number(infoField(reply, 'connected_slaves') ?? 0), offset };
  if (role === 'slave') {
    return {
      role,
      master: { host: infoField(reply, 'master_host') ?? '', port: Number(infoField(reply, 'master_port') ?? 0) },
      linkUp: infoField(reply, 'master_link_status') === 'up',
      offset,
    };
  }
  throw new Error(`redis on port ${port}: unexpected role "${role}"`);
}

/** A field of an INFO reply. */
export function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m?.[1]?.trim();
}

/** A decoded RESP2 reply: status/bulk strings, integers, nil, arrays. */
export type RedisReply = string | number | null | RedisReply[];

/**
 * Sends one command over a fresh TCP connection and resolves with the decoded
 * reply; error replies reject. Kept dependency-free so readiness checks do not
 * inherit a client library's reconnect and offline-queue behaviour.
 */
export function redisCommand(port: number, args: readonly string[], timeoutMs: number): Promise<RedisReply> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, value?: RedisReply): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(value ?? null);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`redis on port ${port}: no reply within ${timeoutMs} ms`)));
    socket.once('error', (e) => done(e));
    socket.once('connect', () => {
      const parts = [`*${args.length}\r\n`];
      for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
      socket.write(parts.join(''));
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let parsed: { value: RedisReply; end: number } | undefined;
      try {
        parsed = parseReply(buf, 0);
      } catch (e) {
        return done(new Error(`redis on port ${port}: ${(e as Error).message}`));
      }
      if (parsed) done(undefined, parsed.value); // else: wait for more bytes
    });
    socket.once('end', () => done(new Error(`redis on port ${port}: connection closed before a complete reply`)));
  });
}

/** Decodes one RESP2 value at `at`; undefined if `buf` does not hold all of it yet. Error replies throw. */
function parseReply(buf: Buffer, at: number): { value: RedisReply; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.subarray(at + 1, eol).toString('utf8');
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      throw new Error(line);
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.subarray(next, next + len).toString('utf8'), end: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RedisReply[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected reply type "${type}"`);
  }
}
