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

/**
 * Node.js flags of a compiled service: Node 26 would run a `.ts` file by
 * stripping its types, so a compiled service that still reached a source
 * file would work by accident (and differently from the image, which has no
 * sources). Without type stripping such an import fails at once.
 */
export const DIST_NODE_ARGS: readonly string[] = Object.freeze(['--no-strip-types']);
