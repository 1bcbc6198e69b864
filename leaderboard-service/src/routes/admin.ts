/**
 * /admin: board administration, for holders of an API key (X-Api-Key).
 * Input checks and mapping only; the rules live in boards/.
 */
import { boardJson, validate } from '@lb/common/contracts';
import { Router, type RequestHandler } from 'express';
import type { ApiKeyVerifier } from '../admin/api-keys.js';
import type { BoardAdmin } from '../boards/admin.js';
import { adminStats } from '../admin/stats.js';
import type { ShardStores } from '../redis/shard-store.js';

/** Every /admin route needs a valid X-Api-Key; the key's owner is in `res.locals.admin`. */
export function requireApiKey(keys: ApiKeyVerifier): RequestHandler {
  return (req, res, next) => {
    keys.verify(req.headers['x-api-key']).then((who) => {
      res.locals.admin = who;
      next();
    }, next);
  };
}

export function adminRoutes(deps: { admin: BoardAdmin; stores: ShardStores; instanceId: string }): Router {
  const r = Router();
  // Per-shard backlog, relay lag and this replica's write rate (the live page's operator panel).
  r.get('/admin/stats', async (_req, res) => {
    res.json(await adminStats(deps.stores, deps.instanceId));
  });
  r.post('/admin/boards', async (req, res) => {
    const { board, webhookSecret } = await deps.admin.create(validate.bodyObject(req.body));
    // The signing secret of the board's webhooks is shown this once.
    res.status(201).json({ ...boardJson(board), webhook_secret: webhookSecret });
  });
  r.patch('/admin/boards/:id', async (req, res) => {
    const board = await deps.admin.update(String(req.params.id), validate.bodyObject(req.body));
    res.json(boardJson(board));
  });
  r.delete('/admin/boards/:id', async (req, res) => {
    await deps.admin.delete(String(req.params.id));
    res.status(204).end();
  });
  return r;
}
