/**
 * GET /history/:userId?limit=&before= — a player's score events from
 * Postgres, newest first; with `board=<id>` a named board's events (every
 * period; `before` is then the `next_before` cursor of the previous page).
 */
import { Router } from 'express';
import { AppError, validate, type ProjectRef } from '@lb/common/contracts';
import type { AccountsRepo } from '../db/accounts-repo.js';
import type { BoardHistoryBefore, HistoryRepo } from '../db/history-repo.js';
import { projectOf } from '../http/credentials.js';

export function historyRoutes(deps: { history: HistoryRepo; accounts: AccountsRepo }): Router {
  const r = Router();
  r.get('/history/:userId', async (req, res) => {
    const userId = validate.userId(req.params.userId, 'userId');
    const limit = validate.queryInt(req.query.limit, 'limit', 50, 1, 500);
    const board = req.query.board;
    const project = projectOf(req);
    if (board !== undefined && board !== 'main') {
      if (typeof board !== 'string' || !/^[a-z0-9_-]{1,64}$/.test(board)) throw new AppError('invalid_query', 'board: not a board id', { field: 'board' });
      const before = req.query.before === undefined ? undefined : boardCursor(req.query.before);
      const events = await deps.history.boardEvents(project, userId, board, limit, before);
      await mustExist(project, events.length, before, userId);
      const last = events[events.length - 1];
      const next = events.length === limit && last ? Buffer.from(JSON.stringify([Date.parse(last.ts), last.period, last.version])).toString('base64url') : null;
      res.json({ user_id: userId, board, events, next_before: next });
      return;
    }
    const before = req.query.before === undefined ? undefined : validate.queryInt(req.query.before, 'before', 0, 1, Number.MAX_SAFE_INTEGER);
    const events = await deps.history.events(project, userId, limit, before);
    await mustExist(project, events.length, before, userId);
    const last = events[events.length - 1];
    res.json({ user_id: userId, events, next_before: events.length === limit && last ? last.version : null });
  });

  /** An empty first page of someone with no account is a 404. */
  async function mustExist(project: ProjectRef, count: number, before: unknown, userId: string): Promise<void> {
    if (count === 0 && before === undefined && !(await deps.accounts.findAnywhere(project, userId))) {
      throw new AppError('user_not_found', `no player ${userId}`, { user_id: userId });
    }
  }
  return r;
}

function boardCursor(v: unknown): BoardHistoryBefore {
  try {
    const a = typeof v === 'string' ? (JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as unknown) : undefined;
    if (Array.isArray(a) && Number.isSafeInteger(a[0]) && typeof a[1] === 'string' && Number.isSafeInteger(a[2])) return { tsMs: a[0], period: a[1], version: a[2] };
  } catch {
    /* below */
  }
  throw new AppError('invalid_query', 'before: not a next_before of this history', { field: 'before' });
}
