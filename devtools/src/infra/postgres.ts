/**
 * Private PostgreSQL servers for tests and the local topology: `initdb` on
 * first use, then `postgres` itself as a direct child process (not `pg_ctl`,
 * which daemonises and would leave us without the PID), listening on
 * 127.0.0.1 only with trust authentication for the `leaderboard` superuser.
 *
 * Postgres refuses to run as root, so when we are root both `initdb` and the
 * server run as the `postgres` system user (Node's spawn uid/gid options, so
 * the PID we hold is the postmaster's and not a `runuser` wrapper's).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDatabase } from '@lb/common/platform';
import pg from 'pg';
import { ensureBinaries } from './binaries.js';
import {
  childPids,
  closeQuietly,
  fileSize,
  logTail,
  manage,
  openLog,
  readFrom,
  stopChild,
  waitForPidsGone,
  type ManagedChild,
} from './child.js';
import { freePort } from './ports.js';

/** The superuser `initdb` creates; trust auth, so URLs carry no password. */
export const PG_SUPERUSER = 'leaderboard';

/** Options for {@link startPostgres}. */
export interface StartPostgresOptions {
  /** TCP port on 127.0.0.1; 0 or undefined picks a free ephemeral port. */
  readonly port?: number;
  /** Cluster directory; initialised with `initdb` if it has no PG_VERSION. */
  readonly dataDir: string;
  /**
   * Trade durability for speed (tests): fsync, synchronous_commit and
   * full_page_writes off, initdb without syncing. A crash (or {@link PostgresProcess.kill})
   * may then lose or corrupt data, so never use it for data you want to keep.
   */
  readonly fast?: boolean;
  /** Where the server's stdout/stderr go (appended); default `<dataDir>/postgres.log`. */
  readonly logFile?: string;
  /** How long to wait for the server to accept connections (default 60 s). */
  readonly startTimeoutMs?: number;
}

/** A running PostgreSQL server owned by this process. */
export interface PostgresProcess {
  readonly port: number;
  /** PID of the postmaster. */
  readonly pid: number;
  readonly dataDir: string;
  readonly logFile: string;
  readonly superuser: typeof PG_SUPERUSER;
  /** `postgres://leaderboard@127.0.0.1:<port>/<db>` */
  urlFor(db: string): string;
  /** Creates database `db` if it does not exist (safe under concurrent callers). */
  ensureDatabase(db: string): Promise<void>;
  /** True until the postmaster has exited. */
  running(): boolean;
  /** Fast shutdown (SIGINT: clients disconnected, clean checkpoint), SIGKILL after 30 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL the postmaster and its backends, for fault tests (crash recovery on next start). Idempotent. */
  kill(): Promise<void>;
}

const STOP_TIMEOUT_MS = 30_000;
const MAX_PORT_ATTEMPTS = 5;
// Unix socket paths are limited to ~107 bytes (sun_path); leave headroom.
const MAX_SOCKET_PATH = 100;

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/**
 * Starts a PostgreSQL server as a child process, running `initdb` first if
 * `dataDir` holds no cluster yet. Resolves once it accepts connections;
 * rejects with the log tail if it exits or is not ready in time. With an
 * ephemeral port, a lost race for the port is retried with a new one.
 */
export async function startPostgres(opts: StartPostgresOptions): Promise<PostgresProcess> {
  const bins = await ensureBinaries(['postgres', 'initdb'], { install: false });
  const dataDir = resolve(opts.dataDir);
  const runAs = postgresUser();
  prepareDataDir(dataDir, runAs);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) initdb(bins.initdb, dataDir, runAs, opts.fast ?? false);
  const logFile = resolve(opts.logFile ?? join(dataDir, 'postgres.log'));
  const ephemeral = !opts.port;
  for (let attempt = 1; ; attempt++) {
    const port = ephemeral ? await freePort() : opts.port!;
    const result = await tryStart(bins.postgres, port, dataDir, logFile, runAs, opts);
    if (typeof result !== 'string') return result;
    if (!(ephemeral && result === PORT_IN_USE && attempt < MAX_PORT_ATTEMPTS)) {
      throw new Error(
        `postgres (${dataDir}) on 127.0.0.1:${port} did not start: ${result}. Last lines of ${logFile}:\n${logTail(logFile)}`,
      );
    }
  }
}

const PORT_IN_USE = 'the port is already in use';

