#!/usr/bin/env node
/**
 * One entry point that works on a fresh checkout:
 *
 *   node scripts/bootstrap.mjs <test|start|migrate|stop|bench|...> [args...]
 *
 * 0. runs on the Node of `.node-version` (26 LTS): when the Node that
 *    started it is another one (a Debian machine's system Node 20, say), it
 *    installs that exact version once from the npm registry (the package
 *    `node-<platform>-<arch>`, the official binary repackaged, no install
 *    scripts) into .runtime/, and runs itself again on it, with its bin/
 *    first on PATH; everything below, `npm ci` included, then runs on it;
 * 1. installs npm dependencies (`npm ci`) when node_modules is missing or
 *    older than package-lock.json;
 * 2. makes sure the system servers the command needs exist (installing them
 *    with apt-get when root on Debian, else printing the command to run);
 * 3. `start` and `bench` run the compiled services: builds them first when
 *    a workspace's dist/ is missing or older than its sources
 *    (scripts/build.mjs);
 * 4. runs the command: `test` → mocha, anything else → scripts/<name>.ts
 *    (from source, through tsx), forwarding signals and exiting with the
 *    command's status.
 *
 * Plain Node with no dependencies (like scripts/build.mjs, which it imports),
 * because it runs before node_modules exists.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuild } from './build.mjs';
import { ensureNodeBinary, nodeBinaryPath, projectNodeVersion } from './runtime.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
/**
 * Node flags that run TypeScript from source: tsx, and the `development`
 * export condition so `@lb/*` imports resolve to src/, not to a dist/ that
 * may be missing or stale (SOURCE_NODE_ARGS in devtools/src/infra/node-args.ts).
 */
const SOURCE_NODE_ARGS = ['--conditions=development', '--import', 'tsx'];
const [command, ...args] = process.argv.slice(2);

const SERVERS = ['redis-server', 'postgres', 'initdb'];
/** Redis Sentinel (Debian's redis-sentinel): the stack's shards have replicas unless `npm start -- --no-replicas` (or REDIS_REPLICAS=0). */
const SENTINEL = ['redis-sentinel'];
/** nginx and nchan, its push module (Debian's libnginx-mod-nchan), which holds the live streams. */
const NGINX = ['nginx', 'nchan'];
/** Prometheus (with promtool) and the exporters: METRICS_BINARIES in devtools/src/infra/binaries.ts. */
const METRICS = ['prometheus', 'promtool', 'prometheus-redis-exporter', 'prometheus-postgres-exporter', 'prometheus-nginx-exporter'];
/** `npm start -- --no-metrics` (or STACK_METRICS=off) starts no Prometheus and no exporters. */
const metricsOff = args.includes('--no-metrics') || ['off', 'false', 'no', '0'].includes((process.env.STACK_METRICS ?? '').trim().toLowerCase());
const redisReplicasOff = args.includes('--no-replicas') || (process.env.REDIS_REPLICAS ?? '').trim() === '0';
/** System binaries each command needs; commands not listed need none. */
const BINARIES = {
  // chromium: the live page's browser test (test/web.e2e.test.ts).
  test: [...SERVERS, ...SENTINEL, ...NGINX, ...METRICS, 'chromium'],
  start: [...SERVERS, ...(redisReplicasOff ? [] : SENTINEL), ...NGINX, ...(metricsOff ? [] : METRICS)],
  bench: [...SERVERS, ...SENTINEL, ...NGINX, ...METRICS],
};
/** Commands that run the compiled services, so need a fresh build. */
const NEEDS_BUILD = new Set(['start', 'bench']);
/**
 * Binaries a command uses when they can be had: installed like the others,
 * but when that is not possible the command goes on without them (the
 * benchmark falls back from wrk to autocannon).
 */
const OPTIONAL_BINARIES = {
  bench: ['wrk'],
};

function fail(message, code = 2) {
  console.error(`bootstrap: ${message}`);
  process.exit(code);
}

function availableScripts() {
  try {
    return readdirSync(join(root, 'scripts'))
      .filter((f) => f.endsWith('.ts') && f !== 'ensure-binaries.ts')
      .map((f) => f.slice(0, -3));
  } catch {
    return [];
  }
}

function usage() {
  const names = ['test', ...availableScripts()].join('|');
  return `usage: node scripts/bootstrap.mjs <${names}> [args...]`;
}

