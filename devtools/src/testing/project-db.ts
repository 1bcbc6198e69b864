/**
 * Queries of a shard's database as the services see it: through their
 * pools (the role lb_app, row-level security applying), each query in its
 * own transaction of one project's row scope (the default project unless
 * told). For tests that check what a service or the worker wrote.
 */
import pg from 'pg';
import { DEFAULT_PROJECT, type ProjectRef } from '@lb/common/contracts';
import type { PgPools } from '@lb/common/platform';

export interface ProjectDb {
  query<R extends pg.QueryResultRow = Record<string, any>>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export function projectDb(pools: PgPools, shardId: string, project: ProjectRef = DEFAULT_PROJECT): ProjectDb {
  return {
    query: <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => pools.inScope(shardId, project, (c) => c.query<R>(text, values), 'test'),
  };
}
