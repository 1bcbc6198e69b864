/**
 * A board's definition: its rules, as the control plane stores them, and
 * the checks of an admin's create and change requests.
 */
import { AppError, invalidField } from '../errors.js';
import { parseReset, type ResetRule } from './periods.js';
import { webhookUrl } from '../validate.js';

export type SortOrder = 'desc' | 'asc';
/** `best` keeps the better score by the board's order, `set` the latest, `incr` adds the submitted delta. */
export type Operator = 'best' | 'set' | 'incr';
/**
 * `shared`: equal scores share a competition rank (1, 2, 2, 4), listed by
 * user_id. `earliest`: among equal scores the player who reached that score
 * first ranks higher; ranks are ordinal (1, 2, 3, 4).
 */
export type TieBreak = 'shared' | 'earliest';

export interface Board {
  id: string;
  title: string;
  order: SortOrder;
  operator: Operator;
  /** The text form: none, daily, weekly, monthly or a cron expression. */
  reset: string;
  /** `reset`, parsed. */
  resetRule: ResetRule;
  tieBreak: TieBreak;
  minScore: number;
  maxScore: number;
  maxMetadataBytes: number;
  clientWrites: boolean;
  allowOperatorOverride: boolean;
  webhookUrl: string | null;
  keepPeriods: number;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
}

/** The board the original endpoints serve; it always exists and cannot be deleted. */
export const MAIN_BOARD = 'main';

export const BOARD_ID = /^[a-z0-9_-]{1,64}$/;

/** Fields an admin may change after creation; the others define what the stored scores mean. */
export const MUTABLE_FIELDS = ['title', 'min_score', 'max_score', 'max_metadata_bytes', 'client_writes', 'webhook_url', 'keep_periods'] as const;
export const IMMUTABLE_FIELDS = ['id', 'order', 'operator', 'reset', 'tie_break', 'allow_operator_override'] as const;

/** The JSON form of a board (API answers). */
export function boardJson(b: Board): Record<string, unknown> {
  return {
    id: b.id,
    title: b.title,
    order: b.order,
    operator: b.operator,
    reset: b.reset,
    tie_break: b.tieBreak,
    min_score: b.minScore,
    max_score: b.maxScore,
    max_metadata_bytes: b.maxMetadataBytes,
    client_writes: b.clientWrites,
    allow_operator_override: b.allowOperatorOverride,
    webhook_url: b.webhookUrl,
    keep_periods: b.keepPeriods,
    created_at: b.createdAt,
    updated_at: b.updatedAt,
  };
}

/** A new board's fields, checked, with the defaults filled in. */
export type NewBoard = Omit<Board, 'createdAt' | 'updatedAt' | 'deletedAt'>;

const SAFE = Number.MAX_SAFE_INTEGER;

/** Checks a create request (400 `invalid_payload` naming the field). */
export function parseNewBoard(b: Record<string, unknown>): NewBoard {
  for (const k of Object.keys(b)) {
    if (![...MUTABLE_FIELDS, ...IMMUTABLE_FIELDS].includes(k as never)) throw invalidField(k, 'unknown field');
  }
  if (typeof b.id !== 'string' || !BOARD_ID.test(b.id)) throw invalidField('id', 'must be 1-64 characters of a-z 0-9 _ -');
  const order = oneOf(b.order, 'order', ['desc', 'asc'], 'desc');
  const operator = oneOf(b.operator, 'operator', ['best', 'set', 'incr'], 'best');
  const tieBreak = oneOf(b.tie_break, 'tie_break', ['shared', 'earliest'], 'shared');
  const reset = b.reset === undefined ? 'none' : b.reset;
  if (typeof reset !== 'string') throw invalidField('reset', 'must be a string');
  let resetRule: ResetRule;
  try {
    resetRule = parseReset(reset);
  } catch (e) {
    throw invalidField('reset', (e as Error).message);
  }
  const board: NewBoard = {
    id: b.id,
    order,
    operator,
    tieBreak,
    reset: reset.trim(),
    resetRule,
    allowOperatorOverride: bool(b.allow_operator_override, 'allow_operator_override', false),
    title: b.id,
    minScore: 0,
    maxScore: SAFE,
    maxMetadataBytes: 1024,
    clientWrites: true,
    webhookUrl: null,
    keepPeriods: 2,
  };
  return applyChanges(board, b);
}

/** Checks a change request: mutable fields only (409 `immutable_field` for the others). */
export function parseBoardChanges(current: NewBoard, b: Record<string, unknown>): NewBoard {
  for (const k of Object.keys(b)) {
    if ((IMMUTABLE_FIELDS as readonly string[]).includes(k)) {
      throw new AppError('immutable_field', `${k} cannot change after the board is created`, { field: k });
    }
    if (!(MUTABLE_FIELDS as readonly string[]).includes(k)) throw invalidField(k, 'unknown field');
  }
  return applyChanges({ ...current }, b);
}

/** Applies and checks the mutable fields present in `b`. */
function applyChanges(board: NewBoard, b: Record<string, unknown>): NewBoard {
  if (b.title !== undefined) {
    if (typeof b.title !== 'string' || b.title.trim() === '' || [...b.title].length > 200 || /\p{Cc}/u.test(b.title)) {
      throw invalidField('title', 'must be 1-200 characters without control characters');
    }
    board.title = b.title;
  }
  if (b.min_score !== undefined) board.minScore = safeInt(b.min_score, 'min_score');
  if (b.max_score !== undefined) board.maxScore = safeInt(b.max_score, 'max_score');
  if (board.minScore > board.maxScore) throw invalidField('max_score', 'must be at least min_score');
  if (b.max_metadata_bytes !== undefined) {
    const n = safeInt(b.max_metadata_bytes, 'max_metadata_bytes');
    if (n < 0 || n > 65_536) throw invalidField('max_metadata_bytes', 'must be in 0..65536');
    board.maxMetadataBytes = n;
  }
  if (b.client_writes !== undefined) board.clientWrites = bool(b.client_writes, 'client_writes', true);
  if (b.keep_periods !== undefined) {
    const n = safeInt(b.keep_periods, 'keep_periods');
    if (n < 1 || n > 1000) throw invalidField('keep_periods', 'must be in 1..1000');
    board.keepPeriods = n;
  }
  if (b.webhook_url !== undefined) board.webhookUrl = webhookUrl(b.webhook_url, 'webhook_url');
  return board;
}

function oneOf<T extends string>(v: unknown, field: string, values: readonly T[], def: T): T {
  if (v === undefined) return def;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw invalidField(field, `must be one of ${values.join(', ')}`);
  return v as T;
}

function bool(v: unknown, field: string, def: boolean): boolean {
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw invalidField(field, 'must be true or false');
  return v;
}

function safeInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalidField(field, 'must be an integer');
  return v;
}
