#!/usr/bin/env node
/**
 * Rewrites imports of the old root entry `@lb/common` into imports of its two
 * entry points, `@lb/common/contracts` and `@lb/common/platform`, by looking
 * up which of them exports each name:
 *
 *   import { AppError, createLogger, type Topology } from '@lb/common';
 * becomes
 *   import { AppError, type Topology } from '@lb/common/contracts';
 *   import { createLogger } from '@lb/common/platform';
 *
 * Usage (from the repository root, any Node >= 18):
 *
 *   node devtools/split-imports.mjs                 every source file of the repository
 *   node devtools/split-imports.mjs path/ file.ts   just these files and folders
 *   node devtools/split-imports.mjs --check         change nothing; exit 1 if a file would change
 *
 * Idempotent: a file without an `@lb/common` import is left byte for byte.
 * It handles `import { ... }`, `import type { ... }`, inline `type` names,
 * `X as Y`, multi-line lists (kept multi-line) and `export { ... } from`;
 * the order of names and the quotes are kept. It refuses, naming the file
 * and line and changing nothing in that file, what cannot be split by name:
 * `import * as c from '@lb/common'`, a default or side-effect import,
 * `export * from '@lb/common'`, `import('@lb/common')`, and a name neither
 * entry exports. The names each entry exports are read from its source
 * (common/package.json "exports", the development condition) with the
 * TypeScript compiler, so `export *` chains count. Exit status: 0 done,
 * 1 --check found work, 2 refusals.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OLD = '@lb/common';
/** The entry points, in the order their imports are written. */
const ENTRIES = ['contracts', 'platform'];
const EXTENSIONS = ['.ts', '.mts', '.cts', '.tsx', '.js', '.mjs', '.cjs'];
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.runtime', '.data']);

/** Entry → the names it exports, read from common/package.json's exports and the sources they point at. */
function exportedNames() {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'common', 'package.json'), 'utf8'));
  const files = ENTRIES.map((e) => {
    const target = manifest.exports?.[`./${e}`];
    const src = typeof target === 'string' ? target : (target?.development ?? target?.types);
    if (typeof src !== 'string') throw new Error(`common/package.json exports no "./${e}" with a development condition`);
    return join(REPO_ROOT, 'common', src);
  });
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const names = new Map();
  ENTRIES.forEach((entry, i) => {
    const sf = program.getSourceFile(files[i]);
    const symbol = sf && checker.getSymbolAtLocation(sf);
    if (!symbol) throw new Error(`cannot read the exports of ${relative(REPO_ROOT, files[i])}`);
    names.set(entry, new Set(checker.getExportsOfModule(symbol).map((s) => s.name)));
  });
  return names;
}

/** Every source file under `path` (a file or a folder). */
function sourceFiles(path, out = []) {
  const st = statSync(path);
  if (st.isFile()) {
    out.push(path);
    return out;
  }
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) sourceFiles(join(path, e.name), out);
    } else if (e.isFile() && EXTENSIONS.some((x) => e.name.endsWith(x)) && !e.name.endsWith('.d.ts')) {
      out.push(join(path, e.name));
    }
  }
  return out;
}

function scriptKind(file) {
  if (file.endsWith('.tsx')) return ts.ScriptKind.TSX;
  if (/\.[mc]?js$/.test(file)) return ts.ScriptKind.JS;
  return ts.ScriptKind.TS;
}

/**
 * The rewritten text of one file, or `{ problems }` when something in it
 * cannot be split by name (the file is then left as it is).
 */
