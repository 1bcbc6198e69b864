/**
 * The one classification of Postgres failures (pg-pools.ts isStoreUnavailable
 * / pgFailure / PgPools.run): "the database is unavailable for now" (503
 * `unavailable`, the worker retries later) against real faults (500,
 * dead letter). Every SQLSTATE is raised by the harness' real Postgres
 * (RAISE ... USING ERRCODE), so the errors are node-postgres' own.
 */
import { expect } from 'chai';
import pg from 'pg';
import { getInfra } from '@lb/devtools/testing';
import { StoreUnavailable } from '@lb/common/contracts';
import { isStoreUnavailable, PgPools, pgFailure, createLogger } from '@lb/common/platform';

/** Retry later: classes 08 and 53, and the single codes of pg-pools.ts. */
const UNAVAILABLE = [
  '08000', '08001', '08003', '08004', '08006', '08P01', // connection exception
  '53000', '53100', '53200', '53300', '53400', // insufficient resources (53300 too_many_connections)
  '57P01', '57P02', '57P03', '57P05', // admin / crash shutdown, cannot connect now, idle session timeout
  '57014', // query_canceled (statement_timeout)
  '55000', // object_not_in_prerequisite_state: database not accepting connections
  '55P03', // lock_not_available
  '40001', '40P01', // serialization failure, deadlock: run it again
];

/** Real faults: answered 500 and logged, or dead-lettered. */
const FAULTS = [
  '23505', '23502', '22001', '22P02', // data refused
  '42P01', '42601', '42703', // undefined table, syntax, undefined column
  '3D000', '28P01', '28000', // no such database, authentication
  '57P04', '57000', // database dropped, other operator intervention
  '55006', '40002', '25P02', // object in use, integrity constraint in a transaction, in failed transaction
  '58030', 'XX000', 'P0001', // I/O error, internal error, a plain RAISE
];

describe('Postgres failure classification (pg-pools)', () => {
  let client: pg.Client;
  let url: string;

  before(async () => {
    const infra = await getInfra();
    url = infra.topology.shards[0]!.postgres;
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });

  after(() => client.end());

  async function raised(code: string): Promise<unknown> {
    try {
      await client.query(`DO $$ BEGIN RAISE EXCEPTION 'raised %', '${code}' USING ERRCODE = '${code}'; END $$`);
    } catch (e) {
      return e;
    }
    throw new Error(`${code} was not raised`);
  }

  it('when the server answers one of the unavailable SQLSTATEs, then it is "store unavailable"', async () => {
    const wrong: string[] = [];
    for (const code of UNAVAILABLE) {
      const e = await raised(code);
      expect((e as pg.DatabaseError).code, 'the server raised the code asked for').to.equal(code);
      if (!isStoreUnavailable(e)) wrong.push(code);
    }
    expect(wrong, 'classified as faults').to.deep.equal([]);
  });

  it('when the server answers any other SQLSTATE, then it is a real fault', async () => {
    const wrong: string[] = [];
    for (const code of FAULTS) {
      const e = await raised(code);
      expect((e as pg.DatabaseError).code).to.equal(code);
      if (isStoreUnavailable(e)) wrong.push(code);
    }
    expect(wrong, 'classified as unavailable').to.deep.equal([]);
  });

  it('when the connection cannot be made or is lost, then it is "store unavailable"; a missing database is a fault', async () => {
    const refused = new pg.Client({ connectionString: 'postgres://x@127.0.0.1:1/none', connectionTimeoutMillis: 2000 });
    const e1 = await refused.connect().then(() => undefined, (e: unknown) => e);
    expect(isStoreUnavailable(e1), String(e1)).to.equal(true);

    const missing = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/lb_no_such_database') });
    const e2 = await missing.connect().then(() => undefined, (e: unknown) => e);
    expect((e2 as pg.DatabaseError).code).to.equal('3D000');
    expect(isStoreUnavailable(e2)).to.equal(false);

    // A session the server ends: the client's pending query fails without a code or with 57P01.
    const victim = new pg.Client({ connectionString: url });
    victim.on('error', () => undefined);
    await victim.connect();
    const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const pending = victim.query('SELECT pg_sleep(30)').then(() => undefined, (e: unknown) => e);
    await client.query('SELECT pg_terminate_backend($1)', [pid]);
    const e3 = await pending;
    expect(isStoreUnavailable(e3), String(e3)).to.equal(true);
    await victim.end().catch(() => undefined);

    for (const m of ['Connection terminated unexpectedly', 'timeout exceeded when trying to connect', 'Query read timeout']) {
      expect(isStoreUnavailable(new Error(m)), m).to.equal(true);
    }
    expect(isStoreUnavailable(new Error('Cannot read properties of undefined'))).to.equal(false);
    expect(isStoreUnavailable('not an error')).to.equal(false);
    expect(isStoreUnavailable(new StoreUnavailable('redis', 'na')), 'a Redis outage is not a Postgres one').to.equal(false);
  });

  it('when PgPools.run or pgFailure meet an unavailable database, then they throw StoreUnavailable naming the shard; faults pass through unchanged', async () => {
    const shard = (await getInfra()).topology.shards[0]!;
    const pools = new PgPools([shard], { size: 1, servicePassword: undefined, applicationName: 'classify-test' }, createLogger('test', 'silent'));
    try {
      const unavailable = await pools.run(shard.id, (p) => p.query(`DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '55000'; END $$`)).catch((e: unknown) => e);
      expect(unavailable).to.be.instanceOf(StoreUnavailable);
      expect(unavailable).to.include({ store: 'postgres', shard: shard.id });
      expect(((unavailable as StoreUnavailable).cause as pg.DatabaseError).code).to.equal('55000');

      const fault = await pools.run(shard.id, (p) => p.query('SELECT 1/0')).catch((e: unknown) => e);
      expect(fault).not.to.be.instanceOf(StoreUnavailable);
      expect((fault as pg.DatabaseError).code).to.equal('22012');
      expect(pgFailure(shard.id, fault)).to.equal(fault);
    } finally {
      await pools.close();
    }
  });
});
