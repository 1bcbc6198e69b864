/**
 * Files kept in the repository that are renderings of something else
 * (nginx/nginx*.conf from their template, docker/prometheus/* from the
 * topology): write them, or with `check` only report which are stale.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { REPO_ROOT } from './paths.js';

export interface RenderedFile {
  readonly file: string;
  readonly render: () => string;
}

/** Writes each file whose content differs from its rendering (none with `check`); returns how many were stale. */
export function syncRenderedFiles(files: readonly RenderedFile[], check: boolean, command: string): number {
  let stale = 0;
  for (const { file, render } of files) {
    const rendered = render();
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    const name = relative(REPO_ROOT, file);
    if (current === rendered) {
      console.log(`${name}: up to date`);
    } else if (check) {
      stale++;
      console.error(`${name}: differs from its rendering (run ${command})`);
    } else {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, rendered);
      console.log(`${name}: written`);
    }
  }
  return stale;
}
