/**
 * contracts/tenancy.ts: project scopes split back into what made them, and
 * score events name their project in both fields or neither.
 */
import { expect } from 'chai';
import { checkScoreEvent, DEFAULT_PROJECT, isDefaultProject, parseProjectScope, projectScope, sameProject } from '../src/contracts/index.js';

const event = { user_id: 'alice', name: 'Alice', region: 'EU', op: 'set', delta: 5, score: 5, version: 1, ts: 1, request_id: 'r', board: 'main', period: 'all' };

describe('tenancy contract', () => {
  it('when a project is written as a scope, then parsing gives it back, and anything else is not a scope', () => {
    expect(projectScope(DEFAULT_PROJECT)).to.equal('default/default');
    expect(parseProjectScope('acme/my-game_live')).to.deep.equal({ tenant: 'acme', project: 'my-game_live' });
    for (const bad of ['acme', 'acme/', '/live', 'Acme/live', 'acme/live/x', '-acme/live', `${'a'.repeat(65)}/live`]) {
      expect(parseProjectScope(bad), bad).to.equal(undefined);
    }
    expect(isDefaultProject({ tenant: 'default', project: 'default' })).to.equal(true);
    expect(isDefaultProject({ tenant: 'default', project: 'other' })).to.equal(false);
    expect(sameProject({ tenant: 'a', project: 'b' }, { tenant: 'a', project: 'b' })).to.equal(true);
    expect(sameProject({ tenant: 'a', project: 'b' }, { tenant: 'b', project: 'b' })).to.equal(false);
  });

  it('when an event names its project, then both fields must be well-formed; an event with neither is the default project’s', () => {
    expect(checkScoreEvent(event)).to.equal(undefined);
    expect(checkScoreEvent({ ...event, tenant: 'acme', project: 'live' })).to.equal(undefined);
    expect(checkScoreEvent({ ...event, tenant: 'acme' })).to.equal('project is malformed');
    expect(checkScoreEvent({ ...event, project: 'live' })).to.equal('tenant is malformed');
    expect(checkScoreEvent({ ...event, tenant: 'ACME', project: 'live' })).to.equal('tenant is malformed');
  });
});
