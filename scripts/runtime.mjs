/**
 * Node.js binaries of exact versions, from the npm registry: the package
 * `node-<platform>-<arch>` (the official binary repackaged, no install
 * scripts) installed once into `.runtime/node-<version>/`. The bootstrap
 * brings the project's Node (`.node-version`) this way; the benchmark's
 * runtime A/B brings the Node it compares against.
 *
 * Plain Node with no dependencies: it runs before node_modules exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The exact version of `.node-version`. */
export function projectNodeVersion(root) {
  return readFileSync(join(root, '.node-version'), 'utf8').trim();
}

/** Where {@link ensureNodeBinary} puts a version's binary. */
export function nodeBinaryPath(root, version) {
  const pkg = `node-${process.platform}-${process.arch}`;
  return { pkg, bin: join(root, '.runtime', `node-${version}`, 'node_modules', pkg, 'bin', 'node') };
}

/**
 * The path of Node `version`'s binary, installed first if it is not there
 * (`log` says so). Throws when npm fails or installs no binary.
 */
export function ensureNodeBinary(root, version, log = () => {}) {
  const { pkg, bin } = nodeBinaryPath(root, version);
  if (existsSync(bin)) return bin;
  log(`installing ${pkg}@${version} from the npm registry into .runtime/`);
  // Under `npm run`, npm_execpath is the npm that invoked us: reuse it rather than whatever PATH finds first.
  const npmCli = process.env.npm_execpath;
  const npm = npmCli && /npm-cli\.[cm]?js$/.test(npmCli) ? [process.execPath, npmCli] : ['npm'];
  const dir = join(root, '.runtime', `node-${version}`);
  const res = spawnSync(npm[0], [...npm.slice(1), 'install', '--prefix', dir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${version}`], { cwd: root, stdio: 'inherit' });
  if (res.error) throw new Error(`npm install ${pkg}@${version}: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`npm install ${pkg}@${version} failed (${res.signal ?? `exit code ${res.status}`})`);
  if (!existsSync(bin)) throw new Error(`${pkg}@${version} installed no ${bin}`);
  return bin;
}
