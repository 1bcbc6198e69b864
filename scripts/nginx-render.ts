/**
 * `npm run nginx:render [-- --check]`: renders nginx/nginx.conf.template into
 * the committed nginx/nginx.conf (local) and nginx/nginx.docker.conf (docker).
 * With --check nothing is written; exits 1 if a committed file is stale.
 */
import { syncRenderedFiles } from './stack/committed.js';
import { COMMITTED_NGINX_CONFS, renderNginxConf } from './stack/nginx.js';

const files = COMMITTED_NGINX_CONFS.map(({ file, options }) => ({ file, render: () => renderNginxConf(options) }));
if (syncRenderedFiles(files, process.argv.includes('--check'), 'npm run nginx:render') > 0) process.exitCode = 1;
