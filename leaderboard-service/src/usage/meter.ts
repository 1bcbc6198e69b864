/**
 * The meter: every operation of a project counted by kind
 * (@lb/common contracts/usage.ts), and each tenant's monthly quota.
 *
 * - Writes are counted by the write script itself, in the same atomic step
 *   that accepts them (lua/write.lua): none accepted uncounted, none
 *   counted twice (a replayed idempotent retry never reaches the count).
 * - Reads, streams opened, events delivered and admin requests are counted
 *   here in memory and flushed every USAGE_FLUSH_MS (default 1 s) to the
 *   tenant's shard (ShardRouter.hashShard(tenant)) in one script per tenant
 *   and hour (lua/quota.lua `add`). A replica that crashes loses at most
 *   what it counted since its last flush: one flush interval of its own
 *   traffic. A flush that fails keeps its counts for the next one.
 *
 * The quota (a tenant's plan's monthly_ops, or an enterprise tenant's own;
 * per calendar month in UTC, over all its projects) counts writes, reads
 * and streams opened:
 *
 * - Writes are held to it exactly. The tenant's shard keeps the month's
 *   count; each shard holds an allowance handed out from it in small
 *   leases (a hundredth of the quota at most, less near the end), and the
 *   write script takes one from its shard's allowance atomically with the
 *   write. An allowance used up answers `quota_lease`: the writer asks for
 *   more and tries again; when the month has nothing left, the other
 *   shards' unused allowances are taken back first, and only then is the
 *   write refused, 429 `quota_exceeded` until the month ends. A replica
 *   that dies between a lease and its credit loses that lease's writes
 *   (fewer accepted, never more).
 * - Reads and streams are refused once this replica's view of the month
 *   says it is used up. The view is at most one second old (a request that
 *   finds it older waits for a fresh one), so past 100% the tenant's reads
 *   overshoot by at most what every replica serves it in one second plus
 *   what each counted and had not flushed yet (USAGE_FLUSH_MS).
 * - Raising a plan lifts the refusal within a second: the limit is the
 *   caller's (http/credentials.ts, remembered for API_KEY_CACHE_MS) and the
 *   month's count is compared to it on every step.
 *
 * The thresholds (75%, 90%, 100%) are answered by the tenant's shard once a
 * month each (lua/quota.lua), and told to {@link MeterOptions.onCrossed}.
 */
import { AppError, monthEndMs, QUOTA_KINDS, usageField, usageHour, usageMonth, hourStartMs, type ProjectRef, type ShardRouter, type UsageKind } from '@lb/common/contracts';
import type { Logger } from '@lb/common/platform';
import type { ShardStores } from '../redis/shard-store.js';
import { UsageStore, type QuotaCount } from '../redis/usage-store.js';

export interface MeterSettings {
  /** USAGE_FLUSH_MS: how often counts kept in memory are flushed. */
  flushMs: number;
  /** USAGE_LIVE_TTL_S: how long an hour's counters stay in Redis (the worker rolls them up well before). */
  usageTtlS: number;
}

export interface MeterOptions {
  router: ShardRouter;
  stores: ShardStores;
  /** What hours and months are decided by (the service's clock; tests move it). */
  clock: () => number;
  log: Logger;
  settings: MeterSettings;
  /** A tenant's month reached a threshold (once a month each, whichever replica saw it). */
  onCrossed?: (c: QuotaCrossing) => void;
}

export interface QuotaCrossing {
  tenant: string;
  month: string;
  /** 75, 90 or 100. */
  percent: number;
  used: number;
  limit: number;
}

/** What a tenant's answers say of its quota (X-Quota-Limit, X-Quota-Remaining). */
export interface QuotaView {
  limit: number;
  remaining: number;
  month: string;
  resetsAtMs: number;
}

/** How long a replica acts on a month's count it read. */
const VIEW_LIFE_MS = 1000;
/** A month's count is kept this long (the usage answers of last month read it): 40 days. */
const MONTH_TTL_S = 40 * 86_400;
/** Leases and tries of one write at most before it gives up on a contended allowance. */
const MOST_LEASES = 20;

interface Pending {
  tenant: string;
  hour: string;
  /** The month's quota the counts are held to (0 = none). */
  limit: number;
  counts: Map<string, number>;
  quotaOps: number;
}

