/**
 * Open live streams (SSE) per client IP. Counted here, at the gateway,
 * because it knows the client address (the trusted X-Forwarded-For rule of
 * routes/proxy.ts); a stream counts from the request until its response
 * closes, whatever ends it. In memory, per gateway process, like the read
 * limiter: behind N gateways a client may hold up to N times the cap.
 */
import type { ServerResponse } from 'node:http';
import { AppError } from '@lb/common/contracts';

/** What a refused client is told to wait, seconds. */
const RETRY_AFTER_S = 5;

export class StreamLimiter {
  private readonly open = new Map<string, number>();

  /** @param max LIVE_MAX_STREAMS_PER_IP */
  constructor(private readonly max: number) {}

  /** Counts a stream of `clientIp` until `res` closes; 429 `too_many_streams` when it already has `max`. */
  take(clientIp: string, res: ServerResponse): void {
    const n = this.open.get(clientIp) ?? 0;
    if (n >= this.max) {
      throw new AppError('too_many_streams', `at most ${this.max} live streams may be open per client address`, { retry_after: RETRY_AFTER_S });
    }
    this.open.set(clientIp, n + 1);
    res.once('close', () => {
      const left = (this.open.get(clientIp) ?? 1) - 1;
      if (left <= 0) this.open.delete(clientIp);
      else this.open.set(clientIp, left);
    });
  }
}