export function rewrite(file, text, names) {
  if (!text.includes(OLD)) return { text, changed: false, problems: [] };
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, scriptKind(file));
  const problems = [];
  const edits = [];
  const where = (node) => `${file}:${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}`;
  const entryOf = (name) => ENTRIES.find((e) => names.get(e).has(name));

  const split = (decl, keyword, typeOnly, elements, specifier) => {
    const groups = new Map(ENTRIES.map((e) => [e, []]));
    for (const el of elements) {
      const name = (el.propertyName ?? el.name).text;
      const entry = entryOf(name);
      if (entry === undefined) {
        problems.push(`${where(el)}: ${name} is exported by neither ${ENTRIES.map((e) => `${OLD}/${e}`).join(' nor ')}`);
        return;
      }
      groups.get(entry).push(el.getText(sf));
    }
    const original = decl.getText(sf);
    const quote = specifier.getText(sf)[0];
    const semicolon = original.trimEnd().endsWith(';') ? ';' : '';
    const multiLine = original.includes('\n');
    const lineStart = text.lastIndexOf('\n', decl.getStart(sf)) + 1;
    const indent = /^[ \t]*/.exec(text.slice(lineStart))[0];
    const elementIndent = multiLine ? (/\n([ \t]*)\S/.exec(original)?.[1] ?? `${indent}  `) : '';
    const head = `${keyword}${typeOnly ? ' type' : ''}`;
    const out = [];
    for (const [entry, specs] of groups) {
      if (specs.length === 0) continue;
      const from = `from ${quote}${OLD}/${entry}${quote}${semicolon}`;
      const oneLine = `${head} { ${specs.join(', ')} } ${from}`;
      out.push(multiLine && indent.length + oneLine.length > 100 ? `${head} {\n${specs.map((s) => `${elementIndent}${s},`).join('\n')}\n${indent}} ${from}` : oneLine);
    }
    // An empty list (`import {} from '@lb/common'`) imports nothing: it goes.
    edits.push({ start: decl.getStart(sf), end: decl.getEnd(), text: out.join(`\n${indent}`) });
  };

  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && node.moduleSpecifier.text === OLD) {
      const c = node.importClause;
      if (c === undefined) problems.push(`${where(node)}: a side-effect import of ${OLD}`);
      else if (c.name !== undefined) problems.push(`${where(node)}: a default import of ${OLD}`);
      else if (c.namedBindings === undefined || !ts.isNamedImports(c.namedBindings)) problems.push(`${where(node)}: a namespace import of ${OLD}`);
      else split(node, 'import', c.isTypeOnly, c.namedBindings.elements, node.moduleSpecifier);
      return;
    }
    if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) && node.moduleSpecifier.text === OLD) {
      if (node.exportClause === undefined || !ts.isNamedExports(node.exportClause)) problems.push(`${where(node)}: export * from ${OLD}`);
      else split(node, 'export', node.isTypeOnly, node.exportClause.elements, node.moduleSpecifier);
      return;
    }
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e) && e.text === OLD) problems.push(`${where(node)}: import = require('${OLD}')`);
    }
    if (ts.isCallExpression(node) && node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0]) && node.arguments[0].text === OLD) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require')) {
        problems.push(`${where(node)}: a dynamic import of ${OLD}`);
      }
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal) && node.argument.literal.text === OLD) {
      problems.push(`${where(node)}: import('${OLD}') in a type`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);

  if (problems.length > 0 || edits.length === 0) return { text, changed: false, problems };
  let out = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) {
    let { start, end } = e;
    // A declaration that imported nothing leaves no empty line behind.
    if (e.text === '' && out[end] === '\n') end++;
    out = out.slice(0, start) + e.text + out.slice(end);
  }
  return { text: out, changed: out !== text, problems };
}

function main(argv) {
  const check = argv.includes('--check');
  const paths = argv.filter((a) => a !== '--check');
  const targets = (paths.length > 0 ? paths : [REPO_ROOT]).flatMap((p) => sourceFiles(resolve(p)));
  const names = exportedNames();
  let changed = 0;
  const problems = [];
  for (const file of targets) {
    const text = readFileSync(file, 'utf8');
    const r = rewrite(relative(REPO_ROOT, file), text, names);
    problems.push(...r.problems);
    if (!r.changed) continue;
    changed++;
    if (check) console.log(`would rewrite ${relative(REPO_ROOT, file)}`);
    else {
      writeFileSync(file, r.text);
      console.log(`rewrote ${relative(REPO_ROOT, file)}`);
    }
  }
  for (const p of problems) console.error(`split-imports: ${p}`);
  console.log(`split-imports: ${changed} file(s) ${check ? 'to rewrite' : 'rewritten'}, ${targets.length} scanned${problems.length ? `, ${problems.length} refused (left as they are)` : ''}`);
  return problems.length > 0 ? 2 : check && changed > 0 ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
