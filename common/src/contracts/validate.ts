/**
 * Input validation shared by the services: each check throws 400
 * `invalid_payload` (or `invalid_query`) naming the field.
 */
import { AppError, invalidField } from './errors.js';
import { TENANCY_ID } from './tenancy.js';

/**
 * 1-64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit: every valid
 * id is one path segment as it stands (never `.`, `..` or an option-like
 * `-x`), so it works in every `/rank/:id`-style path.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Lone surrogates (not well-formed UTF-16: they cannot be encoded as UTF-8). */
const LONE_SURROGATE = /\p{Cs}/u;
/** Control characters (C0, DEL, C1) and noncharacters. */
const CONTROL = /[\p{Cc}\p{Noncharacter_Code_Point}]/u;
/** Bidirectional embeddings, overrides and isolates, which can make a name display as another. */
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/u;

/** A request body must be a JSON object. */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('invalid_payload', 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

export function userId(value: unknown, field = 'user_id'): string {
  if (typeof value !== 'string' || !USER_ID_PATTERN.test(value)) {
    throw invalidField(field, 'must be 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit');
  }
  return value;
}

/**
 * A display name: 1-200 characters of well-formed Unicode, not only
 * white space, without control characters or bidirectional overrides.
 * Returned in NFC, so the same name typed on two keyboards is one string.
 */
export function displayName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string') throw invalidField(field, 'must be a string');
  if (LONE_SURROGATE.test(value)) throw invalidField(field, 'must be well-formed Unicode (a lone surrogate cannot be stored)');
  if (CONTROL.test(value) || BIDI_CONTROL.test(value)) {
    throw invalidField(field, 'must not contain control characters or bidirectional overrides');
  }
  const name = value.normalize('NFC');
  const chars = [...name].length;
  if (chars < 1 || chars > 200 || name.trim() === '') throw invalidField(field, 'must be 1-200 characters, not only white space');
  return name;
}

export function password(value: unknown, field = 'password'): string {
  if (typeof value !== 'string') throw invalidField(field, 'must be a string');
  const chars = [...value].length;
  if (chars < 8 || chars > 128) throw invalidField(field, 'must be 8-128 characters');
  return value;
}

/** A tenant, project or plan id: `[a-z0-9][a-z0-9_-]{0,63}`. */
export function tenancyId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !TENANCY_ID.test(value)) throw invalidField(field, 'must match [a-z0-9][a-z0-9_-]{0,63}');
  return value;
}

/** A JSON integer (not a string, not a float, a safe integer). */
export function integer(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw invalidField(field, 'must be an integer');
  }
  return value;
}

/** An optional string field, with a maximum length. */
export function optionalString(value: unknown, field: string, maxLength: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length > maxLength) {
    throw invalidField(field, `must be a string of at most ${maxLength} characters`);
  }
  return value;
}

/** An integer query parameter within [min, max], with a default. */
export function queryInt(value: unknown, field: string, def: number, min: number, max: number): number {
  if (value === undefined || value === '') return def;
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) {
    throw new AppError('invalid_query', `${field}: must be an integer in ${min}..${max}`, { field });
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new AppError('invalid_query', `${field}: must be an integer in ${min}..${max}`, { field });
  }
  return n;
}

/** A boolean query parameter: `true`/`1` or `false`/`0`; absent is `def`. */
export function queryBool(value: unknown, field: string, def = false): boolean {
  if (value === undefined || value === '') return def;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new AppError('invalid_query', `${field}: must be true or false`, { field });
}

/** Rejects unknown fields so that typos (or identity smuggling) are visible. */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw invalidField(k, 'unknown field');
  }
}

/** A webhook's URL: an http(s) URL of at most 2,000 characters, or null (none); 400 `invalid_payload` naming `field` otherwise. */
export function webhookUrl(value: unknown, field: string): string | null {
  if (value === null) return null;
  let u: URL | undefined;
  try {
    u = typeof value === 'string' && value.length <= 2000 ? new URL(value) : undefined;
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw invalidField(field, 'must be an http(s) URL or null');
  return u.toString();
}
