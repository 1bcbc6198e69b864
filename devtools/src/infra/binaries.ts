/**
 * Finding (and, on Debian as root, installing) the system servers the local
 * topology and the tests need. Debian installs the Postgres server binaries
 * outside PATH (`/usr/lib/postgresql/<major>/bin`) and nginx in `/usr/sbin`,
 * which is not on a normal user's PATH, so both get an explicit fallback.
 * One entry is not an executable: `nchan`, nginx's push module, is the
 * module file nginx loads (`load_module`), found in nginx's modules path.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The system executables this project knows how to find and install. */
export type BinaryName =
  | 'redis-server'
  | 'redis-sentinel'
  | 'postgres'
  | 'initdb'
  | 'pg_ctl'
  | 'psql'
  | 'nginx'
  | 'nchan'
  | 'wrk'
  | 'prometheus'
  | 'promtool'
  | 'prometheus-redis-exporter'
  | 'prometheus-postgres-exporter'
  | 'prometheus-nginx-exporter'
  | 'chromium';

/** Debian package that provides each binary. */
export const DEBIAN_PACKAGES: Readonly<Record<BinaryName, string>> = Object.freeze({
  'redis-server': 'redis-server',
  // Debian's redis-sentinel: a link to the same binary, which runs as Sentinel under that name.
  'redis-sentinel': 'redis-sentinel',
  postgres: 'postgresql',
  initdb: 'postgresql',
  pg_ctl: 'postgresql',
  psql: 'postgresql',
  nginx: 'nginx',
  // Built by Debian for its nginx (Depends: nginx-abi-1.22.1-7): the live streams' push module.
  nchan: 'libnginx-mod-nchan',
  wrk: 'wrk',
  // promtool ships in the prometheus package.
  prometheus: 'prometheus',
  promtool: 'prometheus',
  'prometheus-redis-exporter': 'prometheus-redis-exporter',
  'prometheus-postgres-exporter': 'prometheus-postgres-exporter',
  'prometheus-nginx-exporter': 'prometheus-nginx-exporter',
  // The headless browser of the page's end-to-end test (test/web.e2e.test.ts,
  // driven by playwright-core, which then downloads no browser of its own).
  chromium: 'chromium',
});

/** What the stack's metrics need (`npm start` without `--no-metrics`): Prometheus and the exporters. */
export const METRICS_BINARIES: readonly BinaryName[] = Object.freeze([
  'prometheus',
  'promtool',
  'prometheus-redis-exporter',
  'prometheus-postgres-exporter',
  'prometheus-nginx-exporter',
] as const);

const PG_TOOLS: ReadonlySet<BinaryName> = new Set<BinaryName>(['postgres', 'initdb', 'pg_ctl', 'psql']);
const PG_LIB_DIR = '/usr/lib/postgresql';
/** nginx's dynamic modules: Debian's --modules-path, then a source build's default. */
const NGINX_MODULE_DIRS = ['/usr/lib/nginx/modules', '/usr/local/nginx/modules'];
const NCHAN_MODULE_FILE = 'ngx_nchan_module.so';

/** Type guard for user input such as command-line arguments. */
export function isBinaryName(name: string): name is BinaryName {
  return Object.prototype.hasOwnProperty.call(DEBIAN_PACKAGES, name);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * `/usr/lib/postgresql/<major>/bin` directories, highest major first, so a
 * machine with several versions uses the newest one consistently.
 */
function postgresBinDirs(): string[] {
  let versions: string[];
  try {
    versions = readdirSync(PG_LIB_DIR).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    return [];
  }
  return versions.sort((a, b) => Number(b) - Number(a)).map((v) => join(PG_LIB_DIR, v, 'bin'));
}

/**
 * Absolute path of `name`, or undefined if it is not installed. Looks in PATH
 * first, then in the Debian locations: the newest
 * `/usr/lib/postgresql/<major>/bin` for Postgres tools, `/usr/sbin` for nginx;
 * for `nchan`, the module file in nginx's modules directory.
 */
export function findBinary(name: BinaryName): string | undefined {
  if (name === 'nchan') return NGINX_MODULE_DIRS.map((d) => join(d, NCHAN_MODULE_FILE)).find(isFile);
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/'));
  if (PG_TOOLS.has(name)) dirs.push(...postgresBinDirs());
  if (name === 'nginx') dirs.push('/usr/sbin', '/usr/local/sbin');
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Options for {@link ensureBinaries}. */
export interface EnsureBinariesOptions {
  /** Install missing binaries with apt-get when possible (root + apt-get present). */
  readonly install: boolean;
}

// apt-get update is slow and only needed once per process.
let aptUpdated = false;

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // Output is inherited so a slow install is visibly progressing.
    const child = spawn(cmd, args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

/**
 * Resolves every binary in `names` to an absolute path. Missing ones are
 * installed with `apt-get update` (once per process) and
 * `apt-get install -y <packages>` when `opts.install` is set, we are root and
 * apt-get exists; otherwise this throws an Error whose message contains the
 * exact command that would install them.
 *
 * @returns a map from each requested name to its absolute path.
 */
export async function ensureBinaries<N extends BinaryName>(
  names: readonly N[],
  opts: EnsureBinariesOptions,
): Promise<Record<N, string>> {
  for (const n of names) {
    if (!isBinaryName(n)) throw new Error(`unknown binary "${String(n)}"; known: ${Object.keys(DEBIAN_PACKAGES).join(', ')}`);
  }
  const missing = names.filter((n) => findBinary(n) === undefined);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((n) => DEBIAN_PACKAGES[n]))];
    const apt = findOnPath('apt-get');
    if (opts.install && isRoot() && apt) {
      console.error(`[binaries] missing ${missing.join(', ')}: installing ${packages.join(' ')} with apt-get`);
      if (!aptUpdated) {
        await run(apt, ['update']);
        aptUpdated = true;
      }
      await run(apt, ['install', '-y', ...packages]);
    } else {
      const sudo = isRoot() ? '' : 'sudo ';
      const command = `${sudo}apt-get update && ${sudo}apt-get install -y ${packages.join(' ')}`;
      const why = !apt
        ? ' (apt-get was not found: install the equivalent packages with your package manager)'
        : opts.install && !isRoot()
          ? ' (not root, so not installing automatically)'
          : '';
      throw new Error(`missing system binaries: ${missing.join(', ')}${why}. Install them with:\n  ${command}`);
    }
  }
  const out = {} as Record<N, string>;
  for (const n of names) {
    const path = findBinary(n);
    if (!path) {
      throw new Error(`${n} is still missing after installing ${DEBIAN_PACKAGES[n]}; check the apt-get output above`);
    }
    out[n] = path;
  }
  return out;
}

function findOnPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir.startsWith('/')) continue;
    const candidate = join(dir, cmd);
    if (isExecutableFile(candidate)) return candidate;
  }
  // PATH may be minimal (e.g. under some CI runners); apt-get lives here on Debian.
  return isExecutableFile('/usr/bin/apt-get') ? '/usr/bin/apt-get' : undefined;
}
