/**
 * The load generator of the HTTP benchmark: wrk when it is installed (a C
 * event loop: ~10× less CPU per request than a Node client, which matters on
 * a 2-core machine where the client shares the CPUs with the stack), else
 * autocannon. Both run the same declarative mix of requests.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { findBinary } from '@lb/devtools/infra';
import { pct } from './machine.js';

/** One kind of request in a mix; each request picks a kind by weight, then a random path (and token). */
export interface MixEntry {
  readonly weight: number;
  readonly method: 'GET' | 'POST';
  /** Picked at random per request. */
  readonly paths: readonly string[];
  /** JSON body (POST). */
  readonly body?: string;
  /** JSON bodies, one picked at random per request (instead of `body`). */
  readonly bodies?: readonly string[];
  /** Bearer tokens, picked at random per request. */
  readonly tokens?: readonly string[];
}

export interface LoadOptions {
  readonly url: string;
  readonly mix: readonly MixEntry[];
  readonly connections: number;
  readonly durationS: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  /** Milliseconds. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  /** Responses outside 2xx/3xx. */
  readonly non2xx: number;
}

export type LoadTool = 'wrk' | 'autocannon';

export function loadTool(): LoadTool {
  return findBinary('wrk') ? 'wrk' : 'autocannon';
}

/** CPU seconds (user + system) of the children this process has waited for. */
export function childrenCpuSeconds(): number {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  return loadTool() === 'wrk' ? runWrk(opts) : runAutocannon(opts);
}

function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)]!;
}

function chooser(mix: readonly MixEntry[]): () => MixEntry {
  const total = mix.reduce((a, e) => a + e.weight, 0);
  return () => {
    let r = Math.random() * total;
    for (const e of mix) if ((r -= e.weight) < 0) return e;
    return mix[mix.length - 1]!;
  };
}

// ------------------------------------------------------------------ wrk ----

const luaString = (s: string) => JSON.stringify(s); // a JSON string literal is a valid Lua string literal for ASCII

function wrkScript(mix: readonly MixEntry[], dir: string): string {
  const total = mix.reduce((a, e) => a + e.weight, 0);
  const entries = mix.map((e, i) => {
    const paths = join(dir, `paths-${i}.txt`);
    writeFileSync(paths, `${e.paths.join('\n')}\n`);
    let bodies = 'nil';
    if (e.bodies) {
      const file = join(dir, `bodies-${i}.txt`);
      writeFileSync(file, `${e.bodies.join('\n')}\n`);
      bodies = `lines(${luaString(file)})`;
    }
    let tokens = 'nil';
    if (e.tokens) {
      const file = join(dir, `tokens-${i}.txt`);
      writeFileSync(file, `${e.tokens.join('\n')}\n`);
      tokens = `lines(${luaString(file)})`;
    }
    return `{ w = ${e.weight / total}, method = ${luaString(e.method)}, paths = lines(${luaString(paths)}), tokens = ${tokens}, bodies = ${bodies}, body = ${e.body === undefined ? 'nil' : luaString(e.body)} }`;
  });
  return `
local function lines(f)
  local t = {}
  for l in io.lines(f) do t[#t + 1] = l end
  return t
end
local entries = { ${entries.join(',\n  ')} }
math.randomseed(os.time())
request = function()
  local r = math.random()
  local e = entries[#entries]
  for _, c in ipairs(entries) do
    if r < c.w then e = c break end
    r = r - c.w
  end
  local path = e.paths[math.random(#e.paths)]
  local body = e.body
  if e.bodies then body = e.bodies[math.random(#e.bodies)] end
  if e.tokens then
    return wrk.format(e.method, path, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. e.tokens[math.random(#e.tokens)] }, body)
  end
  if body then return wrk.format(e.method, path, { ["Content-Type"] = "application/json" }, body) end
  return wrk.format(e.method, path, nil, body)
end
done = function(summary, latency, requests)
  local s = summary.errors
  io.write(string.format("LBRESULT %d %d %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, s.connect, s.read, s.write, s.status, s.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
`;
}

async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'lb-wrk-'));
  try {
    const script = join(dir, 'mix.lua');
    writeFileSync(script, wrkScript(opts.mix, dir));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(findBinary('wrk')!, ['-t1', `-c${opts.connections}`, `-d${opts.durationS}s`, '--timeout', '10s', '-s', script, opts.url], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d));
      child.stderr.on('data', (d: Buffer) => (text += d));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
    });
    const m = /LBRESULT ((?:\d+ ?){11})/.exec(out);
    if (!m) throw new Error(`unexpected wrk output: ${out}`);
    const [requests, durationUs, connect, read, write, status, timeout, p50, p95, p99, max] = m[1]!.trim().split(' ').map(Number) as number[];
    return {
      requests: requests!,
      rps: requests! / (durationUs! / 1e6),
      p50: p50! / 1000,
      p95: p95! / 1000,
      p99: p99! / 1000,
      max: max! / 1000,
      errors: connect! + read! + write! + timeout!,
      non2xx: status!,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------- autocannon ----

async function runAutocannon(opts: LoadOptions): Promise<LoadResult> {
  const choose = chooser(opts.mix);
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        duration: opts.durationS,
        pipelining: 1,
        requests: [
          {
            setupRequest: (req: any) => {
              const e = choose();
              const headers: Record<string, string> = {};
              const body = e.bodies ? pick(e.bodies) : e.body;
              if (body !== undefined) headers['content-type'] = 'application/json';
              if (e.tokens) headers.authorization = `Bearer ${pick(e.tokens)}`;
              return { ...req, method: e.method, path: pick(e.paths), headers, body };
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    inst.on('response', (_c: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  });
  latencies.sort((a, b) => a - b);
  return {
    requests: result.requests.total,
    rps: result.requests.total / opts.durationS,
    p50: pct(latencies, 50),
    p95: pct(latencies, 95),
    p99: pct(latencies, 99),
    max: latencies[latencies.length - 1] ?? NaN,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
