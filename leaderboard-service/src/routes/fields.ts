/**
 * Request fields more than one route reads, checked one way everywhere:
 * `region` (registration, /score/create, every read's `?region=`) and
 * `initialScore` (registration, /score/create).
 */
import { invalidField, validate, type ShardRouter } from '@lb/common/contracts';

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
