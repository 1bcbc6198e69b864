#!/usr/bin/env node
/**
 * The production build (`npm run build`):
 *
 *   node scripts/build.mjs              tsc --build tsconfig.build.json, then copy assets; the web page
 *   node scripts/build.mjs --if-stale   the same, only what is missing or stale
 *   node scripts/build.mjs --web        the web page only (with --if-stale: only when stale)
 *
 * tsc compiles each production workspace (the references of
 * tsconfig.build.json) from `<ws>/src` into `<ws>/dist`. Files under src that
 * are not TypeScript (the Lua scripts of leaderboard-service/src/redis/lua,
 * which scripts.ts reads relative to its own module at run time) are copied
 * to the same place under dist. Last, each workspace gets `dist/.built`, whose
 * mtime says when its build last succeeded as a whole.
 *
 * The live page (`web/`, served by nginx at `/`) is type-checked with
 * `tsc -p web/tsconfig.json` and bundled by Vite into `web/dist` (built in a
 * directory of its own and then swapped in, so an nginx serving the old
 * bundle never sees a half-written one), with the same `.built` stamp.
 *
 * `npm start` and anything else that runs the compiled services
 * (startStack with `code: 'dist'`) call {@link ensureBuild} first, so they
 * never run code older than the sources.
 *
 * Plain Node with no dependencies, like bootstrap.mjs, which imports it.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Written last by a successful build; its mtime is the build's time. */
const STAMP = '.built';

/**
 * The production workspaces, as directory names relative to the repository
 * root: the project references of tsconfig.build.json, the one list of them.
 *
 * @param {string} [root]
 * @returns {string[]}
 */
export function productionWorkspaces(root = ROOT) {
  const config = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8'));
  return config.references.map((r) => dirname(r.path));
}

/**
 * Newest mtime (ms) of `dir` and everything under it. Directories count: a
 * file deleted or renamed changes its directory's mtime and nothing else.
 */
function newestMtime(dir) {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * The production workspaces whose build is missing or older than any of its
 * inputs: the files under `src`, its tsconfig.build.json, or the shared
 * tsconfig.base.json.
 *
 * @param {string} [root]
 * @returns {string[]}
 */
export function staleWorkspaces(root = ROOT) {
  const base = statSync(join(root, 'tsconfig.base.json')).mtimeMs;
  return productionWorkspaces(root).filter((ws) => {
    const stamp = join(root, ws, 'dist', STAMP);
    if (!existsSync(stamp)) return true;
    const inputs = Math.max(base, statSync(join(root, ws, 'tsconfig.build.json')).mtimeMs, newestMtime(join(root, ws, 'src')));
    return statSync(stamp).mtimeMs < inputs;
  });
}

/**
 * Copies every file under `<ws>/src` that tsc does not compile (anything but
 * `.ts`) to the same relative path under `<ws>/dist`.
 *
 * @param {string} [root]
 * @returns {number} how many files were copied
 */
export function copyAssets(root = ROOT) {
  let copied = 0;
  for (const ws of productionWorkspaces(root)) {
    cpSync(join(root, ws, 'src'), join(root, ws, 'dist'), {
      recursive: true,
      filter: (source) => {
        if (statSync(source).isDirectory()) return true;
        if (source.endsWith('.ts')) return false;
        copied++;
        return true;
      },
    });
  }
  return copied;
}

/**
 * tsc --build (incremental: up-to-date projects are skipped), the assets,
 * then the stamps. Rejects with tsc's exit status when compilation fails;
 * its diagnostics go to our stderr.
 *
 * @param {string} [root]
 * @returns {Promise<void>}
 */
export async function build(root = ROOT) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  // stdout too: tsc prints its diagnostics there, and stdout may be what a
  // caller parses (status --json), so both go to stderr.
  const child = spawn(process.execPath, [tsc, '--build', join(root, 'tsconfig.build.json')], {
    cwd: root,
    stdio: ['ignore', process.stderr, process.stderr],
  });
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, signal) => resolve(c ?? signal));
  });
  if (code !== 0) throw new Error(`tsc --build tsconfig.build.json failed (${code})`);
  copyAssets(root);
  const now = new Date().toISOString();
  for (const ws of productionWorkspaces(root)) writeFileSync(join(root, ws, 'dist', STAMP), `${now}\n`);
  await buildWeb(root);
}

