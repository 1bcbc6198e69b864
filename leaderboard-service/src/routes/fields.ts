/**
 * Request fields more than one route reads, checked one way everywhere:
 * `region` (registration, /score/create, every read's `?region=`) and
 * `initialScore` (registration, /score/create), query parameters and the
 * Idempotency-Key header.
 */
import { AppError, invalidField, validate, type ShardRouter } from '@lb/common/contracts';

/** A region in a body: a string naming GLOBAL or a configured region (400 `unknown_region` otherwise). */
export function regionField(router: ShardRouter, value: unknown): string {
  if (typeof value !== 'string') throw invalidField('region', 'must be a string');
  return router.normalizeRegion(value);
}

/** An optional initial score: absent or null is 0; else an integer in `0..maxScoreDelta`. */
export function initialScoreField(value: unknown, maxScoreDelta: number): number {
  if (value === undefined || value === null) return 0;
  const v = validate.integer(value, 'initialScore');
  if (v < 0 || v > maxScoreDelta) throw invalidField('initialScore', `must be in 0..${maxScoreDelta}`);
  return v;
}

/** A query parameter; a repeated one comes back as an array, which every check refuses. */
export function queryParam(query: URLSearchParams, name: string): string | string[] | undefined {
  const all = query.getAll(name);
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : all;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** The Idempotency-Key header of a write, if any (400 `invalid_payload` when malformed). */
export function idempotencyKeyOf(r: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const v = r.headers['idempotency-key'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !IDEMPOTENCY_KEY.test(v)) {
    throw new AppError('invalid_payload', 'Idempotency-Key must be 1-128 visible ASCII characters', { field: 'Idempotency-Key' });
  }
  return v;
}
