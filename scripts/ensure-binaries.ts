/**
 * `node --conditions=development --import tsx scripts/ensure-binaries.ts [--no-install] <name>...`
 *
 * Run by scripts/bootstrap.mjs after `npm ci`, so binary discovery and
 * installation live in one place (devtools/src/infra/binaries.ts). Installs
 * missing binaries with apt-get when root; otherwise prints the command to
 * run and exits 1.
 */
import { ensureBinaries, isBinaryName, type BinaryName } from '@lb/devtools/infra';

const args = process.argv.slice(2);
const install = !args.includes('--no-install');
const names = args.filter((a) => a !== '--no-install');
const unknown = names.filter((n) => !isBinaryName(n));
if (unknown.length > 0) {
  console.error(`ensure-binaries: unknown binary ${unknown.join(', ')}`);
  process.exit(2);
}
try {
  await ensureBinaries(names as BinaryName[], { install });
} catch (e) {
  console.error(`\n${(e as Error).message}\n`);
  process.exit(1);
}
