/**
 * What the bench started, stopped when it is interrupted (Ctrl-C, SIGTERM,
 * SIGHUP): without this an interrupted run leaves its stack, Redis and
 * Postgres running.
 */
const cleanups = new Set<() => Promise<unknown>>();
let installed = false;

/** Registers a cleanup for an interruption; the returned function unregisters it (call it once stopped normally). */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  if (!installed) {
    installed = true;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => void interrupted(sig));
  }
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

async function interrupted(sig: string): Promise<void> {
  process.stderr.write(`bench: ${sig}, stopping what it started\n`);
  await Promise.allSettled([...cleanups].map((c) => c()));
  process.exit(130);
}
