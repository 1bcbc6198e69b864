/**
 * What operations tooling may use of the service's data layer (the
 * rebuild-redis script, the benchmarks), so that scripts/ never reaches into
 * the service's internals by path. The package's other entry points:
 * `/config` (its configuration), `/db` (its Postgres repositories),
 * `/deps` (the whole service, for benchmarks that build one in process)
 * and `/admin-cli` (the admin command, which loads .env as it starts).
 */
export { EventRelays } from './events/relay.js';
export { ShardStores } from './redis/shard-store.js';
export { rebuildShard, type RebuildResult } from './recovery/rebuild.js';
export { upgradeLayout, type UpgradeResult } from './recovery/layout.js';
