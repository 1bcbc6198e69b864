/**
 * The replicas behind the gateway and their health: round-robin choice over
 * the healthy ones, ejection on failure, re-admission after a cool-off and a
 * good probe. Pure logic with an injectable clock; the network side lives in
 * `forwarder.ts` (reports failures) and `prober.ts` (reports probe results).
 */

/** One leaderboard-service replica as the gateway sees it. */
export interface Upstream {
  /** Base URL as configured, e.g. `http://127.0.0.1:5001` (also the X-Upstream value). */
  readonly url: string;
  /** Parsed once, handed to the proxy for every request (saves a URL parse per request). */
  readonly target: URL;
  healthy: boolean;
  /** Why it last failed (a request or a probe); kept after re-admission for /health. */
  lastError: string | null;
  /** While out of rotation: the earliest time (ms) a probe may bring it back. */
  outUntil: number;
}

/** The JSON shape of one upstream in GET /health. */
export interface UpstreamView {
  url: string;
  healthy: boolean;
  last_error: string | null;
}

export class UpstreamPool {
  readonly all: readonly Upstream[];
  private cursor = 0;

  /**
   * @param urls replica base URLs, in rotation order
   * @param cooloffMs how long a failed replica stays out before probes may re-admit it
   * @param now clock in ms (tests pass a fake one)
   */
  constructor(
    urls: readonly string[],
    private readonly cooloffMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (urls.length === 0) throw new Error('UpstreamPool needs at least one URL');
    this.all = urls.map((url) => ({ url, target: new URL(url), healthy: true, lastError: null, outUntil: 0 }));
  }

  /**
   * The next healthy upstream in round-robin order that is not in `tried`, or
   * undefined when there is none. Each call advances the rotation, so retries
   * move on to the next replica rather than the same one.
   */
  pick(tried?: readonly Upstream[]): Upstream | undefined {
    const n = this.all.length;
    for (let i = 0; i < n; i++) {
      const u = this.all[this.cursor]!;
      this.cursor = this.cursor + 1 === n ? 0 : this.cursor + 1;
      if (u.healthy && (tried === undefined || !tried.includes(u))) return u;
    }
    return undefined;
  }

  /**
   * Takes `u` out of rotation for the cool-off. Returns true when it was in
   * rotation (so the caller logs the transition once); a replica already out
   * keeps its original cool-off so concurrent failures do not extend it.
   */
  markDown(u: Upstream, reason: string): boolean {
    u.lastError = reason;
    if (!u.healthy) return false;
    u.healthy = false;
    u.outUntil = this.now() + this.cooloffMs;
    return true;
  }

  /** Puts `u` back in rotation (a probe answered 200 after the cool-off). Returns true on a transition. */
  markUp(u: Upstream): boolean {
    if (u.healthy) return false;
    u.healthy = true;
    return true;
  }

  /** Records a failed probe: `u` stays out and is probed again on the next tick. */
  probeFailed(u: Upstream, reason: string): void {
    u.lastError = reason;
  }

  /** Upstreams out of rotation whose cool-off is over: the ones to probe now. */
  dueForProbe(): Upstream[] {
    const t = this.now();
    return this.all.filter((u) => !u.healthy && t >= u.outUntil);
  }

  /** True when at least one upstream is in rotation. */
  anyHealthy(): boolean {
    return this.all.some((u) => u.healthy);
  }

  /** The /health view of every upstream. */
  view(): UpstreamView[] {
    return this.all.map((u) => ({ url: u.url, healthy: u.healthy, last_error: u.lastError }));
  }
}
