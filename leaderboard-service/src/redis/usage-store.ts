/**
 * Metered usage and monthly quotas in Redis, on one shard (lua/quota.lua,
 * lua/includes/usage.lua; key names in @lb/common keys.ts): a tenant's
 * month on its own shard, each shard's allowance of the tenant's writes,
 * and the hours' counters the usage answers and the worker's rollup read.
 */
import { QUOTA_THRESHOLDS } from '@lb/common/contracts';
import { decodeAnswer, num, nums, packArgs } from './contract.js';
import { SCRIPTS } from './scripts.js';
import type { ShardStore } from './shard-store.js';

/** A month's count as the tenant's shard answers it. */
export interface QuotaCount {
  /** Writes handed out (lease) in this call. */
  granted: number;
  /** What the month has used: writes handed out to the shards, reads and streams counted. */
  used: number;
  /** Thresholds (percent) this call reached first: each is answered once a month. */
  crossed: number[];
}

export type QuotaOp =
  | { op: 'lease'; want: number; shards: number }
  | { op: 'return'; n: number }
  | { op: 'add'; n: number; counts: Record<string, number>; hour: string; hourMs: number; usageTtlS: number }
  | { op: 'state' };

export class UsageStore {
  constructor(readonly store: ShardStore) {}

  /** One step of a tenant's month on this (the tenant's) shard; see lua/quota.lua. */
  async quota(tenant: string, month: string, limit: number, monthTtlS: number, o: QuotaOp): Promise<QuotaCount> {
    const k = this.store.keys;
    const keys = [k.quota(tenant, month).count];
    let args: Record<string, string | number | Record<string, number>> = { op: o.op, limit, month_ttl_s: monthTtlS, tenant, want: 0, shards: 1, n: 0, counts: {} };
    if (o.op === 'lease') args = { ...args, want: o.want, shards: o.shards };
    else if (o.op === 'return') args = { ...args, n: o.n };
    else if (o.op === 'add') {
      keys.push(k.usage.counts(o.hour, tenant), k.usage.tenants(o.hour), k.usage.hours);
      args = { ...args, n: o.n, counts: o.counts, hour: o.hour, hour_ms: o.hourMs, usage_ttl_s: o.usageTtlS };
    }
    // cjson encodes an empty Lua table as {} and decodes {} as an empty table: `counts` is always an object.
    const packed = packArgs({ ...args, thresholds: [...QUOTA_THRESHOLDS] });
    const a = decodeAnswer('quota', await this.store.conn.runScript(SCRIPTS.quota, keys, packed, o.op !== 'state'));
    return { granted: num(a, 'granted'), used: num(a, 'used'), crossed: nums(a, 'crossed') };
  }

  /** Adds writes handed out to this shard's allowance of the tenant's month. */
  async credit(tenant: string, month: string, n: number, ttlS: number): Promise<void> {
    const key = this.store.keys.quota(tenant, month).allowance;
    await this.store.conn.call(() => this.store.conn.client.multi().incrBy(key, n).expire(key, ttlS).exec(), true, 'quota.credit');
  }

  /** Takes this shard's whole allowance of the tenant's month away (to give it back to the month), answering how much it was. */
  async takeAllowance(tenant: string, month: string): Promise<number> {
    const key = this.store.keys.quota(tenant, month).allowance;
    const v = await this.store.conn.call(() => this.store.conn.client.getDel(key), true, 'quota.take');
    return Math.max(0, Number(v ?? 0));
  }

  /** The hours with counters on this shard, from `fromMs` to `toMs` (starts, inclusive). */
  async hours(fromMs: number, toMs: number): Promise<string[]> {
    return this.store.conn.call(() => this.store.conn.client.zRangeByScore(this.store.keys.usage.hours, fromMs, toMs), false, 'usage.hours');
  }

  /** One tenant's counters of each hour (`<project>|<kind>` -> count), in the order asked. */
  async counts(tenant: string, hours: readonly string[]): Promise<Record<string, string>[]> {
    if (hours.length === 0) return [];
    const k = this.store.keys.usage;
    return this.store.conn.call(() => Promise.all(hours.map((h) => this.store.conn.client.hGetAll(k.counts(h, tenant)))), false, 'usage.counts');
  }
}
