/**
 * Looking at processes by PID through /proc (Linux), for stop.ts and the
 * supervisor's emergency cleanup. A PID recorded in .data/stack.json is only
 * trusted while its start time still matches, so a recycled PID belonging to
 * somebody else's process is never signalled.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

interface ProcStat {
  readonly state: string;
  readonly ppid: number;
  /** Clock ticks after boot at which the process started. */
  readonly startTime: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces or ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state), so field 22 (starttime) is rest[19].
    return { state: rest[0] ?? '', ppid: Number(rest[1]), startTime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

/** The process's start time (an opaque number), or undefined without /proc. */
export function processStartTime(pid: number): number | undefined {
  return procStat(pid)?.startTime;
}

/**
 * True while `pid` runs and is not a zombie; with `startTime`, only if it is
 * still the same process (not a later one that reused the PID).
 */
export function pidAlive(pid: number, startTime?: number): boolean {
  const stat = procStat(pid);
  if (stat) {
    if (stat.state === 'Z' || stat.state === 'X') return false;
    return startTime === undefined || stat.startTime === startTime;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Direct children of `pid` (nginx workers, Postgres backends); empty without /proc. */
export function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && procStat(Number(e))?.ppid === pid).map(Number);
}

/** Sends a signal, ignoring "no such process". */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** Polls until every pid is gone or `timeoutMs` passed; true if all are gone. */
export async function waitGone(pids: readonly { pid: number; startTime?: number }[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!pids.some((p) => pidAlive(p.pid, p.startTime))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}
