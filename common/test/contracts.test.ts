/**
 * @lb/common/contracts stays pure: what every process, script, test and the
 * page may share without pulling in I/O.
 *
 * Every file under common/src/contracts/ may import only
 *   - other files under common/src/contracts/ (never platform/, never
 *     anything else of the repository by path);
 *   - the packages of {@link PURE_PACKAGES}, each with the reason it is pure;
 *   - Node built-ins as `import type` only (erased when compiled). No value
 *     import of any node:* module, not even node:crypto: hashing and ids in
 *     the contracts are plain arithmetic (the shard router's FNV-1a), so
 *     the contracts load anywhere, a browser included, and a value import of
 *     a built-in is how file, network or process access would creep in.
 * and may not touch `process` (the environment, the process' I/O),
 * `require`, `fetch` or `Buffer`.
 *
 * Imports are read from TypeScript's syntax tree: static imports and
 * re-exports, `import type`, dynamic `import()`, `require()` and
 * `import x = require()`.
 */
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import ts from 'typescript';

const COMMON_SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const CONTRACTS = join(COMMON_SRC, 'contracts');

/** Packages the contracts may import, and why each is pure (no I/O, no environment, no globals of a platform). */
const PURE_PACKAGES: Readonly<Record<string, string>> = {
  'cron-parser': 'date arithmetic for period boundaries (with luxon); parses strings, reads no file, clock or environment of its own',
};

/** Packages that are platform by nature; named so a violation says why. */
const PLATFORM_PACKAGES = new Set([
  'pg', 'redis', 'ioredis', 'bullmq', 'bullmq-otel', 'express', 'jsonwebtoken', 'prom-client', 'dotenv', 'morgan',
  'rate-limiter-flexible', '@node-rs/argon2', 'httpxy',
]);

/** Globals that are I/O, the environment, or a platform's own. */
const FORBIDDEN_GLOBALS = new Set(['process', 'require', 'fetch', 'Buffer']);

const BUILTINS = new Set(builtinModules);

interface Import {
  readonly spec: string;
  readonly typeOnly: boolean;
  readonly line: number;
}

/** Every module specifier `text` imports or re-exports, with whether the import is erased at compile time. */
function importsIn(fileName: string, text: string): { imports: Import[]; globals: Array<{ name: string; line: number }> } {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const imports: Import[] = [];
  const globals: Array<{ name: string; line: number }> = [];
  const lineOf = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const allTypes =
        c !== undefined &&
        (c.isTypeOnly ||
          (c.name === undefined &&
            c.namedBindings !== undefined &&
            ts.isNamedImports(c.namedBindings) &&
            c.namedBindings.elements.length > 0 &&
            c.namedBindings.elements.every((e) => e.isTypeOnly)));
      imports.push({ spec: n.moduleSpecifier.text, typeOnly: allTypes, line: lineOf(n) });
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      imports.push({ spec: n.moduleSpecifier.text, typeOnly: n.isTypeOnly, line: lineOf(n) });
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
      imports.push({ spec: n.moduleReference.expression.text, typeOnly: n.isTypeOnly, line: lineOf(n) });
    } else if (ts.isCallExpression(n) && n.arguments.length > 0 && ts.isStringLiteralLike(n.arguments[0]!)) {
      const isImport = n.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(n.expression) && n.expression.text === 'require';
      if (isImport || isRequire) imports.push({ spec: (n.arguments[0] as ts.StringLiteralLike).text, typeOnly: false, line: lineOf(n) });
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      imports.push({ spec: n.argument.literal.text, typeOnly: true, line: lineOf(n) });
    }
    if (ts.isIdentifier(n) && FORBIDDEN_GLOBALS.has(n.text)) {
      const p = n.parent;
      // A property name (`x.process`, `{ process: 1 }`) is not the global.
      const isPropertyName = (ts.isPropertyAccessExpression(p) && p.name === n) || (ts.isPropertyAssignment(p) && p.name === n) || ts.isPropertySignature(p);
      if (!isPropertyName) globals.push({ name: n.text, line: lineOf(n) });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { imports, globals };
}

