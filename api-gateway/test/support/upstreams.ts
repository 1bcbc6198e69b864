/**
 * Tiny stand-in upstreams for gateway tests: an echo server that records what
 * arrives, a server that never answers, a counting pass-through proxy placed
 * in front of a real replica, and a port nobody listens on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface TestUpstream {
  url: string;
  port: number;
  /** Requests received (GET /health and /health/live probes excluded). */
  requests: Recorded[];
  stop(): Promise<void>;
}

async function listen(server: http.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

function stopper(server: http.Server): () => Promise<void> {
  return async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };
}

/** The gateway's liveness probe or a readiness check. */
const isProbe = (url: string | undefined): boolean => url === '/health' || url === '/health/live';

function record(req: http.IncomingMessage): Promise<Recorded> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      resolve({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }),
    );
  });
}

/** Answers 200 `{method, url, headers, body}` to everything and records it. */
export async function startEcho(port = 0): Promise<TestUpstream> {
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const r = await record(req);
    if (!isProbe(r.url)) requests.push(r);
    const out = JSON.stringify(isProbe(r.url) ? { ok: true } : r);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  });
  const p = await listen(server, port);
  return { url: `http://127.0.0.1:${p}`, port: p, requests, stop: stopper(server) };
}

/** Accepts requests and never answers them (except the health routes, with `healthStatus`). */
export async function startHanging(healthStatus = 200): Promise<TestUpstream> {
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const r = await record(req);
    if (isProbe(r.url)) {
      res.writeHead(healthStatus).end();
      return;
    }
    requests.push(r);
  });
  const p = await listen(server);
  return { url: `http://127.0.0.1:${p}`, port: p, requests, stop: stopper(server) };
}

/** Forwards everything to `target` and records each request on the way (probes included in `all`). */
export async function startCountingProxy(target: string): Promise<TestUpstream> {
  const requests: Recorded[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    if (!isProbe(req.url)) requests.push({ method: req.method!, url: req.url!, headers: req.headers, body: '' });
    const up = http.request(target + req.url, { method: req.method, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const p = await listen(server);
  const stop = stopper(server);
  return {
    url: `http://127.0.0.1:${p}`,
    port: p,
    requests,
    async stop() {
      await stop();
      agent.destroy();
    },
  };
}

/** A loopback port with nothing listening on it (connections are refused). */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A replica that is alive (`/health/live` 200) but answers every other
 * request, `/health` included, with `status` and the platform's error shape:
 * a replica whose Redis shard is down.
 */
export async function startFailingApp(status = 503, port = 0): Promise<TestUpstream> {
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const r = await record(req);
    if (r.url === '/health/live') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    if (!isProbe(r.url)) requests.push(r);
    const out = JSON.stringify({ error: 'unavailable', message: 'shard na is unavailable', shard: 'na', retry_after: 1 });
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  });
  const p = await listen(server, port);
  return { url: `http://127.0.0.1:${p}`, port: p, requests, stop: stopper(server) };
}
