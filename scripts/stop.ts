/**
 * `npm stop [-- --data-dir DIR]`: stops the stack `npm start` runs from
 * .data/ (or DIR / $STACK_DATA_DIR).
 *
 * Normally this sends SIGTERM to the supervisor recorded in stack.json and
 * waits while it stops everything in order. If the supervisor is gone (it
 * crashed or was SIGKILLed) or does not finish in time, the recorded
 * processes are stopped directly, in the same order. A PID is only signalled
 * while its start time matches the recorded one, so a recycled PID is never
 * hit.
 */
import 'dotenv/config';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { STOP_ORDER, type ComponentKind } from './stack/components.js';
import { paint } from './stack/logs.js';
import { DEFAULT_DATA_DIR } from './stack/paths.js';
import { childPids, pidAlive, signal, waitGone } from './stack/proc.js';
import { liveProcesses, readStackFile, removeStackFile, type RecordedComponent } from './stack/state.js';

const SUPERVISOR_TIMEOUT_MS = 180_000;
/** Graceful signal per kind: Postgres' "fast" shutdown is SIGINT, nginx's graceful one SIGQUIT. */
const GRACEFUL: Readonly<Record<ComponentKind, NodeJS.Signals>> = {
  nginx: 'SIGQUIT',
  gateway: 'SIGTERM',
  service: 'SIGTERM',
  worker: 'SIGTERM',
  postgres: 'SIGINT',
  redis: 'SIGTERM',
  sentinel: 'SIGTERM',
  exporter: 'SIGTERM',
  prometheus: 'SIGTERM',
};
const GRACE_MS: Readonly<Record<ComponentKind, number>> = {
  nginx: 10_000,
  gateway: 15_000,
  service: 15_000,
  worker: 35_000,
  postgres: 30_000,
  redis: 10_000,
  sentinel: 10_000,
  exporter: 10_000,
  prometheus: 30_000,
};

const { values } = parseArgs({ options: { 'data-dir': { type: 'string' } }, strict: true });
const dataDir = resolve(values['data-dir'] ?? process.env.STACK_DATA_DIR ?? DEFAULT_DATA_DIR);
const say = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const state = readStackFile(dataDir);
  if (!state) {
    say(`no stack is running from ${dataDir} (no stack.json)`);
    return 0;
  }
  const sup = { pid: state.supervisorPid, ...(state.supervisorStartTime !== undefined && { startTime: state.supervisorStartTime }) };
  if (pidAlive(sup.pid, sup.startTime)) {
    say(`stopping the stack: SIGTERM to supervisor pid ${sup.pid}`);
    signal(sup.pid, 'SIGTERM');
    const deadline = Date.now() + SUPERVISOR_TIMEOUT_MS;
    let lastReport = '';
    while (pidAlive(sup.pid, sup.startTime) && Date.now() < deadline) {
      const left = liveProcesses(readStackFile(dataDir) ?? state).map((c) => c.name).join(', ');
      if (left && left !== lastReport) say(`  still running: ${left}`);
      lastReport = left;
      await waitGone([sup], 1000);
    }
    if (pidAlive(sup.pid, sup.startTime)) say(paint('red', `supervisor pid ${sup.pid} did not finish within ${SUPERVISOR_TIMEOUT_MS / 1000} s`));
  } else {
    say(`the supervisor (pid ${sup.pid}) is not running; stopping what it left behind`);
  }
  // Whatever is still alive now: its supervisor is gone or stuck.
  const leftovers = liveProcesses(state);
  for (const kind of STOP_ORDER) {
    await Promise.all(leftovers.filter((c) => c.kind === kind).map(stopDirectly));
  }
  const survivors = liveProcesses(state);
  if (survivors.length > 0) {
    say(paint('red', `still running: ${survivors.map((c) => `${c.name} pid ${c.pid}`).join(', ')}`));
    return 1;
  }
  if (!pidAlive(sup.pid, sup.startTime)) removeStackFile(dataDir);
  say('stack stopped');
  return 0;
}

async function stopDirectly(c: RecordedComponent): Promise<void> {
  const kind = c.kind as ComponentKind;
  const sig = GRACEFUL[kind] ?? 'SIGTERM';
  // Taken now: once the parent is gone its children are no longer ours to find.
  const children = childPids(c.pid);
  say(`  ${sig} to ${c.name} (pid ${c.pid})`);
  // A component frozen by a fault test (SIGSTOP) cannot act on a signal until continued.
  signal(c.pid, 'SIGCONT');
  signal(c.pid, sig);
  if (await waitGone([c], GRACE_MS[kind] ?? 15_000)) return;
  say(paint('red', `  ${c.name} (pid ${c.pid}) ignored ${sig}: SIGKILL`));
  signal(c.pid, 'SIGKILL');
  // nginx workers and Postgres backends would outlive a SIGKILLed parent.
  for (const child of children) signal(child, 'SIGKILL');
  await waitGone([c], 5000);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`npm stop: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
