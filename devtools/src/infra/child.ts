/**
 * Shared plumbing for the server processes this package spawns (Redis,
 * Postgres): log files, log tails for error messages, waiting for exit with
 * an escalation to SIGKILL, and a registry of live children so they do not
 * outlive the Node process that started them.
 *
 * Children are spawned in our own process group on purpose: a Ctrl-C in a
 * terminal then reaches them too, which is the most reliable cleanup there is.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How a child process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * A spawned server process we own. `exited` settles exactly once, when the
 * process is gone (it never rejects).
 */
export interface ManagedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** True until the `exit` event fired. */
  readonly running: () => boolean;
}

const live = new Set<ManagedChild>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

/**
 * Wraps a freshly spawned child: records it for emergency cleanup and exposes
 * its exit as a promise. Throws if the spawn itself failed (no PID).
 */
export function manage(child: ChildProcess, what: string): ManagedChild {
  if (child.pid === undefined) throw new Error(`could not spawn ${what}`);
  let running = true;
  const managed: ManagedChild = {
    child,
    pid: child.pid,
    running: () => running,
    exited: new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        running = false;
        live.delete(managed);
        resolve({ code, signal });
      });
    }),
  };
  // An 'error' event after a successful spawn (e.g. a failed kill) must not
  // crash the process as an unhandled event; the exit promise tells the story.
  child.on('error', () => undefined);
  live.add(managed);
  installExitHook();
  return managed;
}

/**
 * Sends `signal`, waits up to `timeoutMs` for the exit, then SIGKILLs and
 * waits again. Safe to call on a child that already exited.
 */
export async function stopChild(
  managed: ManagedChild,
  signal: NodeJS.Signals,
  timeoutMs: number,
): Promise<ExitInfo> {
  if (managed.running()) managed.child.kill(signal);
  const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
  const first = await Promise.race([managed.exited, timer]);
  if (first !== 'timeout') return first;
  if (managed.running()) managed.child.kill('SIGKILL');
  return managed.exited;
}

const emergencyCleanups = new Set<() => void>();

/**
 * Registers a synchronous cleanup (e.g. deleting a temp dir) to run after the
 * children were killed when the process exits without stopping them, or on a
 * signal if {@link killChildrenOnSignals} is on. Returns an unregister function.
 */
export function addEmergencyCleanup(fn: () => void): () => void {
  emergencyCleanups.add(fn);
  installExitHook();
  return () => emergencyCleanups.delete(fn);
}

/**
 * SIGKILLs every tracked child still running, and their direct children
 * (Postgres backends, which otherwise linger until they notice the
 * postmaster is gone), then runs the emergency cleanups. Synchronous because
 * it runs from the process 'exit' event, where no further event-loop turns
 * happen.
 */
export function killTrackedChildrenSync(): void {
  for (const m of live) {
    for (const pid of [m.pid, ...childPids(m.pid)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone: nothing to do.
      }
    }
  }
  for (const fn of emergencyCleanups) {
    try {
      fn();
    } catch {
      // Best effort: one failing cleanup must not skip the others.
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Runs on normal exit, process.exit() (mocha --exit) and uncaught
  // exceptions. Graceful stop() calls have normally emptied the set already.
  process.on('exit', killTrackedChildrenSync);
}

/**
 * Opt-in: on SIGINT/SIGTERM/SIGHUP, SIGKILL tracked children, run the
 * emergency cleanups, then let the signal take its default course. Node
 * skips 'exit' handlers when a signal kills it, so without this a
 * `kill <test pid>` would orphan the servers. Not installed by default
 * because long-running scripts want their own, graceful signal handling; the
 * test harness turns it on.
 */
export function killChildrenOnSignals(): void {
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killTrackedChildrenSync();
      process.removeListener(sig, handler);
      // If somebody else handles this signal they decide what happens next;
      // otherwise re-raise so the process dies exactly as it would have.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Opens (creating/appending) a log file and returns its descriptor. */
export function openLog(path: string): number {
  return openSync(path, 'a');
}

/** Closes a descriptor handed to a child; the child keeps its own copy. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing is best effort.
  }
}

/** The last `lines` lines of a log file, or a note if it cannot be read. */
export function logTail(path: string, lines = 30): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    const all = text.split('\n');
    return all.slice(-lines).join('\n') || '(log is empty)';
  } catch (e) {
    return `(cannot read ${path}: ${(e as Error).message})`;
  }
}

/** Current size of a file in bytes (0 if missing), to read only what a new process logs. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** A file's text from byte `offset` on ('' if unreadable). */
export function readFrom(path: string, offset: number): string {
  try {
    return readFileSync(path).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/** Direct children of `pid`, from /proc (Linux only; empty elsewhere). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const stat = procStat(Number(e));
    if (stat && stat.ppid === pid) out.push(Number(e));
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  const stat = procStat(pid);
  if (stat) return stat.state !== 'Z' && stat.state !== 'X';
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces or ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Polls `pidAlive` until every pid is gone or the deadline passes. */
export async function waitForPidsGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!pids.some(pidAlive)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
}