export class Meter {
  private pending = new Map<string, Pending>();
  private readonly views = new Map<string, { month: string; used: number; at: number; fetching?: Promise<void> | undefined }>();
  private readonly leasing = new Map<string, Promise<number>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly o: MeterOptions) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.o.settings.flushMs);
    this.timer.unref();
  }

  /** Stops the flushes and flushes what is left. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /**
   * Admits and counts one operation of a project (not a write: the write
   * script counts those), given the tenant's quota {@link view} (undefined:
   * no quota). A read or a stream of a tenant past its quota is refused, 429
   * `quota_exceeded`; events and admin requests never are.
   */
  admit(project: ProjectRef, view: QuotaView | undefined, kind: Exclude<UsageKind, 'write'>, n = 1): void {
    const quota = view !== undefined && QUOTA_KINDS.includes(kind);
    if (quota && view.remaining <= 0) throw this.exceeded(project.tenant, view);
    this.count(project, kind, n, quota ? view.limit : 0);
  }

  /** Counts without asking (events delivered, admin requests). */
  count(project: ProjectRef, kind: UsageKind, n = 1, limit = 0): void {
    if (n <= 0) return;
    const p = this.pendingOf(project.tenant, usageHour(this.o.clock()), limit);
    const field = usageField(project.project, kind);
    p.counts.set(field, (p.counts.get(field) ?? 0) + n);
    if (limit > 0 && QUOTA_KINDS.includes(kind)) p.quotaOps += n;
  }

  /** What is waiting to be flushed of a tenant's hour (made when there is none). */
  private pendingOf(tenant: string, hour: string, limit: number): Pending {
    const id = `${tenant}\u0000${hour}`;
    let p = this.pending.get(id);
    if (!p) this.pending.set(id, (p = { tenant, hour, limit, counts: new Map(), quotaOps: 0 }));
    if (limit > 0) p.limit = limit;
    return p;
  }

  /** The tenant's quota as its answers show it (at most a second old). */
  async view(tenant: string, monthlyOps: number): Promise<QuotaView> {
    const now = this.o.clock();
    const month = usageMonth(now);
    let v = this.views.get(tenant);
    if (!v || v.month !== month || Date.now() - v.at > VIEW_LIFE_MS) {
      if (!v || v.month !== month) this.views.set(tenant, (v = { month, used: 0, at: 0 }));
      const entry = v;
      entry.fetching ??= this.step(tenant, month, monthlyOps, { op: 'state' })
        .then(() => undefined)
        .finally(() => (entry.fetching = undefined));
      await entry.fetching;
    }
    return { limit: monthlyOps, remaining: Math.max(0, monthlyOps - v.used - this.unflushed(tenant)), month, resetsAtMs: monthEndMs(now) };
  }

  /**
   * A write's shard ran out of the tenant's allowance: asks the tenant's
   * shard for more (one lease at a time per shard and tenant on this
   * replica) and credits it to `shardId`; when the month has nothing left,
   * takes the other shards' allowances back and asks once more. Answers
   * how many writes were credited (0: the quota is used up).
   */
  async refill(tenant: string, monthlyOps: number, shardId: string, month: string): Promise<number> {
    const id = `${tenant}\u0000${shardId}\u0000${month}`;
    let p = this.leasing.get(id);
    if (!p) {
      p = this.lease(tenant, monthlyOps, shardId, month).finally(() => this.leasing.delete(id));
      this.leasing.set(id, p);
    }
    return p;
  }

  /** The refusal of a tenant past its quota. */
  exceeded(tenant: string, v: QuotaView): AppError {
    return new AppError('quota_exceeded', `tenant ${tenant} has used its ${v.limit} operations of ${v.month}`, {
      retry_after: Math.max(1, Math.ceil((v.resetsAtMs - this.o.clock()) / 1000)),
      quota_limit: v.limit,
    });
  }

  /** Tries of one write before it gives up on a contended allowance. */
  static readonly MOST_LEASES = MOST_LEASES;

  private async lease(tenant: string, monthlyOps: number, shardId: string, month: string): Promise<number> {
    const want = Math.min(1000, Math.max(1, Math.floor(monthlyOps / 100)));
    const shards = this.o.router.shards.length;
    let c = await this.step(tenant, month, monthlyOps, { op: 'lease', want, shards });
    if (c.granted === 0) {
      // Nothing left to hand out: what the other shards hold unused comes back first.
      const others = this.o.stores.all().filter((s) => s.shard.id !== shardId);
      const back = (await Promise.all(others.map((s) => new UsageStore(s).takeAllowance(tenant, month).catch(() => 0)))).reduce((x, y) => x + y, 0);
      if (back > 0) {
        await this.step(tenant, month, monthlyOps, { op: 'return', n: back });
        c = await this.step(tenant, month, monthlyOps, { op: 'lease', want, shards });
      }
    }
    if (c.granted > 0) await new UsageStore(this.o.stores.get(shardId)).credit(tenant, month, c.granted, MONTH_TTL_S);
    return c.granted;
  }

  /** One step of the tenant's month on its shard; what it answers becomes this replica's view. */
  private async step(tenant: string, month: string, limit: number, op: Parameters<UsageStore['quota']>[4]): Promise<QuotaCount> {
    const home = this.o.stores.get(this.o.router.hashShard(tenant).id);
    const c = await new UsageStore(home).quota(tenant, month, limit, MONTH_TTL_S, op);
    const v = this.views.get(tenant);
    if (!v) this.views.set(tenant, { month, used: c.used, at: Date.now() });
    else if (v.month === month) {
      v.used = c.used;
      v.at = Date.now();
    }
    for (const percent of c.crossed) this.o.onCrossed?.({ tenant, month, percent, used: c.used, limit });
    return c;
  }

  /** This replica's quota operations of a tenant not flushed yet. */
  private unflushed(tenant: string): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.tenant === tenant) n += p.quotaOps;
    return n;
  }

  /** Sends what was counted since the last flush; counts whose flush fails are kept for the next. */
  flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    await Promise.all(
      [...batch.values()].map(async (p) => {
        try {
          await this.step(p.tenant, usageMonth(hourStartMs(p.hour)), p.limit, {
            op: 'add',
            n: p.quotaOps,
            counts: Object.fromEntries(p.counts),
            hour: p.hour,
            hourMs: hourStartMs(p.hour),
            usageTtlS: this.o.settings.usageTtlS,
          });
        } catch (e) {
          // Kept: merged into what was counted since.
          const q = this.pendingOf(p.tenant, p.hour, p.limit);
          for (const [field, n] of p.counts) q.counts.set(field, (q.counts.get(field) ?? 0) + n);
          q.quotaOps += p.quotaOps;
          this.o.log.warn('usage flush failed; kept for the next one', { tenant: p.tenant, err: e as Error });
        }
      }),
    );
  }
}
