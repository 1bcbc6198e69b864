/**
 * `npm run migrate`: the migrations command production runs
 * (common/src/migrate-cli.ts, compiled in the image), here from source.
 */
import '@lb/common/migrate-cli';
