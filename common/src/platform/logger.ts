/**
 * A small structured logger: one JSON object per line on stderr, so access
 * logs (morgan, stdout) and application logs stay apart. `LOG_LEVEL` picks
 * the threshold.
 */
import { enumKey } from './config.js';

export const LOG_LEVEL = enumKey('LOG_LEVEL', 'Application log threshold.', ['debug', 'info', 'warn', 'error', 'silent'], 'info');

const ORDER = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof ORDER;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

/** A logger writing JSON lines tagged with a component name. */
export function createLogger(component: string, level: LogLevel = 'info'): Logger {
  const min = ORDER[level];
  const write = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const line: Record<string, unknown> = { t: new Date().toISOString(), level: lvl, component, msg };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        line[k] = v instanceof Error ? { message: v.message, name: v.name, stack: v.stack } : v;
      }
    }
    process.stderr.write(JSON.stringify(line) + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (c) => createLogger(`${component}.${c}`, level),
  };
}

/** Warns at most once per `everyMs` per key, counting what it swallowed (`suppressed` on the next warning that gets through). */
export type ThrottledWarn = (key: string, msg: string, fields: Record<string, unknown>) => void;

export function throttledWarn(log: Logger, everyMs: number): ThrottledWarn {
  const last = new Map<string, { at: number; skipped: number }>();
  return (key, msg, fields) => {
    const now = Date.now();
    const seen = last.get(key);
    if (seen && now - seen.at < everyMs) {
      seen.skipped++;
      return;
    }
    log.warn(msg, seen && seen.skipped > 0 ? { ...fields, suppressed: seen.skipped } : fields);
    last.set(key, { at: now, skipped: 0 });
  };
}
