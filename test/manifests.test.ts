/**
 * Every package.json declares exactly what its code imports, and production
 * code stays clear of development code.
 *
 * A production workspace that imports a package it does not declare works
 * here only because npm hoists someone else's copy to the root; in the image
 * (`npm ci --omit=dev`) or after any change to the other manifests it is a
 * missing module at run time. Imports are read with TypeScript's own
 * scanner (static, `import type`, re-exports, dynamic `import()`).
 */
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';
import { REPO_ROOT } from '../scripts/stack/paths.js';

interface Manifest {
  name: string;
  workspaces?: string[];
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const readJson = <T>(rel: string): T => JSON.parse(readFileSync(join(REPO_ROOT, rel), 'utf8')) as T;
const manifest = (dir: string): Manifest => readJson<Manifest>(join(dir, 'package.json'));

const ROOT = manifest('.');
const WORKSPACES = ROOT.workspaces ?? [];
/** What ships: the projects tsconfig.build.json compiles. */
const PRODUCTION = readJson<{ references: Array<{ path: string }> }>('tsconfig.build.json').references.map((r) => dirname(r.path));
/** Workspace package name → its directory. */
const WORKSPACE_DIRS = new Map(WORKSPACES.map((ws) => [manifest(ws).name, ws]));

/**
 * Packages a workspace may declare without importing them, because a package
 * it does import needs them at run time without declaring them itself.
 */
const NEEDED_BY: Readonly<Record<string, { by: string; why: string }>> = {
  // BullMQ connects through ioredis, an *optional* peer dependency of
  // bullmq's, which npm therefore installs only when somebody declares it.
  ioredis: { by: 'bullmq', why: "BullMQ's connection backend (an optional peer dependency of bullmq)" },
};

const BUILTINS = new Set(builtinModules);

/** Every file under `dir` (relative to the repository) ending in one of `exts`, skipping node_modules and dist. */
function filesUnder(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const path = join(abs, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist') walk(path);
      } else if (exts.some((x) => e.name.endsWith(x))) {
        out.push(relative(REPO_ROOT, path));
      }
    }
  };
  walk(join(REPO_ROOT, dir));
  return out.sort();
}

/** The module specifiers a file imports or re-exports, statically or dynamically, types included. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`; undefined for relative paths and builtins. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  if (specifier.startsWith('node:') || BUILTINS.has(specifier.split('/')[0]!)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Bare package imports of `files`: package name → the files importing it (and with what). */
function packagesImported(files: readonly string[]): Map<string, string[]> {
  const used = new Map<string, string[]>();
  for (const file of files) {
    for (const spec of importsOf(file)) {
      const pkg = packageOf(spec);
      if (pkg) used.set(pkg, [...(used.get(pkg) ?? []), `${file} (${spec})`]);
    }
  }
  return used;
}

/** Imports of `@lb/*` that are not a workspace, or a subpath its "exports" does not offer. */
function badWorkspaceImports(files: readonly string[]): string[] {
  const bad: string[] = [];
  for (const file of files) {
    for (const spec of importsOf(file)) {
      const pkg = packageOf(spec);
      if (!pkg?.startsWith('@lb/')) continue;
      const dir = WORKSPACE_DIRS.get(pkg);
      if (!dir) {
        bad.push(`${file}: ${spec} (no such workspace)`);
        continue;
      }
      const subpath = `.${spec.slice(pkg.length)}`;
      if (!Object.hasOwn(manifest(dir).exports ?? {}, subpath)) bad.push(`${file}: ${spec} (${pkg} exports no "${subpath}")`);
    }
  }
  return bad;
}

/** `imported` packages missing from `declared`, with where they are imported. */
function undeclared(imported: Map<string, string[]>, declared: Readonly<Record<string, string>>): string[] {
  return [...imported].filter(([pkg]) => !Object.hasOwn(declared, pkg)).map(([pkg, where]) => `${pkg}: ${where.join(', ')}`);
}

/** Declared packages nothing imports and nothing in {@link NEEDED_BY} accounts for. */
function unused(imported: Map<string, string[]>, declared: Readonly<Record<string, string>>): string[] {
  return Object.keys(declared).filter((pkg) => {
    if (imported.has(pkg)) return false;
    const need = NEEDED_BY[pkg];
    return !(need && imported.has(need.by));
  });
}

