/**
 * Boards as objects of the control plane: periods, admin keys, the admin
 * routes, the public definitions, and every replica seeing a change.
 */
import { DEFAULT_PROJECT, parseReset, periodAt, periodById, previousPeriod } from '@lb/common/contracts';
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { runAdmin } from '../src/admin/cli.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type TestService } from './support/service.js';
import { topologyJson } from '@lb/common/platform';

const T = (iso: string) => Date.parse(iso);
const boardId = (p: string) => uniqueId(p).toLowerCase();

describe('boards: periods', () => {
  it('when a time falls in a day, week, month or cron period, then the period is named after its UTC start and is half-open', () => {
    const t = T('2026-12-01T19:30:00Z'); // a Tuesday
    expect(periodAt('daily', t)).to.deep.equal({ id: '2026-12-01', startsAt: T('2026-12-01T00:00:00Z'), endsAt: T('2026-12-02T00:00:00Z') });
    expect(periodAt('weekly', t)).to.deep.equal({ id: '2026-W49', startsAt: T('2026-11-30T00:00:00Z'), endsAt: T('2026-12-07T00:00:00Z') });
    expect(periodAt('monthly', t)).to.deep.equal({ id: '2026-12', startsAt: T('2026-12-01T00:00:00Z'), endsAt: T('2027-01-01T00:00:00Z') });
    const cron = parseReset('0 18 * * *');
    expect(periodAt(cron, t)).to.deep.equal({ id: '2026-12-01T18:00Z', startsAt: T('2026-12-01T18:00:00Z'), endsAt: T('2026-12-02T18:00:00Z') });
    expect(periodAt('none', t).id).to.equal('all');
    // The boundary belongs to the new period, the instant before to the old one.
    expect(periodAt('daily', T('2026-12-02T00:00:00Z')).id).to.equal('2026-12-02');
    expect(periodAt('daily', T('2026-12-02T00:00:00Z') - 1).id).to.equal('2026-12-01');
    expect(periodAt(cron, T('2026-12-01T18:00:00Z')).id).to.equal('2026-12-01T18:00Z');
    expect(periodAt(cron, T('2026-12-01T18:00:00Z') - 1).id).to.equal('2026-11-30T18:00Z');
  });

  it('when weeks straddle a new year, then they take the ISO week-numbering year', () => {
    expect(periodAt('weekly', T('2021-01-01T12:00:00Z')).id).to.equal('2020-W53');
    expect(periodAt('weekly', T('2024-12-30T00:00:00Z')).id).to.equal('2025-W01');
    expect(periodAt('weekly', T('2026-01-01T00:00:00Z')).id).to.equal('2026-W01');
    expect(periodAt('weekly', T('2027-01-03T23:59:59Z')).id).to.equal('2026-W53');
  });

  it('when a period is named, then the name finds it, and a name that is no period of the rule finds nothing', () => {
    for (const [rule, t] of [['daily', '2026-03-01T05:00:00Z'], ['weekly', '2020-12-31T00:00:00Z'], ['monthly', '2026-02-15T00:00:00Z']] as const) {
      const p = periodAt(rule, T(t));
      expect(periodById(rule, p.id)).to.deep.equal(p);
      expect(previousPeriod(rule, p)!.endsAt).to.equal(p.startsAt);
    }
    const cron = parseReset('30 6 * * 1');
    const p = periodAt(cron, T('2026-12-03T00:00:00Z'));
    expect(p.id).to.equal('2026-11-30T06:30Z');
    expect(periodById(cron, p.id)).to.deep.equal(p);
    for (const [rule, id] of [['daily', '2026-02-31'], ['weekly', '2026-W54'], ['monthly', '2026-13'], ['daily', '2026-W01'], ['none', '2026-01']] as const) {
      expect(periodById(rule, id), `${rule} ${id}`).to.equal(undefined);
    }
    expect(periodById(cron, '2026-11-30T06:31Z')).to.equal(undefined);
  });

  it('when a reset is not none, daily, weekly, monthly or a 5-field cron expression, then it is refused', () => {
    for (const bad of ['hourly', '* * * *', '0 0 * * * *', '61 * * * *', '0 25 * * *', '']) expect(() => parseReset(bad), bad).to.throw();
  });
});

