/**
 * `npm run nginx:render [-- --check]`: renders nginx/nginx.conf.template into
 * the committed nginx/nginx.conf (local) and nginx/nginx.docker.conf (docker).
 * With --check nothing is written; exits 1 if a committed file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { COMMITTED_NGINX_CONFS, renderNginxConf } from './stack/nginx.js';
import { REPO_ROOT } from './stack/paths.js';

const check = process.argv.includes('--check');
let stale = 0;
for (const { file, options } of COMMITTED_NGINX_CONFS) {
  const rendered = renderNginxConf(options);
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
    console.error(`${name}: differs from the template (run npm run nginx:render)`);
  } else {
    writeFileSync(file, rendered);
    console.log(`${name}: written`);
  }
}
if (stale > 0) process.exitCode = 1;
