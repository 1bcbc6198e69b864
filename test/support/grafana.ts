/**
 * The Grafana dashboard docs/grafana/leaderboard.json as tests read it: its
 * panels' PromQL expressions, and those expressions with Grafana's variables
 * replaced so that Prometheus itself can run them.
 */
import { join } from 'node:path';
import { REPO_ROOT } from '../../scripts/stack/paths.js';

export const DASHBOARD_FILE = join(REPO_ROOT, 'docs', 'grafana', 'leaderboard.json');

interface Datasource {
  type: string;
  uid: string;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: Datasource;
  targets?: Array<{ refId: string; expr: string; datasource?: Datasource }>;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; allValue?: string }> };
}

/** Every query of every panel (rows included, should one ever hold panels). */
export function dashboardExpressions(d: Dashboard): Array<{ panel: string; refId: string; expr: string }> {
  const panels = d.panels.flatMap((p) => [p, ...(((p as { panels?: Panel[] }).panels) ?? [])]);
  return panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

/**
 * An expression as Grafana would send it: `$__rate_interval` and
 * `$__interval` (and `$__range`) become durations, a template variable its
 * "All" value. Throws on a variable it does not know, so a new one cannot slip
 * through untested.
 */
export function substituteVariables(expr: string, d: Dashboard, rateInterval: string): string {
  const all = new Map(d.templating.list.filter((v) => v.type === 'query').map((v) => [v.name, v.allValue ?? '.*']));
  return expr.replace(/\$\{?(\w+)\}?/g, (m, name: string) => {
    if (name === '__rate_interval' || name === '__interval' || name === '__range') return rateInterval;
    const value = all.get(name);
    if (value === undefined) throw new Error(`unknown variable ${m} in ${expr}`);
    return value;
  });
}
