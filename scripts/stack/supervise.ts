/**
 * The supervisor process of `npm start`: starts the stack, prints where
 * everything is, streams the logs, restarts a component that dies (unless
 * `--no-restart`), and on SIGTERM/SIGINT (from scripts/start.ts on Ctrl-C,
 * or `npm stop`) stops it in order and exits 0. A second signal kills
 * whatever is left at once.
 *
 * scripts/start.ts runs this in its own process group, so a Ctrl-C in the
 * terminal reaches only start.ts, never Redis or Postgres directly: they are
 * stopped by us, after the services that use them.
 */
import 'dotenv/config';
import { relative } from 'node:path';
import { killTrackedChildrenSync } from '@lb/devtools/infra';
import { killAllSync } from './children.js';
import { echoLine, paint } from './logs.js';
import { parseCli, resolveStackOptions, USAGE } from './options.js';
import { formatComponentTable, startStack, type Stack } from './stack.js';

// The terminal may go away under us (closed window); that is no reason to die mid-stop.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

const say = (line: string): void => {
  for (const l of line.split('\n')) echoLine('stack', 'bold', 21, l);
};

let cli: ReturnType<typeof parseCli>;
try {
  cli = parseCli(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
  process.exit(2);
}
if (cli.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const controller = new AbortController();
let stack: Stack | undefined;
let signals = 0;

function onSignal(sig: NodeJS.Signals): void {
  signals++;
  if (signals > 1) {
    say(paint('red', `${sig} again: killing everything now`));
    killAllSync();
    killTrackedChildrenSync();
    process.exit(130);
  }
  say(`${sig}: stopping the stack (send it again to kill everything at once)`);
  if (stack) void shutdown(0);
  else controller.abort(); // startStack stops what it started and rejects
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => onSignal(sig));

async function shutdown(code: number): Promise<never> {
  try {
    await stack?.stop();
    say('stack stopped');
  } catch (e) {
    say(paint('red', `stop failed: ${(e as Error).message}`));
    code = 1;
  }
  process.exit(code);
}

try {
  stack = await startStack({ ...cli.stack, signal: controller.signal, log: say });
} catch (e) {
  if (controller.signal.aborted) {
    say('start aborted; everything that had started is stopped');
    process.exit(130);
  }
  say(paint('red', `✖ ${(e as Error).message}`));
  process.exit(1);
}

// A signal that arrived after the start's last abort check.
if (signals > 0) await shutdown(0);

const { dataDir, restart } = resolveStackOptions(cli.stack);
const rel = (p: string) => relative(process.cwd(), p) || '.';
// npm runs scripts from the repository root: relative paths only when they stay below it.
const dataDirArg = dataDir === resolveStackOptions({}).dataDir ? '' : ` -- --data-dir ${rel(dataDir).startsWith('..') ? dataDir : rel(dataDir)}`;
say(`\n${formatComponentTable(stack.components)}\n`);
say(`nginx:    ${stack.url}   (gateways ${stack.gatewayUrls.join(' ')})`);
say(`logs:     ${rel(`${dataDir}/logs`)}/<component>.log${cli.quiet ? ' (--quiet: not echoed here)' : ''}`);
say(
  restart
    ? `restarts: a component that dies is restarted (after ${restart.backoffMs / 1000} s, doubling up to ${restart.maxBackoffMs / 1000} s); ` +
        `after ${restart.maxRestarts} restarts within ${restart.windowMs / 1000} s it is left down`
    : 'restarts: off (--no-restart / STACK_RESTART=off): a component that dies is only reported',
);
say(`admin:    API key in ${rel(stack.adminKeyFile)} (send it as X-Api-Key); more with \`npm run admin -- key create --name NAME\``);
say(`status:   \`npm run status${dataDirArg}\``);
say(`stop:     Ctrl-C here, or \`npm stop${dataDirArg}\` from another terminal`);
// Child processes keep the event loop alive, but a stack whose every child
// died should still wait for its stop signal.
setInterval(() => undefined, 1 << 30);
