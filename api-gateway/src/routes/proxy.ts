/**
 * The public API, forwarded to the replicas: read limits, token checks of
 * writes, body buffering and header hygiene happen here, before any byte
 * reaches a replica.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { API_PREFIXES as TABLE_PREFIXES, FORWARDED_ROUTES, pathRegExp, SCORE_WRITE_ROUTES } from '@lb/common/contracts';
import { hasBody, readBody, verifyBearer, type BodyLimits, type TokenSettings } from '@lb/common/platform';
import type { Forwarder } from '../forwarder.js';
import { stripHopByHopHeaders, setForwardingHeaders, stripIdentityHeaders } from '../http/headers.js';
import type { ReadLimiter } from '../http/rate-limit.js';

/**
 * What the gateway forwards and which writes it checks tokens of come from
 * the public route table (@lb/common contracts/routes.ts). A new route goes there; nginx proxies
 * every path it does not serve itself, and test/paths.e2e.test.ts asks each
 * of {@link API_PREFIXES} the path-traversal encodings.
 */
const PUBLIC_PATH = pathRegExp(FORWARDED_ROUTES);
/** Every first path segment the API answers, as `/<prefix>`: the proxied ones and the gateway's own /health. */
export const API_PREFIXES: readonly string[] = TABLE_PREFIXES;
/** `.` or `..` segments are never forwarded, whatever the replica would make of them. */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/** True for a path the gateway forwards. */
export function isPublicPath(path: string): boolean {
  return PUBLIC_PATH.test(path) && !DOT_SEGMENT.test(path);
}

/** Score writes: the main board's under /score, and named boards' score submissions (a player's token or a game server's API key). */
const SCORE_WRITE_PATH = pathRegExp(SCORE_WRITE_ROUTES);

/** True for a request the service treats as a score write (any non-read under /score, and board score submissions). */
export function isScoreWrite(method: string, path: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && SCORE_WRITE_PATH.test(path);
}

export interface ProxyRouteDeps {
  forwarder: Forwarder;
  limiter: ReadLimiter;
  token: TokenSettings;
  /** Bodies are buffered (so a write can be replayed on another replica) within these limits. */
  body: BodyLimits;
  /** express' compiled `trust proxy` test. */
  trustProxy: (addr: string, i: number) => boolean;
}

export type ProxyHandler = (req: IncomingMessage, res: ServerResponse, fail: (err: unknown) => void) => boolean;

/**
 * The proxy on plain node:http: returns false for paths it does not forward
 * (the caller hands those to express). Express' per-request machinery costs
 * as much as the proxying itself, so the hot path does without it.
 */
export function proxyRoute(deps: ProxyRouteDeps): ProxyHandler {
  return (req, res, fail) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (!isPublicPath(path)) return false;
    forward(deps, req, res, fail, path).catch(fail);
    return true;
  };
}

async function forward(deps: ProxyRouteDeps, req: IncomingMessage, res: ServerResponse, fail: (err: unknown) => void, path: string): Promise<void> {
  const { peer, trusted } = peerOf(req.socket, deps.trustProxy);
  const xff = req.headers['x-forwarded-for'];
  const clientIp = xff === undefined || !trusted ? peer : clientOf(peer, xff, deps.trustProxy);
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    await deps.limiter.take(clientIp);
  } else if (isScoreWrite(method, path) && req.headers['x-api-key'] === undefined) {
    // A bad or missing token is answered here and never reaches a replica;
    // the replica verifies the same token again (it trusts nothing else).
    // An API key (a game server on a board) is checked by the replica,
    // which has the control plane.
    verifyBearer(req.headers.authorization, deps.token);
  }
  const body = hasBody(req) ? await readBody(req, deps.body) : undefined;

  const h = req.headers;
  stripIdentityHeaders(h);
  stripHopByHopHeaders(h);
  setForwardingHeaders(h, peer, clientIp, trusted);
  // Node already answered 100-continue; httpxy skips its proxyReq event for such requests.
  if (h.expect !== undefined) delete h.expect;
  if (body !== undefined) {
    h['content-length'] = String(body.length);
    delete h['transfer-encoding'];
  }
  deps.forwarder.forward(req, res, fail, body);
}

/**
 * The client address behind trusted proxies, as express' `req.ip` computes
 * it: walk X-Forwarded-For from the right while the hop is trusted.
 */
function clientOf(peer: string, xff: string | string[], trust: (addr: string, i: number) => boolean): string {
  // The usual case behind nginx, answered without splitting: one hop behind
  // a trusted peer (the caller checked the peer) is the client.
  if (typeof xff === 'string' && !xff.includes(',')) {
    const hop = xff.trim();
    return hop === '' ? peer : hop;
  }
  const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((s) => s.trim()).filter(Boolean);
  let addr = peer;
  for (let i = hops.length - 1, n = 1; i >= 0; i--, n++) {
    if (!trust(addr, n - 1)) return addr;
    addr = hops[i]!;
  }
  return addr;
}

const PEER = Symbol('lb.peer');
type PeerInfo = { peer: string; trusted: boolean };

/** The socket's address and whether it is a trusted proxy, computed once per connection. */
function peerOf(socket: Socket & { [PEER]?: PeerInfo }, trust: (addr: string, i: number) => boolean): PeerInfo {
  let info = socket[PEER];
  if (info === undefined) {
    const peer = socket.remoteAddress ?? '';
    info = { peer, trusted: peer !== '' && trust(peer, 0) };
    socket[PEER] = info;
  }
  return info;
}

