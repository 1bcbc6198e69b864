#!/usr/bin/env node
/**
 * The production build (`npm run build`):
 *
 *   node scripts/build.mjs              tsc --build tsconfig.build.json, then copy assets
 *   node scripts/build.mjs --if-stale   the same, only when a workspace's build is missing or stale
 *
 * tsc compiles each production workspace (the references of
 * tsconfig.build.json) from `<ws>/src` into `<ws>/dist`. Files under src that
 * are not TypeScript (the Lua scripts of leaderboard-service/src/redis/lua,
 * which scripts.ts reads relative to its own module at run time) are copied
 * to the same place under dist. Last, each workspace gets `dist/.built`, whose
 * mtime says when its build last succeeded as a whole.
 *
 * `npm start` and anything else that runs the compiled services
 * (startStack with `code: 'dist'`) call {@link ensureBuild} first, so they
 * never run code older than the sources.
 *
 * Plain Node with no dependencies, like bootstrap.mjs, which imports it.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
}

/**
 * Builds when {@link staleWorkspaces} names any workspace (and then all of
 * them: tsc --build skips what is up to date).
 *
 * @param {{ root?: string, log?: (line: string) => void }} [options]
 * @returns {Promise<boolean>} whether it built
 */
export async function ensureBuild({ root = ROOT, log = (line) => console.error(line) } = {}) {
  const stale = staleWorkspaces(root);
  if (stale.length === 0) return false;
  log(`build: ${stale.join(', ')} not built or older than the sources: npm run build`);
  await build(root);
  return true;
}

// Run as a command, not when imported.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--if-stale');
  if (unknown.length > 0) {
    console.error(`build: unknown argument ${unknown[0]}\nusage: node scripts/build.mjs [--if-stale]`);
    process.exit(2);
  }
  try {
    if (args.includes('--if-stale')) await ensureBuild();
    else await build();
  } catch (e) {
    console.error(`build: ${e.message}`);
    process.exit(1);
  }
}
