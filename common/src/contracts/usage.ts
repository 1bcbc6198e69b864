/**
 * Metered usage and monthly quotas (issue 21): what is counted, in which
 * hour and month, and how a counter's field is spelled. The Redis side
 * (leaderboard-service lua/includes/usage.lua) spells the field the same
 * way: `<project>|<kind>` in the hash of one tenant's hour on one shard.
 *
 * Kinds:
 * - `write`  a score submission the write script accepted (improving or
 *            not); refusals (limits, bounds, backlog, quota, a closed
 *            period) and replays of an idempotent retry are not counted;
 * - `read`   a read of a project's data (tops, ranks, around, ranks by
 *            id, boards, periods, history);
 * - `stream` a live subscription opened;
 * - `event`  a live event delivered (one per subscriber it reached);
 * - `admin`  an /admin request.
 *
 * The monthly quota counts {@link QUOTA_KINDS}: writes, reads and streams
 * opened. Delivered events and administration are metered, never refused.
 */
export const USAGE_KINDS = ['write', 'read', 'stream', 'event', 'admin'] as const;
export type UsageKind = (typeof USAGE_KINDS)[number];

/** What a tenant's monthly quota counts, and what is refused past it. */
export const QUOTA_KINDS: readonly UsageKind[] = ['write', 'read', 'stream'];

/** The shares of the quota at which the tenant is told (once each per month). */
export const QUOTA_THRESHOLDS = [75, 90, 100] as const;

/** An hour and a day, ms. */
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** The hour an operation at `ms` is counted in: `YYYYMMDDHH` (UTC). */
export function usageHour(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}`;
}

/** When an hour of {@link usageHour} starts, ms since epoch. */
export function hourStartMs(hour: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})$/.exec(hour);
  if (!m) throw new Error(`not a usage hour: ${hour}`);
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!);
}

/** The month a quota counts in: `YYYY-MM` (UTC). */
export function usageMonth(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

/** When the month of `ms` ends (the next one starts), ms since epoch. */
export function monthEndMs(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** A counter's field in a tenant's hour: `<project>|<kind>`. */
export function usageField(project: string, kind: UsageKind): string {
  return `${project}|${kind}`;
}

/** The project and kind of a field of {@link usageField}; undefined for anything else. */
export function parseUsageField(field: string): { project: string; kind: UsageKind } | undefined {
  const i = field.lastIndexOf('|');
  if (i <= 0) return undefined;
  const kind = field.slice(i + 1) as UsageKind;
  return USAGE_KINDS.includes(kind) ? { project: field.slice(0, i), kind } : undefined;
}
