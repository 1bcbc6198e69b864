/**
 * A leaderboard-service replica as a child process, for the tests that kill
 * one: from source, on a free port, with the test JWT secret, cheap password
 * hashing and quiet logs; resolved once its /health answers.
 */
import { freePort } from '@lb/devtools/infra';
import { getInfra } from '@lb/devtools/testing';
import { TEST_SECRET } from '../../leaderboard-service/test/support/service.js';
import { eventually, spawnNode, type Child } from './processes.js';

export async function startServiceProcess(keyPrefix: string, env: Record<string, string> = {}): Promise<{ child: Child; url: string }> {
  const infra = await getInfra();
  const port = await freePort();
  const child = spawnNode(
    'leaderboard-service/src/index.ts',
    infra.env({ PORT: String(port), JWT_SECRET: TEST_SECRET, KEY_PREFIX: keyPrefix, ARGON2_MEMORY_KIB: '256', ARGON2_TIME_COST: '1', ACCESS_LOG: 'false', LOG_LEVEL: 'warn', ...env }),
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await eventually('service up', () => fetch(`${url}/health`).then((r) => r.ok, () => false), 30_000);
  } catch (e) {
    await child.stop('SIGKILL');
    throw e;
  }
  return { child, url };
}
