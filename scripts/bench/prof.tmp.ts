import { spawn } from 'node:child_process';
import autocannon from 'autocannon';
import { signToken } from '@lb/common';
import { getInfra, stopInfra } from '@lb/common/testing';
import { freePort } from '@lb/common/infra';
const infra = await getInfra();
const port = await freePort();
const SECRET = 'bench-secret-bench-secret-bench-secret-0';
const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/prof', '--import', 'tsx', 'leaderboard-service/src/index.ts'], { env: infra.env({ PORT: String(port), JWT_SECRET: SECRET, ACCESS_LOG: 'false', LOG_LEVEL: 'warn', USER_RATE_LIMIT_COUNT: '100000' }), stdio: 'inherit' });
for (let i = 0; i < 100; i++) { if (await fetch(`http://127.0.0.1:${port}/health`).then(r => r.ok, () => false)) break; await new Promise(r => setTimeout(r, 100)); }
const tokens = Array.from({ length: 5000 }, (_, i) => signToken({ userId: `p${i}`, name: `P${i}`, region: ['NA','EU','ASIA'][i%3]! }, { secret: SECRET, issuer: 'leaderboard-platform', ttlSeconds: 3600 }));
const mode = process.env.MODE ?? 'write';
const r = await autocannon({ url: `http://127.0.0.1:${port}`, connections: 16, duration: 6,
  requests: [{ setupRequest: (req: any) => mode === 'write' ? ({ ...req, method: 'POST', path: '/score/add', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[Math.floor(Math.random()*5000)]}` }, body: '{"delta":1}' }) : ({ ...req, path: '/top?region=GLOBAL&limit=10' }) }] });
console.log(mode, 'req/s', r.requests.average, 'p99', r.latency.p99, 'non2xx', r.non2xx, 'errors', r.errors);
child.kill('SIGINT');
await new Promise(r => child.once('exit', r));
await stopInfra();
process.exit(0);
