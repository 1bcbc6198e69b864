/**
 * SSE watchers for the live bench (live.ts), run in a child process (forked
 * with IPC) so that parsing thousands of streams does not share an event loop
 * with the paced writer. A lean client: one node:http GET per stream (no
 * agent: a socket each, from the source address it is given), a streaming
 * parser that keeps only each event's arrival time and id; an event's data
 * is kept once per id (ids are derived from the content, so equal ids carry
 * equal rows).
 *
 * Messages: parent → child {@link ToChild}; child → parent {@link FromChild}.
 * Times are epoch milliseconds with sub-millisecond precision
 * (`performance.timeOrigin + performance.now()`), comparable across processes.
 */
import { request } from 'node:http';

export interface WatcherSpec {
  readonly path: string;
  /** Source address of the connection (127.0.0.x). */
  readonly localAddress: string;
}

export type ToChild =
  | { type: 'open'; host: string; port: number; watchers: WatcherSpec[]; concurrency: number; timeoutMs: number }
  /** Events at or after `from` (and the last one before it, the state a run starts from) of every watcher. */
  | { type: 'collect'; from: number }
  | { type: 'close' };

export interface Collected {
  /** Per watcher, in the order given: arrival times and indexes into `ids`. */
  watchers: { path: string; times: number[]; ids: number[]; ended: boolean }[];
  ids: string[];
  /** `data` of each id in `ids`. */
  data: string[];
  /** CPU seconds (user + system) of this process so far. */
  cpuS: number;
}

export type FromChild =
  | { type: 'opened'; ok: number; refused: Record<string, number> }
  | ({ type: 'collected' } & Collected)
  | { type: 'closed' };

export const now = (): number => performance.timeOrigin + performance.now();

class Watcher {
  readonly times: number[] = [];
  readonly ids: number[] = [];
  ended = false;
  private buf = '';
  private close: () => void = () => {};

  constructor(readonly spec: WatcherSpec) {}

  open(host: string, port: number, timeoutMs: number, table: IdTable): Promise<string | undefined> {
    return new Promise((resolve) => {
      const req = request({ host, port, path: this.spec.path, localAddress: this.spec.localAddress, agent: false, headers: { accept: 'text/event-stream' } });
      const timer = setTimeout(() => {
        req.destroy();
        resolve('timeout');
      }, timeoutMs);
      req.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        this.ended = true;
        resolve(e.code ?? 'error');
      });
      req.once('response', (res) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          res.resume();
          this.ended = true;
          resolve(String(res.statusCode));
          return;
        }
        this.close = () => res.destroy();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.feed(chunk, now(), table));
        res.once('close', () => (this.ended = true));
        res.once('error', () => (this.ended = true));
        resolve(undefined);
      });
      req.end();
    });
  }

  /**
   * Splits events (blank-line separated; nginx's nchan writes `\n` only:
   * `event:`, `id:`, `data:` lines) and records those with an id. Ids are
   * per channel (nchan's `<seconds>:<tag>`), so the table keys them by the
   * watcher's path too.
   */
  private feed(chunk: string, at: number, table: IdTable): void {
    this.buf += chunk;
    let end: number;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const block = `\n${this.buf.slice(0, end)}`;
      this.buf = this.buf.slice(end + 2);
      const i = block.indexOf('\nid: ');
      if (i < 0) continue; // retry:, the greeting and heartbeat comments
      const nl = block.indexOf('\n', i + 1);
      const id = `${this.spec.path} ${block.slice(i + 5, nl < 0 ? undefined : nl)}`;
      let idx = table.index.get(id);
      if (idx === undefined) {
        const d = block.indexOf('\ndata: ');
        idx = table.ids.push(id) - 1;
        table.index.set(id, idx);
        table.data.push(d >= 0 ? block.slice(d + 7, block.indexOf('\n', d + 1) < 0 ? undefined : block.indexOf('\n', d + 1)) : '');
      }
      this.times.push(at);
      this.ids.push(idx);
    }
  }

  destroy(): void {
    this.close();
  }
}

interface IdTable {
  ids: string[];
  data: string[];
  index: Map<string, number>;
}

function main(): void {
  const watchers: Watcher[] = [];
  const table: IdTable = { ids: [], data: [], index: new Map() };
  const send = (m: FromChild) => process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.type === 'open') {
      void (async () => {
        const refused: Record<string, number> = {};
        let ok = 0;
        let next = 0;
        const specs = m.watchers;
        await Promise.all(
          Array.from({ length: m.concurrency }, async () => {
            while (next < specs.length) {
              const w = new Watcher(specs[next++]!);
              watchers.push(w);
              const err = await w.open(m.host, m.port, m.timeoutMs, table);
              if (err === undefined) ok++;
              else refused[err] = (refused[err] ?? 0) + 1;
            }
          }),
        );
        send({ type: 'opened', ok, refused });
      })();
    } else if (m.type === 'collect') {
      const out: Collected['watchers'] = watchers.map((w) => {
        let i = w.times.findIndex((t) => t >= m.from);
        if (i < 0) i = w.times.length;
        const start = Math.max(0, i - 1);
        return { path: w.spec.path, times: w.times.slice(start), ids: w.ids.slice(start), ended: w.ended };
      });
      const u = process.cpuUsage();
      send({ type: 'collected', watchers: out, ids: table.ids, data: table.data, cpuS: (u.user + u.system) / 1e6 });
    } else if (m.type === 'close') {
      for (const w of watchers) w.destroy();
      send({ type: 'closed' });
      process.disconnect?.();
    }
  });
}

if (process.send) main();