describe('package manifests', () => {
  it('when the workspaces are listed, then every production workspace is one, and devtools is a devDependency of the root only', () => {
    for (const ws of PRODUCTION) expect(WORKSPACES, ws).to.include(ws);
    expect(WORKSPACES).to.include('devtools');
    expect(ROOT.devDependencies).to.have.property('@lb/devtools');
    expect(ROOT.dependencies ?? {}).not.to.have.property('@lb/devtools');
    for (const ws of WORKSPACES) {
      const m = manifest(ws);
      expect({ ...m.dependencies, ...m.devDependencies }, ws).not.to.have.property('@lb/devtools');
    }
  });

  for (const ws of PRODUCTION) {
    it(`when ${ws}/src is scanned, then each package it imports is in its dependencies, and each dependency is used`, () => {
      const files = filesUnder(join(ws, 'src'), ['.ts']);
      expect(files, `${ws}/src`).not.to.be.empty;
      const imported = packagesImported(files);
      const deps = manifest(ws).dependencies ?? {};
      // devDependencies are left out of a production install: they do not count.
      expect(undeclared(imported, deps), `imported by ${ws}/src but not in ${ws}/package.json "dependencies"`).to.deep.equal([]);
      expect(unused(imported, deps), `in ${ws}/package.json "dependencies" but imported nowhere in ${ws}/src`).to.deep.equal([]);
      expect(badWorkspaceImports(files)).to.deep.equal([]);
    });
  }

  it('when devtools is scanned (src/ and its commands, such as split-imports.mjs), then each package it imports is declared, and each declaration is used', () => {
    const files = filesUnder('devtools', ['.ts', '.mjs']);
    const imported = packagesImported(files);
    const m = manifest('devtools');
    const declared = { ...m.dependencies, ...m.devDependencies };
    expect(undeclared(imported, declared), 'imported by devtools but not in devtools/package.json').to.deep.equal([]);
    expect(unused(imported, declared), 'in devtools/package.json but imported nowhere in devtools').to.deep.equal([]);
    expect(badWorkspaceImports(files)).to.deep.equal([]);
  });

  it("when the root's scripts and tests and each workspace's tests are scanned, then each package they import is declared", () => {
    const rootDeclared = { ...ROOT.dependencies, ...ROOT.devDependencies };
    const rootFiles = [...filesUnder('scripts', ['.ts', '.mjs']), ...filesUnder('test', ['.ts']), '.mocharc.cjs'];
    expect(undeclared(packagesImported(rootFiles), rootDeclared), 'imported by scripts/ or test/ but not in package.json').to.deep.equal([]);
    expect(badWorkspaceImports(rootFiles)).to.deep.equal([]);
    // Workspace tests run from the root (mocha, the harness): the root's
    // declarations and their own workspace's both count.
    for (const ws of WORKSPACES) {
      let files: string[];
      try {
        files = filesUnder(join(ws, 'test'), ['.ts']);
      } catch {
        continue; // no tests
      }
      const m = manifest(ws);
      const declared = { ...rootDeclared, ...m.dependencies, ...m.devDependencies };
      expect(undeclared(packagesImported(files), declared), `imported by ${ws}/test but declared neither by it nor by the root`).to.deep.equal([]);
      expect(badWorkspaceImports(files)).to.deep.equal([]);
    }
  });

  it('when production sources are scanned, then none imports @lb/devtools, scripts/ or anything outside its own src/ by path', () => {
    const offenders: string[] = [];
    for (const ws of PRODUCTION) {
      const src = join(REPO_ROOT, ws, 'src');
      for (const file of filesUnder(join(ws, 'src'), ['.ts'])) {
        for (const spec of importsOf(file)) {
          if (spec === '@lb/devtools' || spec.startsWith('@lb/devtools/')) offenders.push(`${file}: ${spec}`);
          if (!spec.startsWith('.')) continue;
          // Relative imports stay inside the workspace's src: scripts/,
          // devtools/, tests and other workspaces are reached by package
          // name or not at all (and would break the build's rootDir).
          const target = resolve(dirname(join(REPO_ROOT, file)), spec);
          if (!target.startsWith(src + sep)) offenders.push(`${file}: ${spec} (→ ${relative(REPO_ROOT, target)})`);
        }
      }
    }
    expect(offenders).to.deep.equal([]);
  });

  it('when package-lock.json is read, then it records every manifest\'s dependencies as declared (npm ci refuses otherwise)', () => {
    const lock = readJson<{ packages: Record<string, { dependencies?: Record<string, string>; devDependencies?: Record<string, string> }> }>(
      'package-lock.json',
    );
    for (const dir of ['', ...WORKSPACES]) {
      const m = manifest(dir || '.');
      const locked = lock.packages[dir];
      expect(locked, `package-lock.json has no entry for "${dir || '(root)'}"`).to.not.equal(undefined);
      expect(locked!.dependencies ?? {}, `${dir || 'root'} dependencies`).to.deep.equal(m.dependencies ?? {});
      expect(locked!.devDependencies ?? {}, `${dir || 'root'} devDependencies`).to.deep.equal(m.devDependencies ?? {});
    }
  });

  it('when the runtime is read, then .node-version, engines, @types/node, the Dockerfile image and the running Node are one major (26, the Active LTS line)', () => {
    const pinned = readFileSync(join(REPO_ROOT, '.node-version'), 'utf8').trim();
    expect(pinned).to.match(/^26\.\d+\.\d+$/);
    const major = pinned.split('.')[0]!;
    expect((ROOT as Manifest & { engines?: { node?: string } }).engines?.node).to.equal(`>=${major}`);
    expect(ROOT.devDependencies?.['@types/node']).to.match(new RegExp(`^\\^${major}\\.`));
    expect(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')).to.match(new RegExp(`^ARG NODE_IMAGE=node:${major}-slim$`, 'm'));
    // npm test runs on it: scripts/bootstrap.mjs brings the pinned version when the system Node is another.
    expect(process.versions.node).to.equal(pinned);
  });
});
