/**
 * `npm run status [-- --data-dir DIR] [--json]`: how the stack `npm start`
 * runs from .data/ (or DIR / $STACK_DATA_DIR) is doing, from the stack.json
 * its supervisor keeps up to date: every component with its kind, port, PID,
 * whether that PID is alive right now, its status as the supervisor last saw
 * it (`healthy`, `restarting`, `failed`…) and how many times it was
 * restarted, each Redis node's current role (asked with INFO replication:
 * `primary`, or `replica-of:<port>`; `?` when it does not answer), and
 * nchan's counts of the live streams nginx holds (its /nchan_status).
 * `--json` prints the same as one JSON document.
 *
 * Exit status: 0 when the supervisor runs and every component is alive and
 * healthy; 1 when one is not (down, restarting, left down, unhealthy) or
 * stack.json cannot be read; 3 when no stack runs from DIR (no stack.json, or
 * its supervisor is gone); 2 for a bad command line.
 */
import 'dotenv/config';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { redisRole } from '@lb/devtools/infra';
import { paint } from './stack/logs.js';
import { DEFAULT_DATA_DIR } from './stack/paths.js';
import { pidAlive } from './stack/proc.js';
import { formatTable } from './stack/stack.js';
import { readStackFile, stackFilePath, type ComponentRecord, type StackFile } from './stack/state.js';

const USAGE = `usage: npm run status -- [--data-dir DIR] [--json]

Shows every component of the stack running from DIR (env STACK_DATA_DIR,
default .data): kind, port, pid, alive, status, restarts, and each Redis
node's role now (primary, replica-of:<port of its primary>; ? = no answer).
Exits 0 when all are healthy, 1 when one is not, 3 when no stack is running.`;

/** One row of the report. */
interface ComponentStatusRow {
  readonly name: string;
  readonly kind: string;
  readonly port: number | null;
  /** A Node service's `GET /metrics` port; null with metrics off and for the others. */
  readonly metricsPort: number | null;
  readonly pid: number | null;
  /** The recorded PID is running now (same start time: not a recycled PID). */
  readonly alive: boolean;
  /** As the supervisor last recorded it; null in a stack.json from before statuses were recorded. */
  readonly status: string | null;
  readonly restarts: number | null;
  /**
   * A Redis node's role now (INFO replication); null for the other kinds,
   * and `{ role: 'unknown' }` for a node that did not answer (down, frozen).
   */
  readonly role: RoleReport | null;
  /** Alive and healthy (or alive, for a file without statuses). */
  readonly up: boolean;
}

interface RoleReport {
  readonly role: 'primary' | 'replica' | 'unknown';
  /** A replica's primary. */
  readonly masterPort?: number;
  /** A replica: its link to the primary is up. */
  readonly linkUp?: boolean;
}

/** What `--json` prints. */
interface StatusReport {
  readonly dataDir: string;
  /** The supervisor runs (stack.json exists and its PID is alive). */
  readonly running: boolean;
  readonly supervisor: { readonly pid: number; readonly alive: boolean } | null;
  readonly url: string | null;
  /** Prometheus's UI and API; null when the stack runs without metrics. */
  readonly prometheusUrl: string | null;
  /** nchan's /nchan_status (live streams held by nginx), parsed; null when it could not be read. */
  readonly live: Readonly<Record<string, number>> | null;
  readonly startedAt: string | null;
  readonly components: readonly ComponentStatusRow[];
  /** Names of the components that are not up. */
  readonly down: readonly string[];
}

const EXIT_OK = 0;
const EXIT_DOWN = 1;
const EXIT_USAGE = 2;
const EXIT_NOT_RUNNING = 3;

async function roleOf(c: ComponentRecord, alive: boolean): Promise<RoleReport | null> {
  if (c.kind !== 'redis') return null;
  if (!alive || c.port === undefined) return { role: 'unknown' };
  try {
    const r = await redisRole(c.port, 500);
    return r.role === 'master' ? { role: 'primary' } : { role: 'replica', ...(r.master && { masterPort: r.master.port }), linkUp: r.linkUp ?? false };
  } catch {
    return { role: 'unknown' };
  }
}

