/**
 * What a running stack leaves in its data directory: `stack.json` (who to
 * stop, read by scripts/stop.ts; how each component is doing, read by
 * scripts/status.ts) and `jwt-secret` (so tokens outlive a restart).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from './proc.js';

/** One component of a running stack, as recorded in stack.json. */
export interface ComponentRecord {
  readonly name: string;
  readonly kind: string;
  /** Absent while it has no process (not started yet, died, left down, stopped). */
  readonly pid?: number;
  /** From /proc, to recognise a recycled PID; absent where /proc is missing. */
  readonly startTime?: number;
  readonly port?: number;
  /** A Node service's `GET /metrics` port (METRICS_PORT); absent with metrics off. */
  readonly metricsPort?: number;
  /**
   * Its ComponentStatus when the supervisor last wrote the file (`healthy`,
   * `restarting`, `failed`…). Absent in files written before the stack
   * restarted components, which listed running processes only.
   */
  readonly status?: string;
  /** Automatic restarts so far (absent in those older files). */
  readonly restarts?: number;
}

/** A recorded component that has a process: what stop.ts stops. */
export interface RecordedComponent extends ComponentRecord {
  readonly pid: number;
}

/** The content of `<dataDir>/stack.json`. */
export interface StackFile {
  /** The process that started the stack and stops it on SIGTERM. */
  readonly supervisorPid: number;
  readonly supervisorStartTime?: number;
  readonly startedAt: string;
  readonly url?: string;
  /** Prometheus's UI and API, when the stack runs it. */
  readonly prometheusUrl?: string;
  /** nginx's internal live server (nchan's publisher and `/nchan_status`), on 127.0.0.1. */
  readonly liveUrl?: string;
  /** Every component, in start order; stop in reverse. */
  readonly components: readonly ComponentRecord[];
}

export const stackFilePath = (dataDir: string): string => join(dataDir, 'stack.json');

/** Reads stack.json; undefined if there is none. Throws if it is unreadable garbage. */
export function readStackFile(dataDir: string): StackFile | undefined {
  let text: string;
  try {
    text = readFileSync(stackFilePath(dataDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const parsed = JSON.parse(text) as StackFile;
  if (!Number.isInteger(parsed.supervisorPid) || !Array.isArray(parsed.components)) {
    throw new Error(`${stackFilePath(dataDir)} is not a stack file`);
  }
  return parsed;
}

/** Writes stack.json atomically (a reader never sees half a file). */
export function writeStackFile(dataDir: string, state: StackFile): void {
  const file = stackFilePath(dataDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export function removeStackFile(dataDir: string): void {
  rmSync(stackFilePath(dataDir), { force: true });
}

/** Recorded processes still running (same PID and start time). */
export function liveProcesses(state: StackFile): RecordedComponent[] {
  return state.components.filter((c): c is RecordedComponent => c.pid !== undefined && pidAlive(c.pid, c.startTime));
}

/**
 * Throws if `dataDir` belongs to a stack that is still running: its
 * supervisor is alive, or it died and left processes behind (then `npm stop`
 * cleans up). A stale file from a stack that is completely gone is fine.
 */
export function assertNotRunning(dataDir: string): void {
  const state = readStackFile(dataDir);
  if (!state) return;
  if (state.supervisorPid !== process.pid && pidAlive(state.supervisorPid, state.supervisorStartTime)) {
    throw new Error(
      `a stack is already running from ${dataDir} (supervisor pid ${state.supervisorPid}${state.url ? `, ${state.url}` : ''}); ` +
        'stop it with `npm stop` first',
    );
  }
  const leftovers = liveProcesses(state);
  if (leftovers.length > 0) {
    throw new Error(
      `processes of a previous stack in ${dataDir} are still running (${leftovers.map((c) => `${c.name} pid ${c.pid}`).join(', ')}); ` +
        'run `npm stop` to stop them',
    );
  }
}

/** Minimum length of JWT_SECRET, as enforced by the services. */
export const JWT_SECRET_MIN_LENGTH = 32;

/**
 * The JWT secret of the stack: `given` if set, else the one persisted in
 * `<dataDir>/jwt-secret`, else a new random one written there (mode 0600).
 */
export function resolveJwtSecret(dataDir: string, given: string | undefined): string {
  if (given !== undefined && given.trim() !== '') {
    const s = given.trim();
    if (s.length < JWT_SECRET_MIN_LENGTH) throw new Error(`JWT_SECRET must be at least ${JWT_SECRET_MIN_LENGTH} characters`);
    return s;
  }
  const file = join(dataDir, 'jwt-secret');
  try {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length >= JWT_SECRET_MIN_LENGTH) return s;
    throw new Error(`${file} holds fewer than ${JWT_SECRET_MIN_LENGTH} characters; delete it to get a new secret`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const secret = randomBytes(32).toString('base64url');
  // 'wx': never overwrite a secret another process wrote in the meantime.
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  return secret;
}

/** Where the stack keeps the admin API key it created on its first start. */
export const adminKeyPath = (dataDir: string): string => join(dataDir, 'admin-key');

/**
 * The admin API key of this data directory: created once (by `create`, which
 * stores only its hash in the control plane) and written to `admin-key`,
 * readable by its owner only. Returns the file and whether it is new.
 */
export async function ensureAdminKey(dataDir: string, create: () => Promise<string>): Promise<{ file: string; created: boolean }> {
  const file = adminKeyPath(dataDir);
  try {
    if (readFileSync(file, 'utf8').trim() !== '') return { file, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = await create();
  writeFileSync(file, key + '\n', { mode: 0o600 });
  return { file, created: true };
}