/** The live page's workspace, built by Vite (not a tsc project reference: it is no Node program). */
export const WEB = 'web';
/** What the page's bundle is made from, relative to `web/`. */
const WEB_INPUTS = ['src', 'index.html', 'vite.config.ts', 'tsconfig.json', 'package.json'];

/**
 * Whether `web/dist` is missing or older than any of its inputs (or than the
 * shared tsconfig.base.json).
 *
 * @param {string} [root]
 * @returns {boolean}
 */
export function webStale(root = ROOT) {
  const stamp = join(root, WEB, 'dist', STAMP);
  if (!existsSync(stamp)) return true;
  const inputs = Math.max(
    statSync(join(root, 'tsconfig.base.json')).mtimeMs,
    ...WEB_INPUTS.map((f) => join(root, WEB, f)).filter((f) => existsSync(f)).map((f) => (statSync(f).isDirectory() ? newestMtime(f) : statSync(f).mtimeMs)),
  );
  return statSync(stamp).mtimeMs < inputs;
}

/** Runs `node <args>` in `cwd` with its output on our stderr; rejects naming `what` on failure. */
async function runNode(args, cwd, what, env = process.env) {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', process.stderr, process.stderr] });
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, signal) => resolve(c ?? signal));
  });
  if (code !== 0) throw new Error(`${what} failed (${code})`);
}

/**
 * Type-checks the page, bundles it with Vite into a fresh directory, stamps
 * it, and swaps it in for `web/dist`.
 *
 * @param {string} [root]
 * @returns {Promise<void>}
 */
export async function buildWeb(root = ROOT) {
  const web = join(root, WEB);
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await runNode([tsc, '-p', join(web, 'tsconfig.json'), '--noEmit'], root, 'tsc -p web/tsconfig.json');
  const out = `dist.tmp-${process.pid}`;
  rmSync(join(web, out), { recursive: true, force: true });
  try {
    const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');
    await runNode([vite, 'build', '--logLevel', 'warn'], web, 'vite build (web)', { ...process.env, WEB_OUT_DIR: out });
    writeFileSync(join(web, out, STAMP), `${new Date().toISOString()}\n`);
    const old = `dist.old-${process.pid}`;
    if (existsSync(join(web, 'dist'))) renameSync(join(web, 'dist'), join(web, old));
    renameSync(join(web, out), join(web, 'dist'));
    rmSync(join(web, old), { recursive: true, force: true });
  } finally {
    rmSync(join(web, out), { recursive: true, force: true });
  }
}

/**
 * Builds when {@link staleWorkspaces} names any workspace (and then all of
 * them: tsc --build skips what is up to date).
 *
 * @param {{ root?: string, log?: (line: string) => void, webOnly?: boolean }} [options] webOnly: the page alone, not the services
 * @returns {Promise<boolean>} whether it built
 */
export async function ensureBuild({ root = ROOT, log = (line) => console.error(line), webOnly = false } = {}) {
  const stale = webOnly ? [] : staleWorkspaces(root);
  const web = webStale(root);
  if (stale.length === 0 && !web) return false;
  if (stale.length > 0) {
    log(`build: ${stale.join(', ')}${web ? `, ${WEB}` : ''} not built or older than the sources: npm run build`);
    await build(root);
  } else {
    log(`build: ${WEB} (the live page) not built or older than its sources: vite build`);
    await buildWeb(root);
  }
  return true;
}

// Run as a command, not when imported.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--if-stale' && a !== '--web');
  if (unknown.length > 0) {
    console.error(`build: unknown argument ${unknown[0]}\nusage: node scripts/build.mjs [--if-stale] [--web]`);
    process.exit(2);
  }
  const webOnly = args.includes('--web');
  try {
    if (args.includes('--if-stale')) await ensureBuild({ webOnly });
    else if (webOnly) await buildWeb();
    else await build();
  } catch (e) {
    console.error(`build: ${e.message}`);
    process.exit(1);
  }
}
