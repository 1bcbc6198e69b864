/**
 * Typed, validated configuration read from the environment.
 *
 * Each key is declared once with its env name, default (or "required") and a
 * one-line doc. `loadConfig`-style functions in the services build a frozen
 * object from these declarations and fail fast with an error that names the
 * key. `dotenv` is only called by each service's `index.ts`, never here.
 */

export type Env = Record<string, string | undefined>;

/** Thrown when a configuration value is missing or malformed; names the key. */
export class ConfigError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`config ${key}: ${message}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

/** One documented configuration key. */
export interface ConfigKey<T> {
  readonly env: string;
  readonly doc: string;
  /** The default as it would be written in `.env` (undefined = required). */
  readonly defaultText: string | undefined;
  read(env: Env): T;
}

/** Every key declared in this process, by name, for documentation and the `.env.example` test. */
export const declaredKeys = new Map<string, ConfigKey<unknown>>();
/** Every declaration in order (a key shared by two services appears twice). */
export const declarations: ConfigKey<unknown>[] = [];

function declare<T>(
  env: string,
  doc: string,
  def: string | undefined,
  parse: (raw: string) => T,
): ConfigKey<T> {
  const key: ConfigKey<T> = {
    env,
    doc,
    defaultText: def,
    read(e: Env): T {
      const raw = e[env];
      const text = raw === undefined || raw.trim() === '' ? def : raw.trim();
      if (text === undefined) throw new ConfigError(env, 'is required');
      return parse(text);
    },
  };
  declaredKeys.set(env, key as ConfigKey<unknown>);
  declarations.push(key as ConfigKey<unknown>);
  return key;
}

export interface IntOptions {
  default?: number;
  min?: number;
  max?: number;
}

/** An integer key, range checked. */
export function intKey(env: string, doc: string, opts: IntOptions = {}): ConfigKey<number> {
  return declare(env, doc, opts.default === undefined ? undefined : String(opts.default), (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new ConfigError(env, `must be an integer, got "${raw}"`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) throw new ConfigError(env, `must be a safe integer, got "${raw}"`);
    if (opts.min !== undefined && n < opts.min) throw new ConfigError(env, `must be >= ${opts.min}, got ${n}`);
    if (opts.max !== undefined && n > opts.max) throw new ConfigError(env, `must be <= ${opts.max}, got ${n}`);
    return n;
  });
}

export interface StringOptions {
  default?: string;
  minLength?: number;
  pattern?: RegExp;
}

/** A string key, optionally length or pattern checked. */
export function stringKey(env: string, doc: string, opts: StringOptions = {}): ConfigKey<string> {
  return declare(env, doc, opts.default, (raw) => {
    if (opts.minLength !== undefined && raw.length < opts.minLength) {
      throw new ConfigError(env, `must be at least ${opts.minLength} characters`);
    }
    if (opts.pattern && !opts.pattern.test(raw)) throw new ConfigError(env, `must match ${opts.pattern}`);
    return raw;
  });
}

export interface NumberOptions {
  default: number;
  min?: number;
  max?: number;
}

/** A decimal number key (a ratio, a factor), range checked. */
export function numberKey(env: string, doc: string, opts: NumberOptions): ConfigKey<number> {
  return declare(env, doc, String(opts.default), (raw) => {
    const n = /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n)) throw new ConfigError(env, `must be a number, got "${raw}"`);
    if (opts.min !== undefined && n < opts.min) throw new ConfigError(env, `must be >= ${opts.min}, got ${n}`);
    if (opts.max !== undefined && n > opts.max) throw new ConfigError(env, `must be <= ${opts.max}, got ${n}`);
    return n;
  });
}

/** A boolean key: true/false/1/0/yes/no/on/off. */
export function boolKey(env: string, doc: string, def: boolean): ConfigKey<boolean> {
  return declare(env, doc, String(def), (raw) => {
    const v = raw.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new ConfigError(env, `must be a boolean, got "${raw}"`);
  });
}

/** One of a fixed set of strings. */
export function enumKey<T extends string>(env: string, doc: string, values: readonly T[], def: T): ConfigKey<T> {
  return declare(env, doc, def, (raw) => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new ConfigError(env, `must be one of ${values.join(', ')}, got "${raw}"`);
    }
    return raw as T;
  });
}

/** A comma-separated list of http(s) URLs. */
export function urlListKey(env: string, doc: string, def?: string): ConfigKey<string[]> {
  return declare(env, doc, def, (raw) => {
    const urls = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (urls.length === 0) throw new ConfigError(env, 'must list at least one URL');
    for (const u of urls) checkHttpUrl(env, u);
    return urls.map((u) => u.replace(/\/+$/, ''));
  });
}

/** One http(s) URL, without a trailing slash. */
export function urlKey(env: string, doc: string, def?: string): ConfigKey<string> {
  return declare(env, doc, def, (raw) => {
    checkHttpUrl(env, raw.trim());
    return raw.trim().replace(/\/+$/, '');
  });
}

/** Throws a ConfigError naming `env` unless `u` is an http(s) URL. */
export function checkHttpUrl(env: string, u: string): void {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new ConfigError(env, `"${u}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(env, `"${u}" must be http or https`);
  }
}

/** An optional raw string (undefined when unset); `check` throws a ConfigError for a malformed value. */
export function optionalKey(env: string, doc: string, check?: (raw: string) => void): ConfigKey<string | undefined> {
  const key: ConfigKey<string | undefined> = {
    env,
    doc,
    defaultText: '',
    read(e: Env) {
      const raw = e[env];
      if (raw === undefined || raw.trim() === '') return undefined;
      check?.(raw.trim());
      return raw.trim();
    },
  };
  declaredKeys.set(env, key as ConfigKey<unknown>);
  declarations.push(key as ConfigKey<unknown>);
  return key;
}

/** Reads every key of a spec object into a frozen config object. */
export function readKeys<S extends Record<string, ConfigKey<unknown>>>(
  spec: S,
  env: Env,
): { readonly [K in keyof S]: S[K] extends ConfigKey<infer T> ? T : never } {
  const out: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(spec)) out[name] = key.read(env);
  return Object.freeze(out) as never;
}
