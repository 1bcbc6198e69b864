/**
 * The pipeline's one metering step (both the hot path and the express app
 * call it, once per request, after the credentials): what kind of
 * operation the request is (@lb/common contracts/usage.ts), its project's
 * reads per second (http/project-reads.ts), its tenant's monthly quota and
 * its count (usage/meter.ts), and the X-Quota-Limit / X-Quota-Remaining
 * headers of a tenant that has a quota.
 *
 * Writes are admitted and counted by the write script; here they only get
 * the headers. Past the quota, reads and streams are refused here (429
 * `quota_exceeded`); admin requests are counted and never refused (a
 * tenant's administrators can always see their usage and change things).
 */
import type { ServerResponse } from 'node:http';
import type { Meter } from '../usage/meter.js';
import type { Caller } from './credentials.js';
import type { ProjectReads } from './project-reads.js';

/** What a request is, as metering sees it; `none` is not metered (health, accounts' logins, the page). */
export type MeteredKind = 'read' | 'stream' | 'write' | 'admin' | 'none';

/** The project an operation of a tenant that names none (an admin key's request) is counted under. */
export const TENANT_WIDE = '*';

export interface Metering {
  reads: ProjectReads;
  meter: Meter;
}

export async function meterRequest(m: Metering, caller: Caller, kind: MeteredKind, res: Pick<ServerResponse, 'setHeader'>): Promise<void> {
  if (kind === 'none') return;
  const limit = caller.limits.monthlyOps;
  const view = limit > 0 ? await m.meter.view(caller.tenant, limit) : undefined;
  if (view) {
    res.setHeader('X-Quota-Limit', String(view.limit));
    res.setHeader('X-Quota-Remaining', String(view.remaining));
  }
  if (kind === 'admin') {
    m.meter.count(caller.project ?? { tenant: caller.tenant, project: TENANT_WIDE }, 'admin');
    return;
  }
  if (kind === 'write' || !caller.project) return;
  // The rate first: a read refused for it is not counted.
  await m.reads.admit(caller.project, caller.limits);
  m.meter.admit(caller.project, view, kind);
}
