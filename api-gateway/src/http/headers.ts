/**
 * Header hygiene between the public side and the replicas: request ids,
 * identity headers a client must never be able to set, and the
 * X-Forwarded-For / X-Real-IP chain.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Exact names of identity headers some proxies or services trust (lower case, as Node stores them). */
const IDENTITY_HEADERS = new Set([
  'x-user-id',
  'x-user',
  'x-user-name',
  'x-user-region',
  'x-forwarded-user',
  'x-authenticated-user',
]);

/**
 * True for a header a client may not pass to a replica: the identity
 * headers above, any `x-auth-*` and any `x-lb-*` (the platform's own
 * internal namespace). The replica only trusts the verified token.
 */
export function isIdentityHeader(name: string): boolean {
  return IDENTITY_HEADERS.has(name) || name.startsWith('x-auth-') || name.startsWith('x-lb-');
}

/** Deletes every identity header from `headers` (in place). */
export function stripIdentityHeaders(headers: IncomingHttpHeaders): void {
  for (const name in headers) {
    // Cheap first-character test: nearly every header on the hot path is skipped here.
    if (name.charCodeAt(0) === 120 /* x */ && isIdentityHeader(name)) delete headers[name];
  }
}

/**
 * Hop-by-hop headers of the client's connection (RFC 9110 7.6.1) that must
 * not be forwarded; the gateway's kept-alive sockets to the replicas have
 * their own. `connection` itself stays: httpxy answers the client with it,
 * and the forwarder overrides it on the upstream request.
 */
const HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer'] as const;

/** Deletes the hop-by-hop headers above from `headers` (in place). */
export function stripHopByHopHeaders(headers: IncomingHttpHeaders): void {
  for (const name of HOP_BY_HOP) {
    // Deleting only what is there keeps V8's fast object shape in the common case.
    if (headers[name] !== undefined) delete headers[name];
  }
}

/**
 * Sets the forwarding headers the replica sees.
 *
 * - X-Forwarded-For: the chain received from a trusted peer (nginx on
 *   loopback or a private network) with the peer appended; from anyone
 *   else only the peer, because their own chain may be forged.
 * - X-Real-IP: the client address express derived with the same trust rule.
 * - X-Forwarded-Proto/Host/Port are kept only from a trusted peer.
 *
 * @param peer the socket's remote address
 * @param clientIp `req.ip`, computed before this call (it reads the original chain)
 * @param trusted whether `peer` is a trusted proxy
 */
export function setForwardingHeaders(headers: IncomingHttpHeaders, peer: string, clientIp: string, trusted: boolean): void {
  const prior = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = trusted && typeof prior === 'string' && prior !== '' ? `${prior}, ${peer}` : peer;
  headers['x-real-ip'] = clientIp;
  if (!trusted) {
    delete headers['x-forwarded-proto'];
    delete headers['x-forwarded-host'];
    delete headers['x-forwarded-port'];
  }
}