async function tryStart(
  binary: string,
  port: number,
  dataDir: string,
  logFile: string,
  runAs: RunAs | undefined,
  opts: StartPostgresOptions,
): Promise<PostgresProcess | string> {
  const socketDir = join(dataDir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH ? dataDir : '';
  const args = [
    '-D', dataDir,
    '-p', String(port),
    // A private socket directory (or none): the default /var/run/postgresql
    // belongs to the system cluster and may not be writable by us.
    '-k', socketDir,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'max_connections=200',
  ];
  if (opts.fast) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const logStart = fileSize(logFile);
  const fd = openLog(logFile);
  let managed: ManagedChild;
  try {
    managed = manage(
      spawn(binary, args, { cwd: dataDir, stdio: ['ignore', fd, fd], env: serverEnv(), ...runAs }),
      `postgres ${dataDir}`,
    );
  } finally {
    closeQuietly(fd);
  }
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const expectedDir = realpathSync(dataDir);
  for (;;) {
    if (!managed.running()) {
      const exit = await managed.exited;
      return /could not bind|address already in use/i.test(readFrom(logFile, logStart))
        ? PORT_IN_USE
        : `exited with ${exit.signal ?? `code ${exit.code}`}`;
    }
    // Ask for the data directory: with ephemeral ports another test server
    // could own the port while ours failed to bind and is about to exit.
    const dir = await queryOnce(urlFor(port, 'postgres'), 'SHOW data_directory').catch(() => undefined);
    if (dir !== undefined && sameDir(dir, expectedDir)) break;
    if (Date.now() >= deadline) {
      await killTree(managed);
      return `not ready after ${timeoutMs} ms`;
    }
    await sleep(100);
  }
  return {
    port,
    pid: managed.pid,
    dataDir,
    logFile,
    superuser: PG_SUPERUSER,
    urlFor: (db) => urlFor(port, db),
    ensureDatabase: (db) => ensureDatabase(urlFor(port, db)),
    running: managed.running,
    async stop() {
      const exit = await stopChild(managed, 'SIGINT', STOP_TIMEOUT_MS);
      // Escalated to SIGKILL: make sure no orphaned backend keeps the shared memory.
      if (exit.signal === 'SIGKILL') await killTree(managed);
    },
    kill: () => killTree(managed),
  };
}

function sameDir(reported: string, expectedReal: string): boolean {
  try {
    return realpathSync(reported) === expectedReal;
  } catch {
    return false;
  }
}

function urlFor(port: number, db: string): string {
  return `postgres://${PG_SUPERUSER}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
}

/**
 * SIGKILLs the postmaster and its direct children (backends, checkpointer…)
 * and waits for all of them. Killing only the postmaster would leave backends
 * running until they notice, and a restart on the same data directory fails
 * while they still hold the old shared memory segment.
 */
async function killTree(managed: ManagedChild): Promise<void> {
  const children = managed.running() ? childPids(managed.pid) : [];
  await stopChild(managed, 'SIGKILL', STOP_TIMEOUT_MS);
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await waitForPidsGone(children, 10_000);
}

/** Environment for initdb/postgres: ours, minus locale settings that might not exist on the machine. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  delete env.LANGUAGE;
  return env;
}

/** uid/gid of the `postgres` user when we are root (Postgres refuses to run as root). */
function postgresUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) throw new Error('unexpected id output');
    return { uid, gid };
  } catch {
    throw new Error(
      'running as root, but PostgreSQL refuses to run as root and there is no usable "postgres" user ' +
        '(the Debian postgresql package creates it). Create one with:\n  useradd --system --user-group --no-create-home postgres',
    );
  }
}

/**
 * Creates the data directory and, when running as root, hands it to the
 * postgres user and makes sure that user can reach it. Only directories under
 * the OS temp dir get their o+x bit added automatically: loosening other
 * directories (such as a 0700 home directory) is the caller's call, so for
 * those we stop with the command to run.
 */
function prepareDataDir(dataDir: string, runAs: RunAs | undefined): void {
  const created = !existsSync(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!runAs) return;
  if (created || readdirSync(dataDir).length === 0) chownSync(dataDir, runAs.uid, runAs.gid);
  const tmp = realpathSync(tmpdir());
  for (let dir = dirname(realpathSync(dataDir)); ; dir = dirname(dir)) {
    const st = statSync(dir);
    const bit = st.uid === runAs.uid ? 0o100 : st.gid === runAs.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      if (dir.startsWith(tmp + sep)) {
        chmodSync(dir, (st.mode & 0o7777) | 0o001);
      } else {
        throw new Error(
          `the postgres user cannot reach ${dataDir}: ${dir} is not searchable by it. ` +
            `Allow traversal with:\n  chmod o+x ${dir}\nor choose a data directory elsewhere.`,
        );
      }
    }
    if (dir === dirname(dir)) break;
  }
}

function initdb(binary: string, dataDir: string, runAs: RunAs | undefined, fast: boolean): void {
  const args = ['-D', dataDir, '-U', PG_SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C'];
  // Skipping the final fsync of the new cluster saves seconds; only for throwaway clusters.
  if (fast) args.push('--no-sync');
  try {
    execFileSync(binary, args, { cwd: dataDir, env: serverEnv(), stdio: 'pipe', encoding: 'utf8', ...runAs });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    const output = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`initdb ${dataDir} failed: ${err.message.split('\n')[0]}\n${output}`);
  }
}

/** Runs one query on a fresh connection and returns the first column of the first row. */
async function queryOnce(url: string, sql: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined); // a server going away must not crash us
  try {
    await client.connect();
    const res = await client.query<Record<string, unknown>>(sql);
    const row = res.rows[0];
    return row ? String(Object.values(row)[0]) : undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}
