/**
 * Usage answers (GET /admin/usage, /admin/usage.csv): what the worker
 * rolled up into Postgres merged with the live counters in Redis, so an
 * operation shows within a flush interval. Both hold, per shard and hour,
 * a counter that only grows: the merge takes the larger of the two for
 * each shard, hour, project and kind (the rolled-up value is the live one
 * as last read), then sums over the shards.
 */
import { DAY_MS, hourStartMs, parseUsageField, USAGE_KINDS, type ShardRouter, type UsageKind } from '@lb/common/contracts';
import type { UsageRepo } from '../db/usage-repo.js';
import type { ShardStores } from '../redis/shard-store.js';
import { UsageStore } from '../redis/usage-store.js';
import { TENANT_WIDE } from '../http/metering.js';

export type Granularity = 'day' | 'hour';

/** One answer row: a project's operations in one day or hour. */
export interface UsageRow {
  /** null: the tenant's own operations that named no project (an admin key's requests). */
  project: string | null;
  period_start: string;
  writes: number;
  reads: number;
  streams: number;
  events: number;
  admin: number;
}

const COLUMN: Record<UsageKind, Exclude<keyof UsageRow, 'project' | 'period_start'>> = { write: 'writes', read: 'reads', stream: 'streams', event: 'events', admin: 'admin' };

export class UsageReport {
  constructor(
    private readonly deps: { router: ShardRouter; stores: ShardStores; repo: UsageRepo },
  ) {}

  /** A tenant's operations in the hours starting in [fromMs, toMs), by project and day or hour, oldest first. */
  async rows(tenant: string, fromMs: number, toMs: number, granularity: Granularity, project?: string): Promise<UsageRow[]> {
    // shard \0 hour \0 project \0 kind -> count
    const cells = new Map<string, number>();
    const put = (shard: string, hourMs: number, p: string, kind: UsageKind, n: number) => {
      const id = `${shard}\u0000${hourMs}\u0000${p}\u0000${kind}`;
      cells.set(id, Math.max(cells.get(id) ?? 0, n));
    };
    const [rolled, live] = await Promise.all([
      this.deps.repo.cells(tenant, fromMs, toMs, project),
      Promise.all(
        this.deps.stores.all().map(async (s) => {
          const u = new UsageStore(s);
          const hours = await u.hours(fromMs, toMs - 1);
          const counts = await u.counts(tenant, hours);
          return { shard: s.shard.id, hours, counts };
        }),
      ),
    ]);
    for (const c of rolled) put(c.shard, c.hourMs, c.project, c.kind, c.count);
    for (const { shard, hours, counts } of live) {
      hours.forEach((h, i) => {
        for (const [field, n] of Object.entries(counts[i]!)) {
          const f = parseUsageField(field);
          if (f && (project === undefined || f.project === project)) put(shard, hourStartMs(h), f.project, f.kind, Number(n));
        }
      });
    }
    const out = new Map<string, UsageRow>();
    for (const [id, n] of cells) {
      if (n === 0) continue;
      const [, hourText, p, kind] = id.split('\u0000') as [string, string, string, UsageKind];
      const hourMs = Number(hourText);
      const start = granularity === 'hour' ? hourMs : hourMs - (hourMs % DAY_MS);
      const key = `${start}\u0000${p}`;
      let row = out.get(key);
      if (!row) out.set(key, (row = { project: p === TENANT_WIDE ? null : p, period_start: new Date(start).toISOString(), writes: 0, reads: 0, streams: 0, events: 0, admin: 0 }));
      row[COLUMN[kind]] += n;
    }
    return [...out.values()].sort((a, b) => a.period_start.localeCompare(b.period_start) || (a.project ?? '').localeCompare(b.project ?? ''));
  }

  /** A tenant's totals of one month (`YYYY-MM`), one row per project. */
  async month(tenant: string, month: string): Promise<UsageRow[]> {
    const [y, m] = month.split('-').map(Number) as [number, number];
    const from = Date.UTC(y, m - 1, 1);
    const rows = await this.rows(tenant, from, Date.UTC(y, m, 1), 'day');
    const byProject = new Map<string, UsageRow>();
    for (const r of rows) {
      const key = r.project ?? TENANT_WIDE;
      let t = byProject.get(key);
      if (!t) byProject.set(key, (t = { project: r.project, period_start: new Date(from).toISOString(), writes: 0, reads: 0, streams: 0, events: 0, admin: 0 }));
      for (const k of USAGE_KINDS) t[COLUMN[k]] += r[COLUMN[k]];
    }
    return [...byProject.values()].sort((a, b) => (a.project ?? '').localeCompare(b.project ?? ''));
  }
}
