/**
 * `npm run admin -- tenant … | project … | key create --name NAME [--kind K] … | key list | key revoke ID | …`
 * (the usage is in leaderboard-service/src/admin/cli.ts):
 * the admin command production runs compiled
 * (`node leaderboard-service/dist/admin/cli.js`), here from source.
 */
import { runAdmin } from '@lb/leaderboard-service/admin-cli';

process.exitCode = await runAdmin(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`admin: ${(e as Error).message}\n`);
  return 1;
});