describe('boards: control plane and admin routes', function () {
  this.timeout(60_000);
  let a: TestService;
  let b: TestService;
  let key: string;
  let keyId: string;

  before(async () => {
    a = await startService();
    b = await startService({ KEY_PREFIX: a.config.keyPrefix });
    const k = await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).create('tests');
    key = k.key;
    keyId = k.id;
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  /** An admin call with the test's key, another key, or none (null). */
  const admin = (svc: TestService, method: string, path: string, body?: unknown, k: string | null = key) =>
    new Client(svc.url).request(method, path, { ...(body !== undefined && { body }), headers: k === null ? {} : { 'x-api-key': k } });

  it('when an admin route is called without a key, with a wrong, malformed or revoked key, then every answer is the same 401 invalid_api_key', async () => {
    const revoked = await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).create('to revoke');
    await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).revoke(revoked.id);
    const answers = [];
    for (const k of [null, 'nope', `lbk_00000000_${'A'.repeat(32)}`, revoked.key]) {
      for (const [method, path] of [['POST', '/admin/boards'], ['PATCH', '/admin/boards/main'], ['DELETE', '/admin/boards/main'], ['GET', '/admin/whatever']]) {
        const r = await admin(a, method!, path!, method === 'GET' ? undefined : { id: 'x' }, k);
        answers.push(`${r.status} ${JSON.stringify(r.body)}`);
      }
    }
    expect([...new Set(answers)]).to.deep.equal(['401 {"error":"invalid_api_key","message":"a valid X-Api-Key is required"}']);
  });

  it('when a board is created, then it has the defaults, is listed with its current period on every replica, and its id cannot be taken twice', async () => {
    const id = boardId('weekly');
    const r = await admin(a, 'POST', '/admin/boards', { id, title: 'Weekly sprint', reset: 'weekly', order: 'asc', tie_break: 'earliest', webhook_url: 'https://example.test/hook' });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    expect(r.body).to.deep.include({
      id, title: 'Weekly sprint', order: 'asc', operator: 'best', reset: 'weekly', tie_break: 'earliest', min_score: 0,
      max_score: Number.MAX_SAFE_INTEGER, max_metadata_bytes: 1024, client_writes: true, allow_operator_override: false, keep_periods: 2,
    });
    const one = await new Client(a.url).get(`/boards/${id}`);
    expect(one.body.current_period.id).to.match(/^\d{4}-W\d{2}$/);
    expect(Date.parse(one.body.current_period.ends_at) - Date.parse(one.body.current_period.starts_at)).to.equal(7 * 86_400_000);
    expect(one.body).not.to.have.property('webhook_url');
    // The other replica learns of it by the control plane's revision (BOARD_REFRESH_MS, 500 ms by default).
    const seen = await until(async () => (await new Client(b.url).get(`/boards/${id}`)).status === 200, 1000);
    expect(seen, 'the second replica saw the new board within a second').to.equal(true);
    const list = await new Client(b.url).get('/boards');
    expect(list.body.boards.map((x: { id: string }) => x.id)).to.include.members(['main', id]);
    const dup = await admin(b, 'POST', '/admin/boards', { id });
    expect(dup.status).to.equal(409);
    expect(dup.body).to.include({ error: 'board_exists', board: id });
  });

  it('when a create request is malformed, then 400 invalid_payload names the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ id: 'Has Caps' }, 'id'],
      [{ id: 'x'.repeat(65) }, 'id'],
      [{ id: boardId('b'), order: 'up' }, 'order'],
      [{ id: boardId('b'), operator: 'max' }, 'operator'],
      [{ id: boardId('b'), reset: 'hourly' }, 'reset'],
      [{ id: boardId('b'), reset: '0 0 * * * *' }, 'reset'],
      [{ id: boardId('b'), tie_break: 'dense' }, 'tie_break'],
      [{ id: boardId('b'), min_score: 10, max_score: 5 }, 'max_score'],
      [{ id: boardId('b'), min_score: 1.5 }, 'min_score'],
      [{ id: boardId('b'), max_metadata_bytes: 70_000 }, 'max_metadata_bytes'],
      [{ id: boardId('b'), client_writes: 'no' }, 'client_writes'],
      [{ id: boardId('b'), webhook_url: 'ftp://x' }, 'webhook_url'],
      [{ id: boardId('b'), title: '' }, 'title'],
      [{ id: boardId('b'), colour: 'red' }, 'colour'],
    ];
    for (const [body, field] of cases) {
      const r = await admin(a, 'POST', '/admin/boards', body);
      expect(r.status, JSON.stringify(body)).to.equal(400);
      expect(r.body, JSON.stringify(body)).to.include({ error: 'invalid_payload', field });
    }
    const notObject = await new Client(a.url).request('POST', '/admin/boards', { raw: '[1]', headers: { 'x-api-key': key } });
    expect(notObject.status).to.equal(400);
  });

  it('when a board is changed, then mutable fields change and the rules that give scores their meaning answer 409 immutable_field', async () => {
    const id = boardId('patch');
    expect((await admin(a, 'POST', '/admin/boards', { id, operator: 'incr' })).status).to.equal(201);
    const ok = await admin(a, 'PATCH', `/admin/boards/${id}`, { title: 'Renamed', min_score: -5, max_score: 500, max_metadata_bytes: 0, client_writes: false, webhook_url: 'http://127.0.0.1:9/x' });
    expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
    expect(ok.body).to.deep.include({ title: 'Renamed', min_score: -5, max_score: 500, max_metadata_bytes: 0, client_writes: false, webhook_url: 'http://127.0.0.1:9/x', operator: 'incr' });
    for (const field of ['order', 'operator', 'reset', 'tie_break']) {
      const r = await admin(a, 'PATCH', `/admin/boards/${id}`, { [field]: 'x' });
      expect(r.status, field).to.equal(409);
      expect(r.body).to.include({ error: 'immutable_field', field });
    }
    expect((await admin(a, 'PATCH', `/admin/boards/${id}`, { max_score: -10 })).body).to.include({ error: 'invalid_payload', field: 'max_score' });
    expect((await admin(a, 'PATCH', `/admin/boards/${boardId('none')}`, { title: 'x' })).body.error).to.equal('board_not_found');
    expect((await admin(a, 'PATCH', '/admin/boards/main', { title: 'The main board' })).status).to.equal(200);
    await admin(a, 'PATCH', '/admin/boards/main', { title: 'Main' });
  });

  it('when a board is deleted, then it is gone everywhere, its Redis keys are removed, its id is not reused, and main cannot be deleted', async () => {
    const id = boardId('del');
    expect((await admin(a, 'POST', '/admin/boards', { id })).status).to.equal(201);
    const shard = a.deps.stores.all()[0]!;
    await shard.client.set(`${shard.keys.project(DEFAULT_PROJECT).boardPrefix(id)}all:board:GLOBAL`, 'x');
    const r = await admin(a, 'DELETE', `/admin/boards/${id}`);
    expect(r.status).to.equal(204);
    expect(await shard.client.exists(`${shard.keys.project(DEFAULT_PROJECT).boardPrefix(id)}all:board:GLOBAL`)).to.equal(0);
    expect((await new Client(a.url).get(`/boards/${id}`)).body).to.include({ error: 'board_not_found', board: id });
    expect(await until(async () => (await new Client(b.url).get(`/boards/${id}`)).status === 404, 1000)).to.equal(true);
    const again = await admin(a, 'POST', '/admin/boards', { id });
    expect(again.status).to.equal(409);
    expect(again.body).to.include({ error: 'board_exists', deleted: true });
    expect((await admin(a, 'DELETE', `/admin/boards/${id}`)).body.error).to.equal('board_not_found');
    const main = await admin(a, 'DELETE', '/admin/boards/main');
    expect(main.status).to.equal(409);
    expect(main.body.error).to.equal('board_protected');
  });

  it('when keys are managed with the admin command, then create prints a working key once, list shows it, and revoke ends it', async () => {
    const prior = process.env.TOPOLOGY;
    process.env.TOPOLOGY = topologyJson(a.topology);
    try {
      const out: string[] = [];
      expect(await runAdmin(['key', 'create', '--name', 'ci robot'], (s) => out.push(s), () => undefined)).to.equal(0);
      const created = out.pop()!;
      expect(created).to.match(/^lbk_[a-z0-9]{8}_/);
      expect((await admin(a, 'POST', '/admin/boards', { id: boardId('cli') }, created)).status).to.equal(201);
      expect(await runAdmin(['key', 'list', '--json'], (s) => out.push(s), () => undefined)).to.equal(0);
      const listed = (JSON.parse(out.pop()!) as { id: string; name: string; revoked_at: string | null }[]).find((k) => created.startsWith(`lbk_${k.id}_`));
      expect(listed).to.deep.include({ name: 'ci robot', revoked_at: null });
      expect(JSON.stringify(await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).list())).not.to.include(created);
      expect(await runAdmin(['key', 'revoke', listed!.id], (s) => out.push(s), () => undefined)).to.equal(0);
      expect(await runAdmin(['key', 'revoke', listed!.id], () => undefined, () => undefined)).to.equal(1);
      // Replicas trust a checked key for API_KEY_CACHE_MS (2 s): the revocation holds after that.
      expect(await until(async () => (await admin(b, 'POST', '/admin/boards', { id: boardId('late') }, created)).status === 401, 4000)).to.equal(true);
      expect(await runAdmin(['key', 'make'], () => undefined, () => undefined)).to.equal(2);
      expect(keyId).to.match(/^[a-z0-9]{8}$/);
    } finally {
      if (prior === undefined) delete process.env.TOPOLOGY;
      else process.env.TOPOLOGY = prior;
    }
  });
});

/** Polls `cond` every 50 ms until it holds or `withinMs` passes; true when it held. */
async function until(cond: () => Promise<boolean>, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