/** What is wrong with one contracts file (`file` absolute, `text` its source); empty when it is pure. */
function violations(file: string, text: string): string[] {
  const out: string[] = [];
  const at = (line: number) => `${relative(COMMON_SRC, file)}:${line}`;
  const { imports, globals } = importsIn(file, text);
  for (const { spec, typeOnly, line } of imports) {
    if (spec.startsWith('.') || spec.startsWith('/')) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(CONTRACTS + sep)) {
        const where = relative(COMMON_SRC, target);
        out.push(`${at(line)}: imports ${spec} (${where.startsWith(`platform${sep}`) || where === 'platform' ? 'platform code' : 'outside contracts/'})`);
      }
      continue;
    }
    const bare = spec.startsWith('node:') ? spec.slice(5) : spec;
    if (spec.startsWith('node:') || BUILTINS.has(bare.split('/')[0]!)) {
      if (!typeOnly) out.push(`${at(line)}: imports the Node built-in ${spec} (only \`import type\` of a built-in is allowed)`);
      continue;
    }
    const parts = spec.split('/');
    const pkg = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    if (pkg === '@lb/common') out.push(`${at(line)}: imports ${spec} (use a relative path inside contracts/)`);
    else if (PLATFORM_PACKAGES.has(pkg)) out.push(`${at(line)}: imports ${spec} (a platform package: I/O)`);
    else if (!Object.hasOwn(PURE_PACKAGES, pkg)) out.push(`${at(line)}: imports ${spec} (not in PURE_PACKAGES of common/test/contracts.test.ts)`);
  }
  for (const { name, line } of globals) out.push(`${at(line)}: uses the global ${name}`);
  return out;
}

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

describe('@lb/common contracts are pure', () => {
  const files = tsFilesUnder(CONTRACTS);

  it('when common/src/contracts is listed, then it has its entry point and the files it names', () => {
    expect(files.map((f) => relative(CONTRACTS, f))).to.include.members(['index.ts', 'errors.ts', 'keys.ts', 'events.ts', 'ranking.ts', 'routes.ts']);
  });

  it('when every file under contracts/ is scanned, then none imports platform/, a Node built-in (but types), or an I/O package, nor touches process, require, fetch or Buffer', () => {
    const found = files.flatMap((f) => violations(f, readFileSync(f, 'utf8')));
    expect(found).to.deep.equal([]);
  });

  it('when the checker is given impure sources, then it names each offence', () => {
    const f = join(CONTRACTS, 'example.ts');
    const src = [
      "import { createLogger } from '../platform/logger.js';",
      "import { readFileSync } from 'node:fs';",
      "import { randomUUID } from 'node:crypto';",
      "import type { IncomingMessage } from 'node:http';",
      "import pg from 'pg';",
      "export * from 'ioredis';",
      "import type { Queue } from 'bullmq';",
      "import express = require('express');",
      "const m = await import('node:net');",
      "import { x } from 'left-pad';",
      "import { GLOBAL } from './topology.js';",
      'const home = process.env.HOME;',
      'const o = { process: 1 }; o.process;',
    ].join('\n');
    const v = violations(f, src);
    expect(v.map((s) => s.replace(/^[^:]+:/, ''))).to.deep.equal([
      '1: imports ../platform/logger.js (platform code)',
      '2: imports the Node built-in node:fs (only `import type` of a built-in is allowed)',
      '3: imports the Node built-in node:crypto (only `import type` of a built-in is allowed)',
      '5: imports pg (a platform package: I/O)',
      '6: imports ioredis (a platform package: I/O)',
      '7: imports bullmq (a platform package: I/O)',
      '8: imports express (a platform package: I/O)',
      '9: imports the Node built-in node:net (only `import type` of a built-in is allowed)',
      '10: imports left-pad (not in PURE_PACKAGES of common/test/contracts.test.ts)',
      '12: uses the global process',
    ]);
  });
});
