/**
 * How development runs this repository's TypeScript without building it.
 */

/**
 * Node.js flags that run a TypeScript entry point from source: tsx compiles
 * it on the fly, and the `development` export condition makes every `@lb/*`
 * import resolve to that workspace's `src/` instead of its compiled `dist/`
 * (which may be missing or older than the sources). Without the condition a
 * source entry point would silently run the compiled @lb/common.
 *
 * `node scripts/bootstrap.mjs` and `.mocharc.cjs` spell out the same flags
 * (plain JavaScript, they cannot import this).
 */
export const SOURCE_NODE_ARGS: readonly string[] = Object.freeze(['--conditions=development', '--import', 'tsx']);
