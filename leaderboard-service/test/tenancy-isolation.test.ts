/**
 * Projects isolated through the API (issue 20): two tenants, three
 * projects, the same player id and the same board id in each. Every
 * project's keys and tokens answer only that project's data, and a name of
 * another project answers like one that does not exist.
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');

interface Project {
  tenant: string;
  project: string;
  client: string;
  server: string;
  /** alice's token in this project. */
  token: string;
  /** alice's score on main here. */
  score: number;
}

describe('projects isolated through the API', function () {
  this.timeout(60_000);
  let svc: TestService;
  let platform: string;
  let api: Client;
  const projects: Project[] = [];
  let acmeAdmin: string;
  /** A board id every project has, and a board only the first project has. */
  const race = 'race';
  const secret = 'secret-board';

  const call = (method: string, path: string, key: string | null, body?: unknown, token?: string): Promise<Reply> =>
    api.request(method, path, { ...(body !== undefined && { body }), ...(token !== undefined && { token }), headers: key === null ? {} : { 'x-api-key': key } });
  const created = async (r: Promise<Reply>) => {
    const x = await r;
    expect(x.status, JSON.stringify(x.body)).to.be.oneOf([200, 201]);
    return x.body;
  };

  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
    platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('isolation tests')).key;
    const acme = tid('acme');
    const bolt = tid('bolt');
    for (const t of [acme, bolt]) await created(call('POST', '/admin/tenants', platform, { id: t, name: t, plan: 'free' }));
    acmeAdmin = (await created(call('POST', `/admin/keys?tenant=${acme}`, platform, { kind: 'admin', name: 'acme admin' }))).key;
    let score = 100;
    for (const [tenant, project] of [
      [acme, 'live'],
      [acme, 'dev'],
      [bolt, 'live'],
    ] as const) {
      await created(call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: project, name: project }));
      const key = async (kind: string) => (await created(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind, name: kind, project }))).key as string;
      const client = await key('client');
      const server = await key('server');
      const reg = await created(call('POST', '/auth/register', client, { user_id: 'alice', name: `Alice of ${tenant}/${project}`, region: 'EU', password: 'correct horse' }));
      score += 11;
      await created(call('POST', '/boards/main/scores', server, { user_id: 'alice', score }));
      await created(call('POST', `/admin/boards?tenant=${tenant}&project=${project}`, platform, { id: race, title: 'Race', order: 'asc', operator: 'best' }));
      await created(call('POST', `/boards/${race}/scores`, server, { user_id: 'alice', score: score * 2 }));
      projects.push({ tenant, project, client, server, token: reg.token as string, score });
    }
    await created(call('POST', `/admin/boards?tenant=${acme}&project=live`, platform, { id: secret, title: 'Only acme/live' }));
  });
  after(async () => svc?.stop());

  it('when the same player id registers in three projects, then each is its own player with its own password, score and token', async () => {
    for (const p of projects) {
      const login = await call('POST', '/auth/login', p.client, { user_id: 'alice', password: 'correct horse' });
      expect(login.status).to.equal(200);
      expect(login.body.user).to.deep.include({ user_id: 'alice', name: `Alice of ${p.tenant}/${p.project}`, score: p.score });
    }
  });

  it('when each project reads main and a board of the same id, then it sees only its own rows', async () => {
    for (const p of projects) {
      const top = await call('GET', '/top?region=GLOBAL&limit=10', p.client);
      expect(top.status).to.equal(200);
      const tops = (top.body.rows as { user_id: string; score: number }[]).map((r) => [r.user_id, r.score]);
      expect(tops, `${p.tenant}/${p.project}`).to.deep.equal([['alice', p.score]]);
      const rank = await call('GET', '/rank/alice?region=EU', p.client);
      expect(rank.body).to.deep.include({ user_id: 'alice', score: p.score, rank: 1 });
      const board = await call('GET', `/boards/${race}/top?region=GLOBAL`, p.client);
      expect(board.body.rows.map((r: { user_id: string; score: number }) => [r.user_id, r.score])).to.deep.equal([['alice', p.score * 2]]);
      const mine = await call('GET', '/boards', p.client);
      expect(mine.body.boards.map((b: { id: string }) => b.id).sort()).to.deep.equal(p === projects[0] ? ['main', race, secret].sort() : ['main', race].sort());
      // The player's own token, with no key at all, is its project's too.
      expect((await call('GET', '/rank/alice?region=EU', null, undefined, p.token)).body.score).to.equal(p.score);
    }
  });

  it("when a project names another project's board, player or key, then it gets the answer of a name that does not exist", async () => {
    const [acmeLive, , boltLive] = projects as [Project, Project, Project];
    const missing = await call('GET', '/boards/no-such-board/top', boltLive.client);
    const other = await call('GET', `/boards/${secret}/top`, boltLive.client);
    expect(other.status).to.equal(404);
    expect(other.body.error).to.equal(missing.body.error);
    // A game server writes only for its own project's players.
    const carol = await call('POST', '/auth/register', boltLive.client, { user_id: 'carol', name: 'Carol', region: 'NA', password: 'correct horse' });
    expect(carol.status).to.equal(201);
    const write = await call('POST', '/boards/main/scores', acmeLive.server, { user_id: 'carol', score: 5 });
    expect(write.status).to.equal(404);
    expect(write.body.error).to.equal('user_not_found');
    // Tenant acme's administrator cannot see or revoke bolt's keys: 404 like a missing id.
    const boltKeys = await call('GET', `/admin/keys?tenant=${boltLive.tenant}`, platform);
    const boltKeyId = (boltKeys.body.keys as { id: string; kind: string }[]).find((k) => k.kind === 'server')!.id;
    const revoke = await call('DELETE', `/admin/keys/${boltKeyId}`, acmeAdmin);
    const revokeMissing = await call('DELETE', '/admin/keys/nokey0000000000', acmeAdmin);
    expect(revoke.status).to.equal(404);
    expect(revoke.body).to.deep.equal({ error: revokeMissing.body.error, message: `no live key ${boltKeyId}`, id: boltKeyId });
    expect(revokeMissing.body).to.deep.equal({ error: 'key_not_found', message: 'no live key nokey0000000000', id: 'nokey0000000000' });
    expect((await call('GET', '/rank/alice?region=EU', boltLive.server)).status, "bolt's key still works").to.equal(200);
  });

  it("when the other read routes (around, friends' ranks, periods, history, live) are called, then each project answers its own rows, and another project's names like missing ones", async () => {
    const same = async (a: Promise<Reply>, b: Promise<Reply>) => {
      const [x, y] = await Promise.all([a, b]);
      expect([x.status, x.body.error], JSON.stringify(x.body)).to.deep.equal([y.status, y.body.error]);
      return x;
    };
    for (const p of projects) {
      const around = await call('GET', '/around/alice?region=EU&range=3', p.client);
      expect(around.body.self).to.deep.include({ user_id: 'alice', score: p.score });
      expect(around.body.around, 'no neighbour: the other projects\' alices are not on this board').to.deep.equal([]);
      const friends = await call('POST', `/boards/${race}/ranks`, p.client, { user_ids: ['alice', 'carol', 'nobody'] });
      expect(friends.status, JSON.stringify(friends.body)).to.equal(200);
      const found = (friends.body.rows as { user_id: string; score: number }[]).map((r) => [r.user_id, r.score]);
      expect(found, `${p.tenant}/${p.project}`).to.deep.equal([['alice', p.score * 2]]);
      const periods = await call('GET', `/boards/${race}/periods`, p.client);
      expect(periods.body.periods.map((x: { players: number }) => x.players)).to.deep.equal([1]);
      expect((await call('GET', '/history/alice', p.client)).status).to.equal(200);
    }
    const [acmeLive, acmeDev, boltLive] = projects as [Project, Project, Project];
    // carol exists in bolt/live only (the test above registered her): elsewhere she is missing.
    expect((await call('GET', '/history/carol', boltLive.client)).status).to.equal(200);
    await same(call('GET', '/history/carol', acmeLive.client), call('GET', `/history/${uniqueId('none')}`, acmeLive.client));
    await same(call('GET', `/boards/${secret}/periods`, boltLive.client), call('GET', '/boards/no-such-board/periods', boltLive.client));
    await same(call('GET', `/boards/${secret}/top?period=all`, acmeDev.client), call('GET', '/boards/no-such-board/top?period=all', acmeDev.client));
    // Live: a client key rides in the URL. On a board only another project has: the missing board's 404.
    const live = (path: string) => call('GET', path, null);
    await same(live(`/boards/${secret}/live?key=${boltLive.client}`), live(`/boards/no-such-board/live?key=${boltLive.client}`));
    expect((await live(`/boards/${secret}/live?key=${boltLive.client}`)).status).to.equal(404);
    // A's ticket with B's key, on the player's own stream and on a top: 401 invalid_token.
    const ticket = (await call('POST', '/me/live-ticket', null, {}, acmeLive.token)).body.ticket as string;
    for (const path of [`/me/live?key=${boltLive.client}&ticket=${ticket}`, `/live?key=${acmeDev.client}&ticket=${ticket}`]) {
      const r = await live(path);
      expect([r.status, r.body.error], path).to.deep.equal([401, 'invalid_token']);
    }
    // A server key is not a client key: never accepted in a URL.
    const leaked = await live(`/live?key=${acmeLive.server}`);
    expect([leaked.status, leaked.body.error]).to.deep.equal([401, 'invalid_api_key']);
  });

  it("when a token of one project comes with another project's key, then 401 invalid_token", async () => {
    const [acmeLive, acmeDev] = projects as [Project, Project, Project];
    const r = await call('POST', '/score/add', acmeDev.client, { delta: 1 }, acmeLive.token);
    expect(r.status).to.equal(401);
    expect(r.body.error).to.equal('invalid_token');
    // Its own key, the same token: accepted, and only that project's alice moves.
    const ok = await call('POST', '/score/add', acmeLive.client, { delta: 1 }, acmeLive.token);
    expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
    expect((await call('GET', '/rank/alice?region=EU', acmeDev.client)).body.score).to.equal(acmeDev.score);
  });
  it("when a project (or its tenant) is deleted, then its keys and its players' tokens are refused and its Redis data is gone from every shard, the others' untouched", async () => {
    const [acmeLive, acmeDev] = projects as [Project, Project, Project];
    const tenant = acmeLive.tenant;
    await created(call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: 'doomed', name: 'doomed' }));
    const client = (await created(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'client', name: 'c', project: 'doomed' }))).key as string;
    const token = (await created(call('POST', '/auth/register', client, { user_id: 'alice', name: 'Doomed Alice', region: 'ASIA', password: 'correct horse' }))).token as string;
    await created(call('POST', '/score/add', client, { delta: 7 }, token));
    /** A project's keys on every shard; `lasting`: only those without a time to live (token buckets expire on their own). */
    const keysOf = async (p: { tenant: string; project: string }, lasting = false) => {
      let n = 0;
      for (const store of svc.deps.stores.all()) {
        for await (const batch of store.client.scanIterator({ MATCH: `${store.keys.project(p).prefix}*`, COUNT: 500 })) {
          for (const k of batch) if (!lasting || (await store.client.pTTL(k)) === -1) n++;
        }
      }
      return n;
    };
    expect(await keysOf({ tenant, project: 'doomed' })).to.be.above(0);
    const before = await keysOf({ tenant, project: acmeDev.project }, true);

    expect((await call('DELETE', '/admin/projects/doomed', acmeAdmin)).status).to.equal(204);
    expect(await keysOf({ tenant, project: 'doomed' })).to.equal(0);
    expect(await keysOf({ tenant, project: acmeDev.project }, true)).to.equal(before);
    expect((await call('GET', '/top', client)).body.error).to.equal('invalid_api_key');
    expect((await call('GET', '/rank/alice?region=ASIA', null, undefined, token)).body.error).to.equal('invalid_token');
    expect((await call('GET', '/rank/alice?region=EU', acmeDev.client)).body.score).to.equal(acmeDev.score);

    // Deleting a whole tenant does the same for each of its projects.
    const gone = tid('gone');
    await created(call('POST', '/admin/tenants', platform, { id: gone, name: gone }));
    await created(call('POST', `/admin/projects?tenant=${gone}`, platform, { id: 'game', name: 'game' }));
    const goneClient = (await created(call('POST', `/admin/keys?tenant=${gone}`, platform, { kind: 'client', name: 'c', project: 'game' }))).key as string;
    await created(call('POST', '/auth/register', goneClient, { user_id: 'alice', name: 'Gone Alice', region: 'NA', password: 'correct horse' }));
    expect(await keysOf({ tenant: gone, project: 'game' })).to.be.above(0);
    expect((await call('DELETE', `/admin/tenants/${gone}`, platform)).status).to.equal(204);
    expect(await keysOf({ tenant: gone, project: 'game' })).to.equal(0);
    expect(await keysOf({ tenant, project: acmeDev.project }, true)).to.equal(before);
  });
});
