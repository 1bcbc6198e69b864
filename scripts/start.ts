/**
 * `npm start [-- options]`: the whole load-balanced topology on this machine
 * (see scripts/stack/stack.ts; `npm start -- --help` lists the options).
 *
 * This process only checks the command line and launches the supervisor
 * (scripts/stack/supervise.ts) in a process group of its own, then relays
 * stop requests to it: Ctrl-C in a terminal signals the whole foreground
 * group, and Redis and Postgres must not get that signal before the services
 * using them have stopped. The supervisor records its PID in
 * .data/stack.json for `npm stop`.
 */
import 'dotenv/config';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, SOURCE_NODE_ARGS } from '@lb/devtools/infra';
import { parseCli, resolveStackOptions, USAGE } from './stack/options.js';
import { REPO_ROOT } from './stack/paths.js';
import { assertNotRunning } from './stack/state.js';

const argv = process.argv.slice(2);
let cli: ReturnType<typeof parseCli>;
try {
  cli = parseCli(argv);
} catch (e) {
  process.stderr.write(`npm start: ${(e as Error).message}\n\n${USAGE}\n`);
  process.exit(2);
}
if (cli.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

try {
  const resolved = resolveStackOptions(cli.stack);
  assertNotRunning(resolved.dataDir);
  // bootstrap.mjs installs these; a direct `node --conditions=development --import tsx scripts/start.ts` may not have them.
  await ensureBinaries(['redis-server', ...(resolved.redisReplicas ? (['redis-sentinel'] as const) : []), 'postgres', 'initdb', 'nginx'], { install: false });
} catch (e) {
  process.stderr.write(`npm start: ${(e as Error).message}\n`);
  process.exit(1);
}

const supervisor = spawn(process.execPath, [...SOURCE_NODE_ARGS, join(REPO_ROOT, 'scripts', 'stack', 'supervise.ts'), ...argv], {
  cwd: process.cwd(),
  stdio: ['ignore', 'inherit', 'inherit'],
  // Its own session and process group: terminal signals stop at us.
  detached: true,
});
supervisor.once('error', (e) => {
  process.stderr.write(`npm start: cannot run the supervisor: ${e.message}\n`);
  process.exit(1);
});

// One Ctrl-C arrives several times (terminal → npm → bootstrap → us, and the
// terminal → us directly): forward the first, treat another one only when it
// comes at least 2 s later, as "kill it now".
let firstSignalAt = 0;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    const now = Date.now();
    if (firstSignalAt === 0) {
      firstSignalAt = now;
      supervisor.kill('SIGTERM');
    } else if (now - firstSignalAt >= 2000) {
      supervisor.kill('SIGINT');
    }
  });
}

supervisor.once('exit', (code, signal) => {
  if (signal) process.exit(128 + (constants.signals[signal] ?? 0));
  process.exit(code ?? 1);
});
