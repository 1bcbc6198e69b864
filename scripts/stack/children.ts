/**
 * The processes the stack spawns itself (Node services, nginx): output piped
 * into their {@link ComponentLog}, exit as a promise, stop with escalation to
 * SIGKILL, and a last-resort SIGKILL when our own process exits without
 * having stopped them (Redis and Postgres get the same from @lb/devtools/infra).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ComponentLog } from './logs.js';
import { childPids, processStartTime, signal } from './proc.js';

/** How a process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A process we spawned and own. */
export interface Proc {
  readonly pid: number;
  /** For stack.json: recognises this PID later (undefined without /proc). */
  readonly startTime: number | undefined;
  /** Settles once, when the process has exited; never rejects. */
  readonly exited: Promise<ExitInfo>;
  running(): boolean;
  /**
   * Sends `sig`, waits up to `timeoutMs`, then SIGKILLs the process and its
   * direct children (an nginx master's workers would otherwise keep
   * serving). Safe on a process that already exited.
   */
  stop(sig: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo>;
}

export interface SpawnOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly log: ComponentLog;
}

const live = new Set<Proc>();
let exitHookInstalled = false;

/** Spawns `cmd args`, its stdout/stderr into `opts.log`. Throws if it cannot be spawned. */
export async function spawnProcess(cmd: string, args: readonly string[], opts: SpawnOptions): Promise<Proc> {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  // A spawn failure (ENOENT, EACCES) is reported through 'error' with no pid.
  if (child.pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`cannot run ${cmd}: ${err.message}`);
  }
  child.on('error', () => undefined); // e.g. a failed kill; the exit promise tells the story
  const pid = child.pid;
  child.stdout.on('data', (c: Buffer) => opts.log.stdout(c));
  child.stderr.on('data', (c: Buffer) => opts.log.stderr(c));
  let running = true;
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, sig) => {
      running = false;
      live.delete(proc);
      // Wait for the pipes to drain so the log has the last words, but not
      // forever: a grandchild (an orphaned nginx worker) may hold them open.
      void Promise.race([closed, sleep(500, undefined, { ref: false })]).then(() => resolve({ code, signal: sig }));
    });
  });
  const proc: Proc = {
    pid,
    startTime: processStartTime(pid),
    exited,
    running: () => running,
    async stop(sig, timeoutMs) {
      if (running) signal(pid, sig);
      const first = await Promise.race([exited, sleep(timeoutMs, 'timeout' as const, { ref: false })]);
      if (first !== 'timeout') return first;
      killTree(pid);
      return exited;
    },
  };
  live.add(proc);
  installExitHook();
  return proc;
}

function killTree(pid: number): void {
  const children = childPids(pid);
  signal(pid, 'SIGKILL');
  for (const c of children) signal(c, 'SIGKILL');
}

/** SIGKILLs every spawned process still running (and its children). Synchronous: runs from 'exit'. */
export function killAllSync(): void {
  for (const p of live) if (p.running()) killTree(p.pid);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllSync);
}

/** `code 1`, `signal SIGKILL`. */
export function describeExit(e: ExitInfo): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}
