/**
 * Periods of a board with a reset, all in UTC. A period is named after its
 * start, so the name alone says which one it is and sorts in time order:
 *
 *   none     `all`                   (one period, forever)
 *   daily    `2026-12-01`
 *   weekly   `2026-W49`              (ISO week: Monday 00:00 to Monday 00:00)
 *   monthly  `2026-12`
 *   cron     `2026-12-01T18:00Z`     (the start the 5-field expression gives)
 *
 * A period is the half-open interval [starts_at, ends_at): a write at
 * exactly ends_at belongs to the next one.
 */
import { CronExpressionParser } from 'cron-parser';

export type ResetRule = 'none' | 'daily' | 'weekly' | 'monthly' | { cron: string };

export interface Period {
  id: string;
  /** ms since epoch; undefined for `all`. */
  startsAt: number | undefined;
  endsAt: number | undefined;
}

/** The one period of a board without a reset. */
export const ALL_TIME = 'all';

const DAY_MS = 86_400_000;
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * Parses a board's `reset` field: `none`, `daily`, `weekly`, `monthly` or a
 * 5-field cron expression (minute hour day-of-month month day-of-week, UTC).
 * Throws an Error saying what is wrong.
 */
export function parseReset(text: string): ResetRule {
  if (text === 'none' || text === 'daily' || text === 'weekly' || text === 'monthly') return text;
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5) throw new Error('must be none, daily, weekly, monthly or a 5-field cron expression');
  CronExpressionParser.parse(text, { tz: 'UTC' }); // throws on a malformed expression
  // Two boundaries must exist (a period needs an end): cron-parser throws
  // when there is no next occurrence.
  periodAt({ cron: text }, Date.now());
  return { cron: text };
}

/** The text form of a rule (what the board's `reset` field stores). */
export function resetText(r: ResetRule): string {
  return typeof r === 'string' ? r : r.cron;
}

/** The period that contains `t` (ms since epoch). */
export function periodAt(rule: ResetRule, t: number): Period {
  if (rule === 'none') return { id: ALL_TIME, startsAt: undefined, endsAt: undefined };
  const d = new Date(t);
  if (rule === 'daily') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { id: dayId(start), startsAt: start, endsAt: start + DAY_MS };
  }
  if (rule === 'weekly') {
    const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    const start = midnight - ((d.getUTCDay() + 6) % 7) * DAY_MS; // back to Monday
    return { id: isoWeekId(start), startsAt: start, endsAt: start + 7 * DAY_MS };
  }
  if (rule === 'monthly') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    return { id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`, startsAt: start, endsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
  }
  // The latest boundary at or before t, and the first one after it.
  const start = CronExpressionParser.parse(rule.cron, { tz: 'UTC', currentDate: new Date(t + 1) }).prev().toDate().getTime();
  const end = CronExpressionParser.parse(rule.cron, { tz: 'UTC', currentDate: new Date(t) }).next().toDate().getTime();
  return { id: cronId(start), startsAt: start, endsAt: end };
}

/** The period named `id` under `rule`, or undefined when the name cannot be one of its periods. */
export function periodById(rule: ResetRule, id: string): Period | undefined {
  if (rule === 'none') return id === ALL_TIME ? periodAt(rule, 0) : undefined;
  let t: number | undefined;
  let m: RegExpExecArray | null;
  if (rule === 'daily' && (m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(id))) t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!);
  else if (rule === 'monthly' && (m = /^(\d{4})-(\d{2})$/.exec(id))) t = Date.UTC(+m[1]!, +m[2]! - 1, 1);
  else if (rule === 'weekly' && (m = /^(\d{4})-W(\d{2})$/.exec(id))) t = isoWeekStart(+m[1]!, +m[2]!);
  else if (typeof rule === 'object' && (m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})Z$/.exec(id))) t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!);
  if (t === undefined || !Number.isFinite(t)) return undefined;
  const p = periodAt(rule, t);
  // Round trip: 2026-02-31 or a minute that is no cron boundary is not a period.
  return p.id === id ? p : undefined;
}

/** The period before `p` (undefined for `all`). */
export function previousPeriod(rule: ResetRule, p: Period): Period | undefined {
  return p.startsAt === undefined ? undefined : periodAt(rule, p.startsAt - 1);
}

function dayId(t: number): string {
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

function cronId(t: number): string {
  const d = new Date(t);
  return `${dayId(t)}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}Z`;
}

/** ISO 8601 week id of the week starting on Monday `monday`: its year is the year of its Thursday. */
function isoWeekId(monday: number): string {
  const thursday = new Date(monday + 3 * DAY_MS);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.round((monday - isoWeekStart(year, 1)) / (7 * DAY_MS));
  return `${year}-W${pad(week)}`;
}

/** Monday 00:00 UTC of ISO week `week` of `year` (week 1 holds the year's first Thursday). */
function isoWeekStart(year: number, week: number): number {
  const jan4 = Date.UTC(year, 0, 4);
  const jan4Day = (new Date(jan4).getUTCDay() + 6) % 7; // Monday = 0
  return jan4 - jan4Day * DAY_MS + (week - 1) * 7 * DAY_MS;
}

/**
 * One player's place on one view of a closed period, as the close writes it
 * to `period_archive` (worker-service) and archived reads return it
 * (leaderboard-service): the stored score, member and position make the
 * archived answers equal to the live ones.
 */
export interface ArchivedRow {
  position: number;
  rank: number;
  user_id: string;
  name: string;
  score: number;
  stored: string;
  member: string;
  metadata: unknown;
}
