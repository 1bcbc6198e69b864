/**
 * The public API, forwarded to the replicas: read limits, token checks of
 * writes, body buffering and header hygiene happen here, before any byte
 * reaches a replica.
 */
import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';
import { verifyBearer, type TokenSettings } from '@lb/common';
import type { Forwarder } from '../forwarder.js';
import { hasBody, readBody } from '../http/body.js';
import { stripHopByHopHeaders, setForwardingHeaders, stripIdentityHeaders } from '../http/headers.js';
import type { ReadLimiter } from '../http/rate-limit.js';

/** Paths of the public API: /auth/*, /score and /score/*, /top, /rank/:id, /around/:id, /history/:id. */
const PUBLIC_PATH = /^\/(?:auth\/.+|score(?:\/.*)?|top|(?:rank|around|history)\/[^/]+)$/;
/** `.` or `..` segments are never forwarded, whatever the replica would make of them. */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/** True for a path the gateway forwards. */
export function isPublicPath(path: string): boolean {
  return PUBLIC_PATH.test(path) && !DOT_SEGMENT.test(path);
}

/** True for a request the service treats as a score write (any non-read under /score). */
export function isScoreWrite(method: string, path: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && (path === '/score' || path.startsWith('/score/'));
}

export interface ProxyRouteDeps {
  forwarder: Forwarder;
  limiter: ReadLimiter;
  token: TokenSettings;
  bodyLimitBytes: number;
  /** express' compiled `trust proxy` test. */
  trustProxy: (addr: string, i: number) => boolean;
}

export function proxyRoute(deps: ProxyRouteDeps): RequestHandler {
  return async (req, res, next) => {
    const path = req.path;
    if (!isPublicPath(path)) return next();
    const { peer, trusted } = peerOf(req.socket, deps.trustProxy);
    // Without X-Forwarded-For the client is the peer: skip express' proxyaddr walk.
    const clientIp = req.headers['x-forwarded-for'] === undefined ? peer : (req.ip ?? peer);
    if (req.method === 'GET' || req.method === 'HEAD') {
      await deps.limiter.take(clientIp);
    } else if (isScoreWrite(req.method, path)) {
      // A bad or missing token is answered here and never reaches a replica;
      // the replica verifies the same token again (it trusts nothing else).
      verifyBearer(req.headers.authorization, deps.token);
    }
    const body = hasBody(req) ? await readBody(req, deps.bodyLimitBytes) : undefined;

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
    deps.forwarder.forward(req, res, next, body);
  };
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

