/**
 * How development runs this repository's TypeScript without building it.
 */
import { execFileSync } from 'node:child_process';

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

const majors = new Map<string, number>();

/**
 * {@link DIST_NODE_ARGS} for a Node.js binary: none for a Node older than
 * 23, which strips no types and would refuse the flag (the benchmark's
 * runtime A/B starts the services on Node 20 too).
 */
export function distNodeArgs(node: string): readonly string[] {
  let major = majors.get(node);
  if (major === undefined) {
    major = node === process.execPath ? Number(process.versions.node.split('.')[0]) : Number(/^v(\d+)/.exec(execFileSync(node, ['--version'], { encoding: 'utf8' }))?.[1]);
    majors.set(node, major);
  }
  return major >= 23 ? DIST_NODE_ARGS : [];
}
