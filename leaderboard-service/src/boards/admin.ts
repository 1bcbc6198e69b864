/**
 * Board administration: create, change and delete definitions in the
 * control plane, then make this replica see the change at once (the others
 * see it within BOARD_REFRESH_MS). Deleting a board removes its Redis keys
 * on every shard; its Postgres rows and archives stay, marked deleted.
 * Every call acts on one project's boards.
 */
import { AppError, MAIN_BOARD, parseBoardChanges, parseNewBoard, type Board, type ProjectRef } from '@lb/common/contracts';
import { type BoardsRepo } from '@lb/common/platform';
import { BoardStore } from '../redis/board-store.js';
import type { ShardStores } from '../redis/shard-store.js';
import type { BoardCatalog } from './catalog.js';

export class BoardAdmin {
  constructor(
    private readonly repo: BoardsRepo,
    private readonly catalog: BoardCatalog,
    private readonly stores: ShardStores,
  ) {}

  /** Creates a board; its webhook signing secret is returned only now. */
  async create(project: ProjectRef, body: Record<string, unknown>): Promise<{ board: Board; webhookSecret: string }> {
    const nb = parseNewBoard(body);
    const created = await this.repo.create(project, nb);
    if (!created) {
      await this.catalog.reload();
      const old = this.catalog.getAny(project, nb.id);
      throw new AppError('board_exists', `board ${nb.id} already exists${old?.deletedAt ? ' (deleted: its id is not reused)' : ''}`, {
        board: nb.id,
        ...(old?.deletedAt && { deleted: true }),
      });
    }
    await this.catalog.reload();
    return created;
  }


  async update(project: ProjectRef, id: string, body: Record<string, unknown>): Promise<Board> {
    const current = await this.live(project, id);
    const updated = await this.repo.update(project, parseBoardChanges(current, body));
    if (!updated) throw notFound(id);
    await this.catalog.reload();
    return updated;
  }

  async delete(project: ProjectRef, id: string): Promise<void> {
    if (id === MAIN_BOARD) throw new AppError('board_protected', 'the board main cannot be deleted', { board: id });
    await this.live(project, id);
    if (!(await this.repo.markDeleted(project, id))) throw notFound(id);
    await this.catalog.reload();
    await Promise.all(this.stores.all().map((s) => new BoardStore(s, project).purgeBoard(id)));
  }

  /** A live board (looked up again on a miss: it may be new), or 404 `board_not_found`. */
  async live(project: ProjectRef, id: string): Promise<Board> {
    const b = await this.catalog.lookup(project, id);
    if (!b) throw notFound(id);
    return b;
  }
}

export function notFound(id: string): AppError {
  return new AppError('board_not_found', `no board ${id}`, { board: id });
}
