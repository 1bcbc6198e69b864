/**
 * The two processes of the benchmark's baseline (the bare cost of the
 * topology): a minimal Node server answering every request with a fixed JSON
 * body, and a minimal Node hop proxying to it over keep-alive connections.
 *
 *   node minimal.mjs server <port> <body>
 *   node minimal.mjs hop <port> <upstream port>
 *
 * Prints "ready" once listening.
 */
import { Agent, createServer, request } from 'node:http';

const [role, port, arg] = process.argv.slice(2);
let server;
if (role === 'server') {
  const body = Buffer.from(arg);
  server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
} else if (role === 'hop') {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  server = createServer((req, res) => {
    const up = request({ host: '127.0.0.1', port: Number(arg), path: req.url, method: req.method, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
} else {
  console.error('usage: minimal.mjs server <port> <body> | hop <port> <upstream port>');
  process.exit(2);
}
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
