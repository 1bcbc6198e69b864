/**
 * The build a stack of compiled services needs (`code: 'dist'`), made when
 * it is missing or stale, so what the stack runs is never older than the
 * sources.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './paths.js';

const run = promisify(execFile);

/**
 * Runs `node scripts/build.mjs --if-stale` (with `webOnly`: `--web`, the live
 * page alone) (tsc --build and the assets, only
 * when a workspace's dist/ is missing or older than its sources) and passes
 * what it printed to `log`, line by line. Rejects with tsc's diagnostics when
 * the build fails.
 */
export async function ensureBuilt(log: (line: string) => void, opts: { webOnly?: boolean } = {}): Promise<void> {
  let output: string;
  try {
    const args = [join(REPO_ROOT, 'scripts', 'build.mjs'), '--if-stale', ...(opts.webOnly ? ['--web'] : [])];
    const { stdout, stderr } = await run(process.execPath, args, {
      cwd: REPO_ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    output = `${stdout}${stderr}`;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    const detail = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() || err.message;
    throw new Error(`the services could not be built (npm run build):\n${detail}`, { cause: e });
  }
  for (const line of output.split('\n')) if (line.trim()) log(line);
}