function roleCell(r: RoleReport | null): string {
  if (r === null) return '-';
  if (r.role === 'replica') return `replica-of:${r.masterPort ?? '?'}${r.linkUp ? '' : ',link-down'}`;
  return r.role === 'primary' ? 'primary' : '?';
}

async function row(c: ComponentRecord): Promise<ComponentStatusRow> {
  const alive = c.pid !== undefined && pidAlive(c.pid, c.startTime);
  return {
    name: c.name,
    kind: c.kind,
    port: c.port ?? null,
    metricsPort: c.metricsPort ?? null,
    pid: c.pid ?? null,
    alive,
    status: c.status ?? null,
    restarts: c.restarts ?? null,
    role: await roleOf(c, alive),
    up: alive && (c.status === undefined || c.status === 'healthy'),
  };
}

async function report(dataDir: string, state: StackFile | undefined): Promise<StatusReport> {
  if (!state) return { dataDir, running: false, supervisor: null, url: null, prometheusUrl: null, live: null, startedAt: null, components: [], down: [] };
  const supervisorAlive = pidAlive(state.supervisorPid, state.supervisorStartTime);
  const components = await Promise.all(state.components.map(row));
  return {
    dataDir,
    running: supervisorAlive,
    supervisor: { pid: state.supervisorPid, alive: supervisorAlive },
    url: state.url ?? null,
    prometheusUrl: state.prometheusUrl ?? null,
    live: null,
    startedAt: state.startedAt,
    components,
    down: components.filter((c) => !c.up).map((c) => c.name),
  };
}

function exitCode(r: StatusReport): number {
  if (!r.running) return EXIT_NOT_RUNNING;
  return r.down.length > 0 ? EXIT_DOWN : EXIT_OK;
}

function printText(r: StatusReport): void {
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  if (!r.supervisor) {
    say(`no stack is running from ${r.dataDir} (no ${stackFilePath(r.dataDir)})`);
    return;
  }
  const dash = (v: number | string | null): string => (v === null ? '-' : String(v));
  say(
    formatTable(
      ['COMPONENT', 'KIND', 'PORT', 'PID', 'ALIVE', 'STATUS', 'RESTARTS', 'ROLE'],
      r.components.map((c) => [c.name, c.kind, dash(c.port), dash(c.pid), c.alive ? 'yes' : 'no', dash(c.status), dash(c.restarts), roleCell(c.role)]),
      (_cells, i) => r.components[i]!.up,
    ),
  );
  say('');
  if (!r.running) {
    say(paint('red', `the supervisor (pid ${r.supervisor.pid}) is not running: the statuses above are its last word. \`npm stop\` stops what is left.`));
    return;
  }
  say(`stack up since ${r.startedAt}${r.url ? `, ${r.url}` : ''} (supervisor pid ${r.supervisor.pid})`);
  if (r.prometheusUrl) say(`Prometheus: ${r.prometheusUrl}`);
  if (r.live) say(`live streams (held by nginx): ${r.live.subscribers ?? 0} subscribers on ${r.live.channels ?? 0} channels, ${r.live.total_published_messages ?? 0} messages published`);
  say(r.down.length === 0 ? paint('green', 'every component is healthy') : paint('red', `not healthy: ${r.down.join(', ')}`));
}

/** nchan's stub status (`subscribers: 12` lines) as numbers by snake_case name; null when it cannot be read. */
async function nchanStatus(liveUrl: string | undefined): Promise<Record<string, number> | null> {
  if (liveUrl === undefined) return null;
  try {
    const res = await fetch(`${liveUrl}/nchan_status`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return null;
    const out: Record<string, number> = {};
    for (const m of (await res.text()).matchAll(/^([a-z ]+): (\d+)/gim)) out[m[1]!.trim().toLowerCase().replace(/ /g, '_')] = Number(m[2]);
    return out;
  } catch {
    return null;
  }
}

async function main(): Promise<number> {
  let values: { 'data-dir'?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`npm run status: ${(e as Error).message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const dataDir = resolve(values['data-dir'] ?? process.env.STACK_DATA_DIR ?? DEFAULT_DATA_DIR);
  const state = readStackFile(dataDir);
  const base = await report(dataDir, state);
  const r = base.running ? { ...base, live: await nchanStatus(state?.liveUrl) } : base;
  if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else printText(r);
  return exitCode(r);
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`npm run status: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
