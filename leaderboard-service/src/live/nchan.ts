/**
 * The replicas' side of nchan, nginx's push module: its publisher location
 * (`/pub/<channel>` on nginx's internal live server, never the public
 * listener; see nginx/nginx.conf.template). nchan holds the subscribers,
 * keeps each channel's last message (`nchan_message_buffer_length 1`) and
 * writes the SSE frames; a replica only publishes and asks.
 *
 * - `GET` answers the channel's info (404: no such channel);
 * - `POST` publishes a message (201: at least one subscriber got it, 202:
 *   none did) and answers the channel's info after it;
 * - `DELETE` ends the channel: its subscribers' streams end (they
 *   reconnect).
 *
 * The info, asked as JSON: `{"messages": 1, "requested": 0, "subscribers":
 * 2, "last_message_id": "1764633600:0"}`. nchan's message ids are
 * `<unix seconds>:<tag>`, the `id:` of the event it wrote.
 */
import http from 'node:http';
import https from 'node:https';
import { AppError } from '@lb/common/contracts';

export interface ChannelInfo {
  /** Messages held (0 or 1 here: the buffer keeps the last one until it expires). */
  readonly messages: number;
  readonly subscribers: number;
  /** The id of the last message published (`<unix seconds>:<tag>`), `0:0` before any. */
  readonly lastMessageId: string;
}

/** The push module could not be reached or answered something unexpected: 503 to a subscriber. */
export function nchanUnavailable(why: string, cause?: unknown): AppError {
  const e = new AppError('unavailable', `live pushes are unavailable: ${why}`, { store: 'nchan', retry_after: 1 });
  if (cause !== undefined) Object.assign(e, { cause });
  return e;
}

export class NchanClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  /**
   * @param baseUrl nginx's internal live server, e.g. `http://127.0.0.1:8091` (LIVE_PUBLISH_URL)
   * @param timeoutMs a call not answered in this time fails
   */
  constructor(
    baseUrl: string,
    private readonly timeoutMs: number,
  ) {
    this.base = new URL(baseUrl);
    const tls = this.base.protocol === 'https:';
    this.agent = new (tls ? https : http).Agent({ keepAlive: true, maxSockets: 32, scheduling: 'lifo' });
    this.request = tls ? https.request : http.request;
  }

  /** The channel's info; undefined when nchan has no such channel. */
  async info(channel: string): Promise<ChannelInfo | undefined> {
    const r = await this.call('GET', channel);
    if (r.status === 404) return undefined;
    return this.infoOf(r);
  }

  /** Publishes one message with SSE event name `event`; the info after it (its subscribers got it). */
  async publish(channel: string, event: string, data: string): Promise<ChannelInfo> {
    return this.infoOf(await this.call('POST', channel, data, { 'X-EventSource-Event': event, 'Content-Type': 'application/json' }));
  }

  /** Ends a channel and its subscribers' streams (a watched period is over). */
  async remove(channel: string): Promise<void> {
    const r = await this.call('DELETE', channel);
    if (r.status !== 200 && r.status !== 404) throw nchanUnavailable(`DELETE ${channel} answered ${r.status}`);
  }

  close(): void {
    this.agent.destroy();
  }

  private infoOf(r: { status: number; body: string }): ChannelInfo {
    if (r.status < 200 || r.status > 299) throw nchanUnavailable(`the publisher answered ${r.status}`);
    let j: { messages?: unknown; subscribers?: unknown; last_message_id?: unknown };
    try {
      j = JSON.parse(r.body) as typeof j;
    } catch (e) {
      throw nchanUnavailable('the publisher answered something other than channel info', e);
    }
    return { messages: Number(j.messages ?? 0), subscribers: Number(j.subscribers ?? 0), lastMessageId: String(j.last_message_id ?? '') };
  }

  private call(method: string, channel: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = this.request(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path: `/pub/${channel}`,
          method,
          agent: this.agent,
          headers: { Accept: 'application/json', ...headers, ...(body !== undefined && { 'Content-Length': Buffer.byteLength(body) }) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (e) => reject(nchanUnavailable(`${method} ${channel}: ${e.message}`, e)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(nchanUnavailable(`${method} ${channel}: ${e.message}`, e)));
      req.end(body);
    });
  }
}
