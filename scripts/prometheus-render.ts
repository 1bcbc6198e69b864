/**
 * `npm run prometheus:render [-- --check]`: renders docker-compose's
 * Prometheus files, docker/prometheus/prometheus.yml (the scrape
 * configuration generated from the compose topology) and
 * docker/prometheus/alerts.yml (prometheus/alerts.yml.tmpl with the default
 * QUEUE_REJECT_LENGTH). With --check nothing is written; exits 1 if one is stale.
 */
import { syncRenderedFiles } from './stack/committed.js';
import { COMMITTED_PROMETHEUS_FILES } from './stack/prometheus.js';

if (syncRenderedFiles(COMMITTED_PROMETHEUS_FILES, process.argv.includes('--check'), 'npm run prometheus:render') > 0) process.exitCode = 1;
