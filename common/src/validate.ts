/**
 * Input validation shared by the services: each check throws 400
 * `invalid_payload` (or `invalid_query`) naming the field.
 */
import { AppError, invalidField } from './errors.js';

export const USER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** Printable characters: no control characters (C0, DEL, C1), 1-200 of them. */
const PRINTABLE = /^[^\u0000-\u001f\u007f-\u009f]+$/u;

/** A request body must be a JSON object. */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('invalid_payload', 'request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

export function userId(value: unknown, field = 'user_id'): string {
  if (typeof value !== 'string' || !USER_ID_PATTERN.test(value)) {
    throw invalidField(field, 'must be 1-64 characters of A-Z a-z 0-9 _ . -');
  }
  return value;
}

export function displayName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string') throw invalidField(field, 'must be a string');
  const chars = [...value].length;
  if (chars < 1 || chars > 200 || !PRINTABLE.test(value)) {
    throw invalidField(field, 'must be 1-200 printable characters');
  }
  return value;
}

export function password(value: unknown, field = 'password'): string {
  if (typeof value !== 'string') throw invalidField(field, 'must be a string');
  const chars = [...value].length;
  if (chars < 8 || chars > 128) throw invalidField(field, 'must be 8-128 characters');
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

/** Rejects unknown fields so that typos (or identity smuggling) are visible. */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw invalidField(k, 'unknown field');
  }
}