/** Runs a command to completion with inherited stdio; exits on failure. */
function runOrExit(cmd, cmdArgs, what) {
  const res = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (res.error) fail(`${what}: ${res.error.message}`, 1);
  if (res.status !== 0) fail(`${what} failed (${res.signal ?? `exit code ${res.status}`})`, res.status || 1);
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * npm writes node_modules/.package-lock.json after every install, so it being
 * missing or older than package-lock.json means the tree is absent or stale.
 */
function ensureDependencies() {
  const lock = mtime(join(root, 'package-lock.json'));
  const installed = mtime(join(root, 'node_modules', '.package-lock.json'));
  if (installed !== undefined && (lock === undefined || installed >= lock)) return;
  const npmArgs = lock === undefined ? ['install'] : ['ci'];
  console.error(`bootstrap: ${installed === undefined ? 'node_modules missing' : 'node_modules older than package-lock.json'}: npm ${npmArgs[0]}`);
  // Under `npm run`, npm_execpath is the npm that invoked us: reuse it rather
  // than whatever `npm` PATH finds first.
  const npmCli = process.env.npm_execpath;
  if (npmCli && /npm-cli\.[cm]?js$/.test(npmCli)) runOrExit(process.execPath, [npmCli, ...npmArgs], `npm ${npmArgs[0]}`);
  else runOrExit('npm', npmArgs, `npm ${npmArgs[0]}`);
}

/**
 * Makes sure this process runs on the Node of `.node-version`; if it does
 * not, brings that version into .runtime/ (once) and re-runs this command on
 * it, never returning. PATH gets its bin/ first, so `npm` and anything that
 * spawns `node` by name run on it too.
 */
function ensureRuntime() {
  const want = projectNodeVersion(root);
  if (process.versions.node === want) return;
  if (process.env.LB_BOOTSTRAP_NODE) fail(`re-ran on ${process.env.LB_BOOTSTRAP_NODE} but it is Node ${process.versions.node}, not ${want}`, 1);
  let bin;
  try {
    bin = ensureNodeBinary(root, want, (line) => console.error(`bootstrap: Node ${process.versions.node} is not the project's ${want}: ${line}`));
  } catch (e) {
    fail(e.message, 1);
  }
  console.error(`bootstrap: running on Node ${want} (.runtime/, from ${nodeBinaryPath(root, want).pkg}); the Node that started this is ${process.version}`);
  process.env.PATH = `${dirname(bin)}:${process.env.PATH ?? ''}`;
  process.env.LB_BOOTSTRAP_NODE = bin;
  runForwarding(bin, [fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
  return 'replaced';
}

function ensureSystemBinaries(names, optional) {
  // The logic lives in devtools/src/infra/binaries.ts; tsx exists by now.
  const ensure = [process.execPath, ...SOURCE_NODE_ARGS, join(root, 'scripts', 'ensure-binaries.ts')];
  if (names && names.length > 0) runOrExit(ensure[0], [...ensure.slice(1), ...names], 'system binaries');
  if (optional && optional.length > 0) {
    const res = spawnSync(ensure[0], [...ensure.slice(1), ...optional], { cwd: root, stdio: 'inherit' });
    if (res.status !== 0) console.error(`bootstrap: going on without ${optional.join(', ')}`);
  }
}

/** Spawns the command and mirrors its fate: forwards signals, exits with its status. */
function runForwarding(cmd, cmdArgs, translate = {}) {
  const child = spawn(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let received;
  const handlers = forwarded.map((sig) => {
    const handler = () => {
      received ??= sig;
      try {
        child.kill(translate[sig] ?? sig);
      } catch {
        // The child already exited; its exit event finishes us.
      }
    };
    process.on(sig, handler);
    return [sig, handler];
  });
  child.once('error', (e) => fail(`cannot run ${cmd}: ${e.message}`, 1));
  child.once('exit', (code, signal) => {
    for (const [sig, handler] of handlers) process.removeListener(sig, handler);
    if (signal) {
      // Die of the same stop signal so our parent (npm, a shell, CI) sees
      // what happened; for anything else use the shell's 128+n convention.
      if (forwarded.includes(signal)) process.kill(process.pid, signal);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    // An interrupted run is never a success, even if the child (mocha's
    // launcher, for one) swallows the signal and exits 0.
    if (received && code === 0) {
      process.kill(process.pid, received);
      process.exit(128 + (constants.signals[received] ?? 0));
    }
    process.exit(code ?? 1);
  });
}

if (!command || command === '-h' || command === '--help') fail(usage(), command ? 0 : 2);
if (!/^[a-z0-9][a-z0-9-]*$/.test(command) || command === 'ensure-binaries') fail(`unknown command "${command}"\n${usage()}`);

// Check the command before installing anything on its behalf.
const script = join(root, 'scripts', `${command}.ts`);
if (command !== 'test' && !existsSync(script)) fail(`scripts/${command}.ts does not exist (yet)\n${usage()}`);

/** Steps 1-4, on the project's Node. */
async function run() {
  ensureDependencies();
  ensureSystemBinaries(BINARIES[command], OPTIONAL_BINARIES[command]);
  if (NEEDS_BUILD.has(command)) {
    try {
      await ensureBuild({ root, log: (line) => console.error(`bootstrap: ${line}`) });
    } catch (e) {
      fail(e.message, 1);
    }
  }
  if (command === 'test') {
    // mocha's own launcher (it re-execs Node with the flags of .mocharc's node-option)
    // forwards SIGINT to its worker but dies on SIGTERM without forwarding it,
    // which would orphan the test servers, so every stop request becomes SIGINT.
    runForwarding(process.execPath, [join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...args], {
      SIGTERM: 'SIGINT',
      SIGHUP: 'SIGINT',
    });
  } else {
    runForwarding(process.execPath, [...SOURCE_NODE_ARGS, script, ...args]);
  }
}

// Otherwise the command goes on in a child on the project's Node, and runForwarding exits with it.
if (ensureRuntime() !== 'replaced') await run();
