/**
 * Mocha configuration (CommonJS because it has to compute one thing).
 *
 * Mocha concatenates the config file's `spec` with spec paths given on the
 * command line, so with a static `spec` list `npx mocha one.test.ts` would run
 * every test file. The default list is therefore only added when the command
 * line names no spec of its own (a positional argument or --spec).
 *
 * TypeScript runs through tsx (`--import=tsx` on the child Node process mocha
 * forks for `node-option`), with the `development` export condition so that
 * `@lb/*` imports resolve to the workspaces' sources, never to a compiled
 * dist/ that may be missing or stale (the same flags as SOURCE_NODE_ARGS in
 * devtools/src/infra/node-args.ts). `require` loads the ESM root hook plugin
 * that stops the shared test servers after the run.
 */
'use strict';

const DEFAULT_SPEC = [
  'common/test/**/*.test.ts',
  'leaderboard-service/test/**/*.test.ts',
  'worker-service/test/**/*.test.ts',
  'api-gateway/test/**/*.test.ts',
  'test/**/*.test.ts',
];

/** True if mocha's own command line (process.argv) already names test files. */
function commandLineNamesSpec(argv) {
  let valueOptions;
  try {
    // Mocha's option table, to know which flags consume the next argument.
    const { types, aliases } = require('mocha/lib/cli/run-option-metadata.cjs');
    const names = [...types.array, ...types.string, ...types.number];
    valueOptions = new Set(names.flatMap((n) => [n, ...(aliases[n] ?? [])]));
  } catch {
    return false; // mocha internals moved: fall back to the default list
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return i + 1 < argv.length;
    if (arg.startsWith('-')) {
      const name = arg.replace(/^--?/, '').split('=')[0];
      if (name === 'spec') return true;
      if (!arg.includes('=') && valueOptions.has(name)) i++; // skip the option's value
      continue;
    }
    if (arg !== 'inspect') return true; // mocha treats a bare "inspect" as the debugger switch
  }
  return false;
}

const config = {
  'node-option': ['conditions=development', 'import=tsx'],
  require: ['devtools/src/testing/root-hooks.ts'],
  timeout: 60000,
  exit: true,
};
if (!commandLineNamesSpec(process.argv.slice(2))) config.spec = DEFAULT_SPEC;

module.exports = config;
