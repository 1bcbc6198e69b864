import { expect } from 'chai';
import { boolKey, ConfigError, intKey, readKeys, stringKey } from '../src/platform/config.js';

describe('config keys', () => {
  const spec = {
    port: intKey('T_PORT', 'port', { default: 5000, min: 0, max: 65535 }),
    secret: stringKey('T_SECRET', 'secret', { minLength: 8 }),
    on: boolKey('T_ON', 'flag', false),
  };

  it('when values are valid, then a frozen typed object comes back, with defaults filled in', () => {
    const c = readKeys(spec, { T_SECRET: '12345678', T_ON: 'yes' });
    expect(c).to.deep.equal({ port: 5000, secret: '12345678', on: true });
    expect(Object.isFrozen(c)).to.equal(true);
    expect(readKeys(spec, { T_SECRET: '12345678', T_PORT: '0' }).port).to.equal(0);
  });

  for (const [env, key] of [
    [{}, 'T_SECRET'],
    [{ T_SECRET: 'short' }, 'T_SECRET'],
    [{ T_SECRET: '12345678', T_PORT: '70000' }, 'T_PORT'],
    [{ T_SECRET: '12345678', T_PORT: '12ab' }, 'T_PORT'],
    [{ T_SECRET: '12345678', T_ON: 'maybe' }, 'T_ON'],
  ] as const) {
    it(`when ${JSON.stringify(env)} is given, then loading fails naming ${key}`, () => {
      expect(() => readKeys(spec, env)).to.throw(ConfigError, key).with.property('key', key);
    });
  }
});
