/** GET /health: the gateway's own view of its replicas (never proxied). */
import type { RequestHandler } from 'express';
import type { UpstreamPool } from '../upstreams.js';

/** 200 while at least one replica is in rotation, 503 otherwise. */
export function healthRoute(pool: UpstreamPool, gatewayId: string): RequestHandler {
  return (_req, res) => {
    const upstreams = pool.view();
    const ok = upstreams.some((u) => u.healthy);
    res.status(ok ? 200 : 503).json({ ok, gateway: gatewayId, upstreams });
  };
}
