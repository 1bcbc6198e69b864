/**
 * The write rate a replica applied to a shard, for GET /admin/stats (see
 * admin/stats.ts): kept by the shard's store, which counts every applied write.
 */

/** Events per second over a sliding window of whole seconds (a ring of per-second counts). */
export class RecentRate {
  private readonly counts: number[];
  private readonly seconds: number[];

  constructor(
    readonly windowS = 10,
    private readonly now: () => number = Date.now,
  ) {
    this.counts = new Array<number>(windowS + 1).fill(0);
    this.seconds = new Array<number>(windowS + 1).fill(-1);
  }

  add(n = 1): void {
    const s = Math.floor(this.now() / 1000);
    const i = s % this.counts.length;
    if (this.seconds[i] !== s) {
      this.seconds[i] = s;
      this.counts[i] = 0;
    }
    this.counts[i]! += n;
  }

  /** Mean per second over the last `windowS` whole seconds (the current, partial second left out). */
  perSecond(): number {
    const s = Math.floor(this.now() / 1000);
    let sum = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const age = s - this.seconds[i]!;
      if (age >= 1 && age <= this.windowS) sum += this.counts[i]!;
    }
    return sum / this.windowS;
  }
}
