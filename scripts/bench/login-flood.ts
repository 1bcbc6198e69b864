/**
 * Login flood against a running stack: how much a flood of wrong passwords
 * slows the reads of everyone else. Each password check is an argon2id hash
 * (tens of ms of CPU), so without throttling a flood took the CPU from the
 * board reads (the hardening issue measured median /top 2 ms → 34 ms).
 *
 * /top latency is sampled by a small closed loop (a player refreshing the
 * board), first idle, then during each flood:
 * - one user, one address: 200 wrong passwords in 3 s, repeated (the
 *   issue's flood; the per-user limit stops it after LOGIN_USER_MAX_FAILS);
 * - many users, many addresses: wrong passwords for fresh user ids from 64
 *   client addresses at the same rate (no per-user or per-IP limit trips
 *   quickly, so every attempt costs a hash and only HASH_CONCURRENCY
 *   bounds the damage).
 */
import http from 'node:http';
import { fmt, pct } from './machine.js';

export interface LatencySample {
  requests: number;
  p50: number;
  p99: number;
}

export interface FloodResult {
  name: string;
  /** /top latency during the flood. */
  top: LatencySample;
  /** Login answers by status during the flood. */
  statuses: Record<string, number>;
}

export interface LoginFloodResult {
  idle: LatencySample;
  floods: FloodResult[];
}

const agents = new Map<string, http.Agent>();
function agentFor(localAddress: string): http.Agent {
  let a = agents.get(localAddress);
  if (!a) agents.set(localAddress, (a = new http.Agent({ keepAlive: true, localAddress, maxSockets: 16 })));
  return a;
}

function request(url: string, localAddress: string, method = 'GET', body?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method, agent: agentFor(localAddress), headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** /top latencies of `lanes` sequential readers for `durationMs`. */
async function sampleTop(base: string, durationMs: number, lanes = 2): Promise<LatencySample> {
  const times: number[] = [];
  const end = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        await request(`${base}/top?region=EU&limit=10`, '127.0.9.1');
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { requests: times.length, p50: pct(times, 50), p99: pct(times, 99) };
}

/** Sends wrong-password logins at `perSecond` until `durationMs` is over; counts the answers. */
async function flood(base: string, durationMs: number, perSecond: number, next: (i: number) => { user: string; from: string }): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  const inFlight: Promise<void>[] = [];
  const start = Date.now();
  for (let i = 0; Date.now() - start < durationMs; i++) {
    const { user, from } = next(i);
    const body = JSON.stringify({ user_id: user, password: 'not the password' });
    inFlight.push(request(`${base}/auth/login`, from, 'POST', body).then((s) => void (statuses[s] = (statuses[s] ?? 0) + 1)));
    const due = start + ((i + 1) * 1000) / perSecond;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  await Promise.all(inFlight);
  return statuses;
}

/** Runs the idle sample and both floods against the stack at `base` (nginx). */
export async function benchLoginFlood(base: string, knownUser: string, log: (s: string) => void, durationMs = 6000): Promise<LoginFloodResult> {
  try {
    await sampleTop(base, 2000); // warm
    const idle = await sampleTop(base, durationMs);
    log(`login flood: /top idle p50 ${fmt(idle.p50, 1)} ms, p99 ${fmt(idle.p99, 1)} ms (${idle.requests} requests)`);
    const floods: FloodResult[] = [];
    const rate = 200 / 3;
    for (const [name, next] of [
      ['one user, one address (200 wrong passwords per 3 s)', () => ({ user: knownUser, from: '127.0.9.2' })],
      ['fresh user ids from 64 addresses (same rate)', (i: number) => ({ user: `flood-${Date.now().toString(36)}-${i}`, from: `127.0.10.${(i % 64) + 1}` })],
    ] as const) {
      const [top, statuses] = await Promise.all([sampleTop(base, durationMs), flood(base, durationMs, rate, next)]);
      floods.push({ name, top, statuses });
      log(`login flood, ${name}: /top p50 ${fmt(top.p50, 1)} ms (${fmt(top.p50 / idle.p50, 1)}× idle), p99 ${fmt(top.p99, 1)} ms; logins ${JSON.stringify(statuses)}`);
      await new Promise((r) => setTimeout(r, 2000)); // let queued hashes finish
    }
    return { idle, floods };
  } finally {
    for (const a of agents.values()) a.destroy();
    agents.clear();
  }
}

/** The markdown table of a login-flood run. */
export function loginFloodMarkdown(r: LoginFloodResult): string {
  const row = (name: string, s: LatencySample, statuses?: Record<string, number>) =>
    `| ${name} | ${fmt(s.p50, 1)} | ${fmt(s.p50 / r.idle.p50, 1)}× | ${fmt(s.p99, 1)} | ${statuses ? Object.entries(statuses).map(([k, v]) => `${v} × ${k}`).join(', ') : '—'} |`;
  const first = r.floods[0];
  const ok = first ? first.top.p50 <= 2 * r.idle.p50 : undefined;
  return `### Login flood

/top latency seen by a player refreshing the EU board (2 sequential readers) while wrong-password logins arrive at 67/s through nginx, with the default login limits (LOGIN_USER_MAX_FAILS 5, LOGIN_IP_MAX_FAILS 100) and HASH_CONCURRENCY 1 per replica.

| /top during | p50 ms | vs idle | p99 ms | login answers |
|---|---|---|---|---|
${row('idle', r.idle)}
${r.floods.map((f) => row(f.name, f.top, f.statuses)).join('\n')}

Target: median /top during the flood of the hardening issue (one user) within 2× of idle ${ok === undefined ? '(not run)' : ok ? '✅' : '❌'}.`;
}
