/**
 * Reads gathered from several shards, and what a partial answer says. Every
 * board's GLOBAL read needs every shard; when one does not answer the read
 * fails with that shard's StoreUnavailable (503), unless the caller accepts
 * a partial answer: then it is computed over the shards that did answer and
 * names the missing ones. Used by the board `main`'s reads and the named
 * boards' alike.
 */
import { StoreUnavailable } from '@lb/common/contracts';

/** Fields a partial answer (some shards missing) carries beside its own. */
export interface PartialFields {
  partial?: true;
  /** Shards whose players are not in the answer. */
  missing_shards?: string[];
}

/** Read options. */
export interface ReadOptions {
  /** Accept an answer without the shards that do not answer (GLOBAL only). */
  partial?: boolean;
}

/** What the shards of a read answered: `results[i]` came from `stores[i]`; `missing` did not answer (partial reads only). */
export interface Gathered<S, T> {
  results: T[];
  stores: S[];
  missing: string[];
}

/** Marks an answer as partial when shards are missing. */
export function withMissing<T extends object>(answer: T, missing: readonly string[]): T & PartialFields {
  return missing.length === 0 ? answer : { ...answer, partial: true, missing_shards: [...missing] };
}

/**
 * Runs one call per shard in parallel. Without `partial`, any failure fails
 * the whole read (as Promise.all). With it, shards that are unavailable are
 * left out and named, unless none answered; other errors still fail.
 */
export async function gather<S, T>(stores: readonly S[], shardOf: (s: S) => string, call: (s: S) => Promise<T>, partial: boolean): Promise<Gathered<S, T>> {
  if (!partial) return { results: await Promise.all(stores.map(call)), stores: [...stores], missing: [] };
  const settled = await Promise.allSettled(stores.map(call));
  const out: Gathered<S, T> = { results: [], stores: [], missing: [] };
  let firstError: unknown;
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      out.results.push(r.value);
      out.stores.push(stores[i]!);
    } else {
      firstError ??= r.reason;
      if (r.reason instanceof StoreUnavailable) out.missing.push(shardOf(stores[i]!));
      else throw r.reason;
    }
  });
  if (out.results.length === 0 && firstError !== undefined) throw firstError;
  return out;
}
