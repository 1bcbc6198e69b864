/**
 * What the worker rolled up (sql/011_usage.sql `usage_hourly`), read in the
 * tenant's scope (row-level security: a tenant's rows only).
 */
import type { UsageKind } from '@lb/common/contracts';
import type { PgPools } from '@lb/common/platform';

/** One shard's count of one kind of one project in one hour. */
export interface UsageCell {
  project: string;
  kind: UsageKind;
  /** The hour's start, ms since epoch. */
  hourMs: number;
  shard: string;
  count: number;
}

export class UsageRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /** A tenant's rolled-up counts of the hours starting in [fromMs, toMs), of one project or all. */
  async cells(tenant: string, fromMs: number, toMs: number, project?: string): Promise<UsageCell[]> {
    const r = await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) =>
        c.query<{ project_id: string; kind: UsageKind; hour: Date; shard: string; count: string }>(
          `SELECT project_id, kind, hour, shard, count FROM usage_hourly
            WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 AND ($4::text IS NULL OR project_id = $4)`,
          [tenant, new Date(fromMs), new Date(toMs), project ?? null],
        ),
      'usage.cells',
    );
    return r.rows.map((x) => ({ project: x.project_id, kind: x.kind, hourMs: x.hour.getTime(), shard: x.shard, count: Number(x.count) }));
  }
}
