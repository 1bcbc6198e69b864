/**
 * common/src/platform/jwt.ts: access tokens verified once per process and
 * remembered until their `exp`, per token settings, bounded.
 */
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { AppError } from '../src/contracts/errors.js';
import { DEFAULT_PROJECT } from '../src/contracts/tenancy.js';
import { signLiveTicket, signToken, verifiedTokenCount, verifyLiveTicket, verifyToken, VERIFIED_TOKEN_CACHE_SIZE, type TokenSettings } from '../src/platform/jwt.js';

const settings = (secret = 's'.repeat(32)): TokenSettings => Object.freeze({ secret, issuer: 'lb-test', ttlSeconds: 60 });
const player = (i: number) => ({ userId: `p${i}`, name: `Player ${i}`, region: 'EU' });

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(AppError);
    return `${(e as AppError).code}: ${(e as AppError).message}`;
  }
  throw new Error('expected a refusal');
}

/** Runs `f` with Date.now() moved by `ms` (jsonwebtoken reads the same clock). */
function at<T>(ms: number, f: () => T): T {
  const real = Date.now;
  Date.now = () => real() + ms;
  try {
    return f();
  } finally {
    Date.now = real;
  }
}

describe('verified access tokens (jwt.ts)', () => {
  it('when a token is verified twice, then the second answer is the remembered identity, equal to the first', () => {
    const s = settings();
    const token = signToken(player(1), s);
    const first = verifyToken(token, s);
    expect(verifiedTokenCount(s)).to.equal(1);
    expect(verifyToken(token, s)).to.equal(first);
    expect(first).to.deep.equal({ ...player(1), project: DEFAULT_PROJECT });
  });

  it('when a remembered token reaches its exp, then it is refused as expired, as jsonwebtoken refuses it', () => {
    const s = settings();
    const token = signToken(player(2), s);
    verifyToken(token, s);
    const { exp } = jwt.decode(token) as { exp: number };
    const untilExp = exp * 1000 - Date.now();
    expect(at(untilExp - 1000, () => verifyToken(token, s)).userId).to.equal('p2');
    expect(refusal(() => at(untilExp, () => verifyToken(token, s)))).to.equal('invalid_token: token expired');
  });

  it('when a token verified under one secret is presented to settings with another, then it is checked afresh and refused', () => {
    const a = settings();
    const token = signToken(player(3), a);
    verifyToken(token, a);
    expect(refusal(() => verifyToken(token, settings('t'.repeat(32))))).to.equal('invalid_token: token is invalid');
  });

  it('when a remembered token is altered by a byte, then the altered token is refused', () => {
    const s = settings();
    const token = signToken(player(4), s);
    verifyToken(token, s);
    const altered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    expect(refusal(() => verifyToken(altered, s))).to.equal('invalid_token: token is invalid');
    expect(verifiedTokenCount(s)).to.equal(1);
  });

  it('when more distinct tokens than the bound are verified, then the count stays at the bound and every token still verifies', () => {
    const s = settings();
    const tokens = Array.from({ length: VERIFIED_TOKEN_CACHE_SIZE + 5 }, (_, i) => signToken(player(i), s));
    for (const t of tokens) verifyToken(t, s);
    expect(verifiedTokenCount(s)).to.equal(VERIFIED_TOKEN_CACHE_SIZE);
    expect(verifyToken(tokens[0]!, s).userId).to.equal('p0');
    expect(verifiedTokenCount(s)).to.equal(VERIFIED_TOKEN_CACHE_SIZE);
  });

  it('when a token is signed for a project, then it carries the project (prj), verified and remembered, and so does a live ticket made from it', () => {
    const s = settings();
    const project = { tenant: 'studio', project: 'game-live' };
    const token = signToken(player(2), s, project);
    expect((jwt.decode(token) as Record<string, unknown>).prj).to.equal('studio/game-live');
    const who = verifyToken(token, s);
    expect(who).to.deep.equal({ ...player(2), project });
    expect(verifyToken(token, s)).to.equal(who);
    expect(verifyLiveTicket(signLiveTicket(who, s), s)).to.deep.equal({ ...player(2), project });
  });

  it('when a token carries no prj (issued before tenancy), then it is the default project\'s; a malformed prj is refused', () => {
    const s = settings();
    const old = jwt.sign({ name: 'Old', region: 'EU' }, s.secret, { algorithm: 'HS256', subject: 'old', issuer: s.issuer, expiresIn: 60 });
    expect(verifyToken(old, s).project).to.deep.equal(DEFAULT_PROJECT);
    for (const prj of ['studio', 'Studio/x', 'a/b/c', 7]) {
      const bad = jwt.sign({ name: 'Bad', region: 'EU', prj }, s.secret, { algorithm: 'HS256', subject: 'bad', issuer: s.issuer, expiresIn: 60 });
      expect(refusal(() => verifyToken(bad, s)), String(prj)).to.equal('invalid_token: token claims are malformed');
    }
  });
});
