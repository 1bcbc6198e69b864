/** Fixed locations inside the repository, independent of the caller's cwd. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the monorepo root. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where `npm start` keeps data, logs and state unless told otherwise. */
export const DEFAULT_DATA_DIR = join(REPO_ROOT, '.data');

/** SQL migrations applied to every shard database. */
export const SQL_DIR = join(REPO_ROOT, 'sql');

/** The live page's bundle (web/, built by Vite), which nginx serves at `/`. */
export const WEB_DIST = join(REPO_ROOT, 'web', 'dist');

/** The nginx template rendered by {@link renderNginxConf}. */
export const NGINX_TEMPLATE = join(REPO_ROOT, 'nginx', 'nginx.conf.template');
