/**
 * devtools/split-imports.mjs, the codemod that turns `@lb/common` imports
 * into `@lb/common/contracts` and `@lb/common/platform` ones: on samples of
 * each form it handles or refuses, and run twice (idempotent).
 */
import { expect } from 'chai';
import { rewrite } from '../devtools/split-imports.mjs';

const NAMES = new Map([
  ['contracts', new Set(['AppError', 'GLOBAL', 'validate', 'Topology', 'ShardRouter'])],
  ['platform', new Set(['createLogger', 'ConfigError', 'Logger'])],
]);

/** The rewrite of `text`, checked to be a fixed point. */
function twice(text: string): string {
  const once = rewrite('x.ts', text, NAMES);
  expect(once.problems).to.deep.equal([]);
  const again = rewrite('x.ts', once.text, NAMES);
  expect(again).to.deep.equal({ text: once.text, changed: false, problems: [] });
  return once.text;
}

describe('split-imports codemod', () => {
  it('when one import names both entries, then it becomes one import per entry, names, inline types and aliases kept in order', () => {
    expect(twice("import { createLogger, AppError as E, type Topology, type Logger } from '@lb/common';\nconst x = 1;\n")).to.equal(
      "import { AppError as E, type Topology } from '@lb/common/contracts';\nimport { createLogger, type Logger } from '@lb/common/platform';\nconst x = 1;\n",
    );
  });

  it('when the import is type-only, uses double quotes or has no semicolon, then so do its rewrites', () => {
    expect(twice('import type { Topology, Logger } from "@lb/common"\n')).to.equal(
      'import type { Topology } from "@lb/common/contracts"\nimport type { Logger } from "@lb/common/platform"\n',
    );
  });

  it('when a long import spans lines, then a long rewrite spans lines too, and a short one fits on one', () => {
    const src = [
      'import {',
      '  AppError,',
      '  createLogger,',
      '  GLOBAL,',
      '  ShardRouter,',
      '  validate,',
      '  type Topology,',
      "} from '@lb/common';",
      '',
    ].join('\n');
    expect(twice(src)).to.equal(
      [
        "import { AppError, GLOBAL, ShardRouter, validate, type Topology } from '@lb/common/contracts';",
        "import { createLogger } from '@lb/common/platform';",
        '',
      ].join('\n'),
    );
    const long = `import {\n  ${[...Array(12)].map(() => 'AppError').join(',\n  ')},\n} from '@lb/common';\n`;
    expect(twice(long)).to.equal(`import {\n  ${[...Array(12)].map(() => 'AppError').join(',\n  ')},\n} from '@lb/common/contracts';\n`);
  });

  it('when a re-export names the root, then it is split in place', () => {
    expect(twice("export { GLOBAL, ConfigError } from '@lb/common';\n")).to.equal(
      "export { GLOBAL } from '@lb/common/contracts';\nexport { ConfigError } from '@lb/common/platform';\n",
    );
  });

  it('when a file already imports the entries, or does not mention @lb/common, then it is left byte for byte', () => {
    for (const text of ["import { GLOBAL } from '@lb/common/contracts';\n", "import x from 'y';\n", "import '@lb/common/migrate-cli';\n"]) {
      expect(rewrite('x.ts', text, NAMES)).to.deep.equal({ text, changed: false, problems: [] });
    }
  });

  it('when an import cannot be split by name, then the file is left as it is and each place is named', () => {
    const text = [
      "import * as common from '@lb/common';",
      "import { GLOBAL, Nowhere } from '@lb/common';",
      "export * from '@lb/common';",
      "const m = await import('@lb/common');",
      '',
    ].join('\n');
    const r = rewrite('f.ts', text, NAMES);
    expect(r.text).to.equal(text);
    expect(r.changed).to.equal(false);
    expect(r.problems).to.deep.equal([
      'f.ts:1: a namespace import of @lb/common',
      'f.ts:2: Nowhere is exported by neither @lb/common/contracts nor @lb/common/platform',
      'f.ts:3: export * from @lb/common',
      'f.ts:4: a dynamic import of @lb/common',
    ]);
  });
});
