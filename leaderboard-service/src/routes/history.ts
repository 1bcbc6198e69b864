/** GET /history/:userId?limit=&before= — a player's score events from Postgres, newest first. */
import { Router } from 'express';
import { AppError, validate } from '@lb/common';
import type { AccountsRepo } from '../db/accounts-repo.js';
import type { HistoryRepo } from '../db/history-repo.js';

export function historyRoutes(deps: { history: HistoryRepo; accounts: AccountsRepo }): Router {
  const r = Router();
  r.get('/history/:userId', async (req, res) => {
    const userId = validate.userId(req.params.userId, 'userId');
    const limit = validate.queryInt(req.query.limit, 'limit', 50, 1, 500);
    const before = req.query.before === undefined ? undefined : validate.queryInt(req.query.before, 'before', 0, 1, Number.MAX_SAFE_INTEGER);
    const events = await deps.history.events(userId, limit, before);
    if (events.length === 0 && before === undefined && !(await deps.accounts.findAnywhere(userId))) {
      throw new AppError('user_not_found', `no player ${userId}`, { user_id: userId });
    }
    const last = events[events.length - 1];
    res.json({ user_id: userId, events, next_before: events.length === limit && last ? last.version : null });
  });
  return r;
}
