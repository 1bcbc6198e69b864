/**
 * The live page (web/) in a real browser: Debian's chromium, driven by
 * playwright-core (which downloads no browser of its own), against a whole
 * stack started with startStack, through nginx. Registers and logs in
 * through the page's form, writes scores through the API, and sees the top
 * 10 and the player's card change without a reload; kills the replica that
 * serves the page's top stream and sees the page recover; fails on any
 * console error; saves screenshots at phone and desktop width.
 *
 * Screenshots go to .data/test-output/web/ (ignored by git), or
 * $TEST_OUTPUT_DIR/web when set.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { ensureBinaries } from '@lb/devtools/infra';
import { REPO_ROOT } from '../scripts/stack/paths.js';
import type { Stack } from '../scripts/stack/stack.js';
import { post } from './support/e2e.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';

const OUT_DIR = join(process.env.TEST_OUTPUT_DIR ?? join(REPO_ROOT, '.data', 'test-output'), 'web');
/** The issue asks for updates within 1 s; asserted with room for a loaded 2-core machine, the measured delays are printed. */
const UPDATE_BOUND_MS = 3000;
/** After a replica is killed: the stream's reconnect (backoff from 250 ms) and the gateway's failover. */
const RECOVERY_BOUND_MS = 10_000;

describe('the live page (Chromium through nginx, end to end)', function () {
  this.timeout(300_000);
  let chromiumPath: string;
  let running: TestStack | undefined;
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  const stackLog: string[] = [];

  before(async function () {
    skipUnlessInstalled(this);
    try {
      // Installed like the servers: apt-get install -y chromium when root on Debian, else the command is printed.
      chromiumPath = (await ensureBinaries(['chromium'], { install: true })).chromium;
    } catch (e) {
      console.log(`      (skipped: ${(e as Error).message})`);
      this.skip();
    }
    running = await startTestStack('lb-web-', {
      replicas: 2,
      gateways: 1,
      workers: 1,
      metrics: false,
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn', ARGON2_MEMORY_KIB: '256', ARGON2_TIME_COST: '1' },
      restart: false,
      log: (l) => stackLog.push(l),
    });
    stack = running.stack;
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await running?.stop();
  });

  it('when a player registers on the page and scores are written, then the top 10 and their card follow live, survive the loss of the replica serving them, and the page has no console errors at 390 and 1280 px', async () => {
    const s = stack!;
    const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const consoleErrors: Array<{ at: number; text: string; url: string }> = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push({ at: Date.now(), text: m.text(), url: m.location().url });
    });
    page.on('pageerror', (e) => consoleErrors.push({ at: Date.now(), text: `uncaught: ${e.message}`, url: '' }));
    // Which replica answers each stream (X-Served-By), to kill the one serving the top 10.
    const servedBy = new Map<string, string>();
    page.on('response', (r) => {
      const path = new URL(r.url()).pathname;
      if (path === '/live' || path === '/me/live') servedBy.set(path, r.headers()['x-served-by'] ?? '');
    });

    const tag = String(process.pid % 100_000);
    const me = `web_me_${tag}`;
    const bots = [`web_a_${tag}`, `web_b_${tag}`, `web_c_${tag}`];
    const botTokens = new Map<string, string>();
    for (const [i, id] of bots.entries()) {
      const r = await post(`${s.url}/auth/register`, { user_id: id, name: `Bot ${'ABC'[i]}`, region: ['NA', 'EU', 'ASIA'][i], password: 'a long enough password' });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
      botTokens.set(id, r.body.token);
    }
    let writeKeys = 0;
    /**
     * Sets a score; resolves when it is acknowledged. Right after a replica is
     * killed a write on a kept-alive socket to it is answered 502 (the gateway
     * cannot know whether it was sent): it is sent again with the same
     * Idempotency-Key, which settles it exactly once.
     */
    const setScore = async (token: string, score: number): Promise<number> => {
      const headers = { 'idempotency-key': `web-e2e-${tag}-${++writeKeys}` };
      for (let attempt = 1; ; attempt++) {
        const r = await post(`${s.url}/score/update`, { score }, { token, headers });
        if (r.status === 200) return Date.now();
        if (!(r.status === 502 || r.status === 503) || attempt === 5) expect.fail(`score write: ${r.status} ${JSON.stringify(r.body)}`);
        await new Promise((done) => setTimeout(done, 100));
      }
    };
    // In-page conditions: functions run in the page (strings would be eval'd, which the page's CSP forbids);
    // `any` because this file is type-checked without the DOM library.
    type Cond = [(arg: any) => boolean, unknown];
    /**
     * Row n of the top 10 is this player with this score. Both are checked: a
     * row's identity alone can hold before the change (equal scores rank in
     * user_id order, so the first bot leads the board of zeros already).
     */
    const nthTop = (n: number, id: string, score: number): Cond => [
      (a: any) => {
        const li = (globalThis as any).document.querySelectorAll('#top > li')[a.n];
        return li?.dataset.user === a.id && li.querySelector('.score')?.textContent === a.score;
      },
      { n, id, score: score.toLocaleString('en-US') },
    ];
    const cardText = (field: string, text: string): Cond => [(a: any) => (globalThis as any).document.getElementById(a.id)?.textContent === a.text, { id: `card-${field}`, text }];
    /** ms from `since` until `cond` holds on the page (polled in the page on every animation frame). */
    const delayUntil = async (since: number, [fn, arg]: Cond, bound = UPDATE_BOUND_MS): Promise<number> => {
      await page.waitForFunction(fn, arg, { timeout: bound, polling: 'raf' });
      return Date.now() - since;
    };
    const topIds = () => page.$$eval('#top > li', (lis) => lis.map((li) => li.getAttribute('data-user')));
    const delays: Record<string, number> = {};

    // A named board with weekly periods (before the page loads, so the picker lists it).
    const adminKey = readFileSync(s.adminKeyFile, 'utf8').trim();
    const weekly = `web-weekly-${tag}`;
    const created = await post(`${s.url}/admin/boards`, { id: weekly, title: 'Weekly sprint', reset: 'weekly' }, { headers: { 'x-api-key': adminKey } });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);

    const res = await page.goto(`${s.url}/`);
    expect(res?.status()).to.equal(200);
    expect(res?.headers()['content-security-policy']).to.include("default-src 'self'");
    await page.waitForSelector('#stream-status[data-state="live"]', { timeout: 10_000 });
    // Every bot is on the board (with 0), in user_id order.
    await page.waitForFunction((n: number) => (globalThis as any).document.querySelectorAll('#top > li').length >= n, bots.length, { timeout: 5000 });

    // The board picker lists main first; every form control has a label.
    expect(await page.$eval('#board option', (el) => el.getAttribute('value'))).to.equal('main');
    expect(await page.$$eval('input, select', (els) => els.filter((el: any) => el.labels.length === 0).map((el) => el.id))).to.deep.equal([]);

    // Register through the form, with the keyboard.
    await page.fill('#auth-user', me);
    await page.fill('#auth-password', 'correct horse battery');
    await page.fill('#auth-name', 'Web Player');
    await page.selectOption('#auth-region', 'EU');
    await page.focus('#register');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#card:not([hidden])', { timeout: 10_000 });
    expect(await page.textContent('#card-name')).to.equal('Web Player');
    expect(await page.isHidden('#auth')).to.equal(true);
    // The card stream's first event: the player is on the board with 0.
    await page.waitForFunction(() => (globalThis as any).document.getElementById('card')?.dataset.score === '0', undefined, { timeout: 5000 });

    // A bot takes the lead: the top 10 shows it first.
    let t = await setScore(botTokens.get(bots[0]!)!, 500);
    delays['top: new leader'] = await delayUntil(t, nthTop(0, bots[0]!, 500));
    expect(await page.textContent('#top > li:first-child .score')).to.equal('500');

    // The player's own score: the card and the top 10 change.
    const login = await post(`${s.url}/auth/login`, { user_id: me, password: 'correct horse battery' });
    expect(login.status).to.equal(200);
    t = await setScore(login.body.token, 300);
    delays['card: own score'] = await delayUntil(t, cardText('score', '300'));
    expect(await page.textContent('#card-rank-global')).to.equal('#2');
    expect(await page.textContent('#card-rank-region')).to.equal('#1');
    await delayUntil(t, nthTop(1, me, 300));
    expect(await page.getAttribute(`#top > li[data-user="${me}"]`, 'class')).to.include('me');

    // Overtaken: a bot passes the player; the rows reorder and the card's rank drops.
    t = await setScore(botTokens.get(bots[1]!)!, 400);
    delays['top: overtaken'] = await delayUntil(t, nthTop(1, bots[1]!, 400));
    delays['card: overtaken'] = await delayUntil(t, cardText('rank-global', '#3'));
    expect((await topIds()).slice(0, 3)).to.deep.equal([bots[0], bots[1], me]);
    // The around window lists the neighbours, the player marked.
    expect(await page.$$eval('#around > li.me', (lis) => lis.length)).to.equal(1);

    // The history sparkline (from Postgres, via the worker): a line once the writes are persisted.
    await page.waitForSelector('#sparkline svg polyline', { timeout: 10_000 });

    // The operator panel with the stack's admin key: one row per shard.
    await page.click('#ops summary');
    await page.fill('#ops-key', adminKey);
    await page.click('#ops-form button[type="submit"]');
    await page.waitForSelector('#ops-table:not([hidden])', { timeout: 5000 });
    expect(await page.$$eval('#ops-body tr', (trs) => trs.length)).to.equal(s.topology.shards.length);

    // Kill the replica that checked the top 10's stream: nginx holds the stream, which goes on updating.
    const victim = servedBy.get('/live');
    expect(victim, 'the top stream named its replica').to.match(/^leaderboard-service-\d+$/);
    const killedAt = Date.now();
    await s.kill(victim!);
    t = await setScore(botTokens.get(bots[2]!)!, 900);
    delays['after kill: top updates'] = await delayUntil(killedAt, nthTop(0, bots[2]!, 900), RECOVERY_BOUND_MS);
    t = await setScore(login.body.token, 1000);
    delays['after kill: card updates'] = await delayUntil(t, cardText('score', '1,000'), RECOVERY_BOUND_MS);
    // Not a reconnection: the same stream, still open in nginx (its channel is published by a replica that runs).
    expect(servedBy.get('/live')).to.equal(victim);
    await page.waitForSelector('#stream-status[data-state="live"]', { timeout: 5000 });
    // One more write once reconnected: within the normal bound again.
    t = await setScore(botTokens.get(bots[0]!)!, 1500);
    delays['after recovery: top updates'] = await delayUntil(t, nthTop(0, bots[0]!, 1500));

    // Screenshots at desktop and phone width.
    mkdirSync(OUT_DIR, { recursive: true });
    const shots = [join(OUT_DIR, 'live-page-1280x800.png'), join(OUT_DIR, 'live-page-390x844.png')];
    await page.waitForTimeout(1700); // the highlight animations end
    await page.screenshot({ path: shots[0]!, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    // Nothing wider than the phone's screen.
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).to.be.at.most(390);
    await page.screenshot({ path: shots[1]!, fullPage: true });

    // The named board: its current period, a countdown to its reset, and its own live top.
    await page.setViewportSize({ width: 1280, height: 800 });
    // Focusing the picker refreshes its list (a replica learns of a new board within BOARD_REFRESH_MS).
    await page.focus('#board');
    await page.selectOption('#board', weekly);
    await page.waitForSelector('#period:not([hidden])', { timeout: 5000 });
    expect(await page.textContent('#period-name')).to.match(/^Period \d{4}-W\d{2}\b/);
    const countdown = await page.textContent('#countdown');
    expect(countdown).to.match(/^(\d+d )?\d{2}:\d{2}:\d{2}$/);
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#top > li').length === 0, undefined, { timeout: 5000 });
    const b = await post(`${s.url}/boards/${weekly}/scores`, { score: 42 }, { token: botTokens.get(bots[1]!)! });
    expect(b.status, JSON.stringify(b.body)).to.equal(200);
    delays['named board: top updates'] = await delayUntil(Date.now(), nthTop(0, bots[1]!, 42));
    expect(page.url()).to.include(`board=${weekly}`);

    console.log(`      update delays (write acknowledged → on the page), ms: ${JSON.stringify(delays)}`);
    console.log(`      screenshots:\n        ${shots.join('\n        ')}`);
    // The gateway ends a stream whose replica died cleanly (no broken chunked answer), so even the kill leaves no console error.
    expect(consoleErrors.map((e) => `${e.text} (${e.url})`), 'console errors').to.deep.equal([]);
    for (const [what, ms] of Object.entries(delays)) expect(ms, what).to.be.at.most(what.startsWith('after kill') ? RECOVERY_BOUND_MS : UPDATE_BOUND_MS);
    await context.close();
  });
});
