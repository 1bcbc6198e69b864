/**
 * GET /boards and /boards/:id: the public definitions, each with its
 * current period, so that a client can show "resets in 3 h".
 */
import { type Board, boardJson, periodAt } from '@lb/common/contracts';
import { Router } from 'express';
import type { BoardAdmin } from '../boards/admin.js';
import type { BoardCatalog } from '../boards/catalog.js';
import { projectOf } from '../http/credentials.js';

/** A board's public form: the definition and its current period. */
export function publicBoard(b: Board, now = Date.now()): Record<string, unknown> {
  const { webhook_url: _hidden, ...definition } = boardJson(b);
  const p = periodAt(b.resetRule, now);
  return {
    ...definition,
    current_period: {
      id: p.id,
      starts_at: p.startsAt === undefined ? null : new Date(p.startsAt).toISOString(),
      ends_at: p.endsAt === undefined ? null : new Date(p.endsAt).toISOString(),
    },
  };
}

export function boardRoutes(deps: { catalog: BoardCatalog; admin: BoardAdmin }): Router {
  const r = Router();
  r.get('/boards', (req, res) => {
    res.json({ boards: deps.catalog.live(projectOf(req)).map((b) => publicBoard(b)) });
  });
  r.get('/boards/:id', async (req, res) => {
    res.json(publicBoard(await deps.admin.live(projectOf(req), String(req.params.id))));
  });
  return r;
}
