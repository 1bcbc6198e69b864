/**
 * A stand-in for nginx's internal live server (nchan's publisher location,
 * `/pub/<channel>`), for the service's live tests: it answers GET, POST and
 * DELETE as nchan does (channel info as JSON, 404 for no channel, 201/202
 * for a publication, `<unix seconds>:<tag>` message ids) and records every
 * publication. Subscribers are not held: each channel reports the count
 * {@link FakeNchan.subscribers} gives it (1 unless told otherwise). The
 * real module is exercised end to end by test/live.e2e.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Publication {
  readonly channel: string;
  readonly event: string;
  readonly data: any;
  readonly id: string;
  /** performance.now() when it arrived. */
  readonly at: number;
}

export class FakeNchan {
  readonly published: Publication[] = [];
  readonly deleted: string[] = [];
  /** Subscribers a channel reports (default 1). */
  readonly subscribers = new Map<string, number>();
  private readonly channels = new Map<string, { messages: number; lastId: string }>();
  private lastTime = 0;
  private tag = 0;
  private server: http.Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.answer(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** The publications of one channel, in order. */
  of(channel: string): Publication[] {
    return this.published.filter((p) => p.channel === channel);
  }

  /** The id nchan would report as the channel's last message ('' when none). */
  lastId(channel: string): string {
    return this.channels.get(channel)?.lastId ?? '';
  }

  /** Loses every message, as an nginx reload does. */
  forgetMessages(): void {
    for (const c of this.channels.values()) c.messages = 0;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const m = /^\/pub\/(.+)$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end();
    const channel = m[1]!;
    const info = (status: number) => {
      const c = this.channels.get(channel)!;
      res.writeHead(status, { 'content-type': 'text/json' });
      res.end(JSON.stringify({ messages: c.messages, requested: 0, subscribers: this.subscribers.get(channel) ?? 1, last_message_id: c.lastId }));
    };
    if (req.method === 'GET') {
      if (!this.channels.has(channel)) return void res.writeHead(404).end();
      return info(200);
    }
    if (req.method === 'DELETE') {
      this.deleted.push(channel);
      return void res.writeHead(this.channels.delete(channel) ? 200 : 404).end();
    }
    const now = Math.floor(Date.now() / 1000);
    this.tag = now === this.lastTime ? this.tag + 1 : 0;
    this.lastTime = now;
    const id = `${now}:${this.tag}`;
    this.channels.set(channel, { messages: 1, lastId: id });
    this.published.push({ channel, event: String(req.headers['x-eventsource-event'] ?? ''), data: JSON.parse(body), id, at: performance.now() });
    info((this.subscribers.get(channel) ?? 1) > 0 ? 201 : 202);
  }
}
