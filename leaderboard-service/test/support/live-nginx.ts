/**
 * A real nginx with its push module nchan for the service's live tests,
 * started as the stack starts it: scripts/stack's NginxComponent (the
 * configuration rendered from nginx/nginx.conf.template by
 * renderNginxConf, the same process handling), on ephemeral ports, in a
 * temporary directory of its own.
 *
 * The replicas publish to its internal live server ({@link publishUrl},
 * their LIVE_PUBLISH_URL). The tests see what nchan holds and sends: a
 * channel's info from the publisher location ({@link info}), and streams
 * on the live server's subscriber location, the one a replica's
 * X-Accel-Redirect names ({@link follow}; the public listener's internal
 * location of that name has the same nchan settings). The public listener
 * ({@link url}) proxies to the replicas the test gives, where the stack has
 * its gateways (a gateway forwards a subscription as it came and passes
 * the replica's answer back), so nginx's own handling of the redirect can
 * be seen too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary } from '@lb/devtools/infra';
import { NginxComponent } from '../../../scripts/stack/components.js';
import { lastLines } from '../../../scripts/stack/logs.js';
import { SseStream } from '../../../test/support/sse.js';

/** A channel's info as nchan's publisher location answers it (GET /pub/<channel>, as JSON). */
export interface NchanInfo {
  /** Messages held: 0 or 1 (`nchan_message_buffer_length 1`). */
  readonly messages: number;
  readonly subscribers: number;
  /** `<unix seconds>:<tag>`: the `id:` of the last message nchan wrote. */
  readonly last_message_id: string;
}

export class LiveNginx {
  private constructor(
    private readonly nginx: NginxComponent,
    private readonly dir: string,
    /** `http://127.0.0.1:<port>` of the internal live server: the replicas' LIVE_PUBLISH_URL. */
    readonly publishUrl: string,
  ) {}

  /**
   * Prepares nginx: its ports and directory. It starts with {@link start},
   * once the replicas it proxies to (`upstreams`, `127.0.0.1:<port>` each,
   * read at every start) are listening; the replicas need {@link publishUrl}
   * first.
   */
  static async prepare(upstreams: () => string[]): Promise<LiveNginx> {
    const binary = findBinary('nginx');
    const nchanModule = findBinary('nchan');
    if (!binary || !nchanModule) throw new Error('nginx and its nchan module are needed: npm test installs them (scripts/bootstrap.mjs)');
    const dir = mkdtempSync(join(tmpdir(), 'lb-live-nginx-'));
    const ctx = { logsDir: dir, logTarget: { echo: false, prefixWidth: 5 }, healthTimeoutMs: 15_000, signal: undefined, node: process.execPath };
    // Ports 0: free ones, chosen once (a restart comes back on them), as the stack's ephemeral ports are.
    const nginx = new NginxComponent(0, 0, { binary, dir, accessLog: 'off', gateways: upstreams, statusPort: undefined, nchanModule }, ctx);
    return new LiveNginx(nginx, dir, await nginx.livePublishUrl());
  }

  /** The public listener, `http://127.0.0.1:<port>` (after {@link start}). */
  get url(): string {
    return this.nginx.url()!;
  }

  async start(): Promise<void> {
    const outcome = await this.nginx.start();
    if (!outcome.ok) throw new Error(`nginx did not start (${outcome.reason}: ${outcome.last}):\n${lastLines(this.nginx.logFile)}`);
  }

  /** Stops nginx (gracefully: SIGQUIT) and starts it again on the same ports: every channel and message is gone. */
  async restart(): Promise<void> {
    await this.nginx.stop();
    await this.start();
  }

  /** Stops nginx and removes its directory. */
  async stop(): Promise<void> {
    await this.nginx.stop();
    await this.nginx.closeLog();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The channel's info; undefined when nchan has no such channel (404). */
  async info(channel: string): Promise<NchanInfo | undefined> {
    const r = await fetch(`${this.publishUrl}/pub/${channel}`, { headers: { accept: 'application/json' } });
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET /pub/${channel}: ${r.status} ${await r.text()}`);
    return (await r.json()) as NchanInfo;
  }

  /**
   * Opens the stream a replica's `X-Accel-Redirect` names
   * (`/_lb_live/sub/<channel>[?lid=…]`), as nginx would on the public
   * listener: an EventSource subscriber of nchan.
   */
  follow(redirect: string): Promise<SseStream> {
    if (!redirect.startsWith('/_lb_live/sub/')) throw new Error(`not a subscriber location: ${redirect}`);
    return SseStream.open(this.publishUrl + redirect);
  }
}
