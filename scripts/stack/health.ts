/** Health probes: one HTTP GET at a time, on a fresh connection, with a deadline. */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** Result of one probe: the status code, or why there is none. */
export type ProbeResult = { readonly status: number; readonly body: string } | { readonly error: string };

/** GET `url` once; never throws. */
export function probe(url: string, timeoutMs = 2000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    // agent: false = a new connection that is closed afterwards, so probes
    // never hold keep-alive sockets open in the processes they check.
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 2000) }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

/** Describes a probe result for messages: `200`, `503 {"ok":false…}`, `ECONNREFUSED`. */
export function describeProbe(r: ProbeResult): string {
  return 'status' in r ? `${r.status}${r.status === 200 ? '' : ` ${r.body.slice(0, 300)}`}` : r.error;
}

/** How {@link waitHealthy} ended. */
export type WaitOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'exited' | 'timeout' | 'aborted'; readonly last: string };

/**
 * Probes `url` until it answers 200. Gives up when `alive()` turns false (the
 * process died: no point waiting), after `timeoutMs`, or on abort.
 */
export async function waitHealthy(
  url: string,
  opts: { timeoutMs: number; alive: () => boolean; signal?: AbortSignal | undefined },
): Promise<WaitOutcome> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer yet';
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    if (opts.signal?.aborted) return { ok: false, reason: 'aborted', last };
    if (!opts.alive()) return { ok: false, reason: 'exited', last };
    const r = await probe(url, 2000);
    if ('status' in r && r.status === 200) return { ok: true };
    last = describeProbe(r);
    if (Date.now() >= deadline) return { ok: false, reason: 'timeout', last };
    await sleep(delay);
  }
}
