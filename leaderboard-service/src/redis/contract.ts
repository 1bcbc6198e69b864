/**
 * The TypeScript side of the scripts' contract; the Lua side is
 * `lua/includes/contract.lua`. The answer shape is named here once (score
 * encoding is @lb/common ranking.ts); event fields and ids live in @lb/common's events.ts, shared
 * with the worker that consumes them.
 *
 * Every script answers `{ status, name1, value1, name2, value2, ... }`.
 * {@link decodeAnswer} turns that into `{ status, fields }`, so callers read
 * fields by name, never by position.
 */
import { userOfMember } from '@lb/common/contracts';

/** The status words scripts answer with, by script. */
export const STATUS = {
  write: ['ok', 'replay', 'expired', 'out_of_range', 'queue_full', 'project_rate_limited', 'rate_limited', 'region_rate_limited', 'period_closed', 'quota_lease'],
  page: ['ok'],
  before: ['ok'],
  find: ['ok'],
  around: ['ok'],
  restore: ['restored', 'skipped'],
  upgrade: ['ok'],
  liveDrop: ['dropped', 'kept'],
  relayTake: ['ok', 'busy', 'released'],
  outboxSettle: ['ok'],
  quota: ['ok'],
} as const;

export type ScriptName = keyof typeof STATUS;
export type StatusOf<S extends ScriptName> = (typeof STATUS)[S][number];

/** A raw field value as Redis returns it: a string, an integer, or an array (rows). */
export type FieldValue = string | number | FieldValue[];

/** A decoded answer. */
export interface Answer<S extends ScriptName> {
  script: S;
  status: StatusOf<S>;
  fields: Readonly<Record<string, FieldValue>>;
}

/** Thrown when a script answers something outside its contract (a deployment mismatch, a bug). */
export class ContractError extends Error {
  constructor(script: string, what: string) {
    super(`script ${script} broke its contract: ${what}`);
    this.name = 'ContractError';
  }
}

/** Decodes `{ status, name, value, ... }`, checking the status is one the script may answer. */
export function decodeAnswer<S extends ScriptName>(script: S, raw: unknown): Answer<S> {
  if (!Array.isArray(raw) || raw.length % 2 !== 1 || typeof raw[0] !== 'string') {
    throw new ContractError(script, `answer is not { status, name, value, ... }`);
  }
  const status = raw[0];
  if (!(STATUS[script] as readonly string[]).includes(status)) throw new ContractError(script, `unknown status "${status}"`);
  const fields: Record<string, FieldValue> = {};
  for (let i = 1; i < raw.length; i += 2) fields[String(raw[i])] = raw[i + 1] as FieldValue;
  return { script, status: status as StatusOf<S>, fields };
}

/** A numeric field (Redis answers integers, or strings for scores beyond 2^31). */
export function num(a: Answer<ScriptName>, name: string): number {
  const v = a.fields[name];
  if (v === undefined || Array.isArray(v)) throw new ContractError(a.script, `field ${name} is missing or not a number`);
  return Number(v);
}

/** A string field. */
export function str(a: Answer<ScriptName>, name: string): string {
  const v = a.fields[name];
  if (v === undefined || Array.isArray(v)) throw new ContractError(a.script, `field ${name} is missing or not a string`);
  return String(v);
}

/**
 * A write script's arguments, by name: one JSON object in ARGV[1], decoded
 * by the script (lua/includes/admission.lua `packedArgs`), as BullMQ packs
 * its scripts' arguments. Keys stay in KEYS, so a script stays on one slot.
 */
export function packArgs(args: Readonly<Record<string, string | number | readonly unknown[] | Readonly<Record<string, unknown>>>>): string[] {
  return [JSON.stringify(args)];
}

/** A row of a board as scripts answer it: `{ member, stored, name, metadata, ... }`. */
export interface BoardRow {
  user_id: string;
  /** The member in the views (user_id, or `<µs>|user_id` on earliest-tie boards): with `stored`, the row's place. */
  member: string;
  stored: string;
  name: string;
  /** Metadata JSON text, or undefined. */
  metadata: string | undefined;
}

/** Rows field `{ member, stored, name, metadata, ... }` of a board script. */
export function boardRows(a: Answer<ScriptName>, name: string): BoardRow[] {
  const v = a.fields[name];
  if (!Array.isArray(v)) throw new ContractError(a.script, `field ${name} is not a list of rows`);
  const out: BoardRow[] = [];
  for (let i = 0; i + 3 < v.length; i += 4) {
    const member = String(v[i]);
    out.push({ user_id: userOfMember(member), member, stored: String(v[i + 1]), name: String(v[i + 2]), metadata: v[i + 3] === '' ? undefined : String(v[i + 3]) });
  }
  return out;
}

/** A list field of strings. */
export function strs(a: Answer<ScriptName>, name: string): string[] {
  const v = a.fields[name];
  if (!Array.isArray(v)) throw new ContractError(a.script, `field ${name} is not a list`);
  return v.map(String);
}

/** A list field of numbers. */
export function nums(a: Answer<ScriptName>, name: string): number[] {
  const v = a.fields[name];
  if (!Array.isArray(v)) throw new ContractError(a.script, `field ${name} is not a list`);
  return v.map(Number);
}
