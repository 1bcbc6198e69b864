/**
 * Usage and quota answers (docs/API.md "Usage and quotas"), for a tenant's
 * admin keys (their own tenant) and the platform (`?tenant=`):
 *
 *   GET /admin/usage?from=YYYY-MM-DD&to=YYYY-MM-DD[&project=][&granularity=day|hour]
 *   GET /admin/usage.csv?month=YYYY-MM   one row per tenant and project (platform: every tenant)
 *   GET /admin/quota                     the month's quota, used and remaining
 */
import { AppError, DAY_MS, invalidField, monthEndMs, TENANCY_ID, usageMonth } from '@lb/common/contracts';
import { Router } from 'express';
import type { TenantsRepo } from '../db/tenants-repo.js';
import { callerOf } from '../http/credentials.js';
import type { Meter } from '../usage/meter.js';
import type { Granularity, UsageReport, UsageRow } from '../usage/report.js';

export interface UsageRouteDeps {
  report: UsageReport;
  meter: Meter;
  tenants: TenantsRepo;
  clock: () => number;
}

/** The longest range one answer covers, by granularity (days). */
const MOST_DAYS: Record<Granularity, number> = { day: 400, hour: 31 };

function dayParam(v: unknown, field: string, fallback: number): number {
  if (v === undefined) return fallback;
  const m = typeof v === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(v) : null;
  const ms = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!) : NaN;
  if (!m || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== v) throw new AppError('invalid_query', `${field}: must be a date YYYY-MM-DD`, { field });
  return ms;
}

export function usageRoutes(deps: UsageRouteDeps): Router {
  const r = Router();

  r.get('/admin/usage', async (req, res) => {
    const tenant = callerOf(req).tenant;
    const q = req.query;
    const granularity = (q.granularity ?? 'day') as Granularity;
    if (granularity !== 'day' && granularity !== 'hour') throw new AppError('invalid_query', 'granularity: must be day or hour', { field: 'granularity' });
    const now = deps.clock();
    const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
    const from = dayParam(q.from, 'from', monthStart);
    const to = dayParam(q.to, 'to', monthEndMs(now) - DAY_MS);
    if (to < from) throw new AppError('invalid_query', 'to: must not be before from', { field: 'to' });
    if ((to - from) / DAY_MS + 1 > MOST_DAYS[granularity]) throw new AppError('invalid_query', `to: at most ${MOST_DAYS[granularity]} days by ${granularity}`, { field: 'to' });
    let project: string | undefined;
    if (q.project !== undefined) {
      if (typeof q.project !== 'string' || !TENANCY_ID.test(q.project)) throw invalidField('project', 'not a project id');
      project = q.project;
    }
    const rows = await deps.report.rows(tenant, from, to + DAY_MS, granularity, project);
    res.json({ tenant, from: new Date(from).toISOString().slice(0, 10), to: new Date(to).toISOString().slice(0, 10), granularity, rows });
  });

  r.get('/admin/usage.csv', async (req, res) => {
    const caller = callerOf(req);
    const month = typeof req.query.month === 'string' ? req.query.month : usageMonth(deps.clock());
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) throw new AppError('invalid_query', 'month: must be YYYY-MM', { field: 'month' });
    // The platform's export covers every tenant unless it names one; an admin key's, its own.
    const all = caller.key?.kind === 'platform' && req.query.tenant === undefined;
    const tenants = all ? (await deps.tenants.list()).map((t) => t.id) : [caller.tenant];
    const lines = ['tenant,project,month,writes,reads,streams,events,admin'];
    for (const t of tenants) {
      for (const row of await deps.report.month(t, month)) lines.push(csvLine(t, month, row));
    }
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="usage-${month}.csv"`);
    res.send(lines.join('\n') + '\n');
  });

  r.get('/admin/quota', async (req, res) => {
    const caller = callerOf(req);
    const now = deps.clock();
    const limit = caller.limits.monthlyOps;
    const month = usageMonth(now);
    const view = limit > 0 ? await deps.meter.view(caller.tenant, limit) : undefined;
    res.json({
      tenant: caller.tenant,
      plan: caller.limits.plan,
      month,
      limit: view ? view.limit : null,
      used: view ? view.limit - view.remaining : null,
      remaining: view ? view.remaining : null,
      resets_at: new Date(monthEndMs(now)).toISOString(),
    });
  });
  return r;
}

function csvLine(tenant: string, month: string, r: UsageRow): string {
  // Ids are [a-z0-9_-] (or '*', the tenant's own): nothing to quote.
  return [tenant, r.project ?? '*', month, r.writes, r.reads, r.streams, r.events, r.admin].join(',');
}
