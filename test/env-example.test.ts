import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { findRepoRoot } from '@lb/devtools/testing';
import { CONFIG_KEYS as GATEWAY } from '../api-gateway/src/config.js';
import { CONFIG_KEYS as SERVICE } from '../leaderboard-service/src/config.js';
import { CONFIG_KEYS as WORKER } from '../worker-service/src/config.js';
import { renderEnvExample } from '../scripts/env-example.js';

describe('.env.example', () => {
  it('when the config modules are read, then .env.example documents every key exactly as generated', () => {
    const committed = readFileSync(join(findRepoRoot(), '.env.example'), 'utf8');
    expect(committed, 'run `npm run env-example`').to.equal(renderEnvExample());
    for (const k of [...SERVICE, ...WORKER, ...GATEWAY]) expect(committed).to.contain(`# ${k.env}=`);
  });
});
