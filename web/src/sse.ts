/**
 * A Server-Sent Events stream read with fetch() instead of EventSource, for
 * the one thing EventSource cannot do: send headers. The tenant console
 * previews a board's live top 10 with the tenant's admin key, which must
 * travel as `X-Api-Key` and never in a URL (only a client key may be put in
 * `?key=`, docs/API.md "Tenants, projects and keys"); the live routes read
 * the header like every route, so the stream is checked as the admin key's
 * (with `?project=`), and nginx holds it as it holds an EventSource's.
 *
 * This parses the event-stream format (event, data, id fields; comments and
 * `retry:` ignored: {@link LiveStream} decides when to reconnect).
 */
import { ApiError, errorOf } from './api.js';

export interface EventStreamHandlers {
  /** The answer was 200 with a body: events follow. */
  onOpen(): void;
  onEvent(name: string, data: string, id: string): void;
  /** Called once: the stream ended (the server closed it) or failed (an {@link ApiError} for an error answer). Not called after the returned close(). */
  onEnd(error: Error): void;
}

/** Opens the stream; the returned function closes it (without calling onEnd). */
export function fetchEventStream(url: string, headers: Record<string, string>, h: EventStreamHandlers): () => void {
  const abort = new AbortController();
  let ended = false;
  const end = (e: Error) => {
    if (ended || abort.signal.aborted) return;
    ended = true;
    h.onEnd(e);
  };
  void (async () => {
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal, cache: 'no-store' });
    if (!res.ok || !res.body) throw errorOf(res, await res.text().catch(() => ''));
    h.onOpen();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let name = '';
    let data: string[] = [];
    let id = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // A CR at the end of a chunk may be the first half of a CRLF: keep it for the next chunk.
      for (let m = /\r\n|\n|\r(?!$)/.exec(buffer); m; m = /\r\n|\n|\r(?!$)/.exec(buffer)) {
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === '') {
          if (data.length > 0 && !abort.signal.aborted) h.onEvent(name || 'message', data.join('\n'), id);
          name = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const v = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = v;
        else if (field === 'data') data.push(v);
        else if (field === 'id') id = v;
      }
    }
    end(new Error('the stream ended'));
  })().catch((e: unknown) => end(e instanceof ApiError ? e : new ApiError(0, 'network', (e as Error).message)));
  return () => abort.abort();
}
