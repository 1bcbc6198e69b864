/**
 * Every replica's copy of the board definitions. Loaded at start, then the
 * largest revision is read every BOARD_REFRESH_MS and the copy reloaded when
 * it moved, so a change made through any replica (or by hand in SQL) is
 * seen everywhere within that time. The replica that made a change reloads
 * at once.
 *
 * Postgres being down never stops the boards that are known: the copy keeps
 * serving, and `main` is known even before the first load (the original
 * endpoints never depend on the control plane). A board the copy does not
 * know while Postgres is unavailable is StoreUnavailable (503), not a 404:
 * it may have been created through another replica.
 *
 * Board ids are a project's own: the copy is kept per project, and a
 * board of another project is not there for a lookup to find. Every
 * project has a board `main`, as migration 003 defines it, until the
 * project stores a definition of its own.
 */
import { MAIN_BOARD, parseReset, projectScope, StoreUnavailable, type Board, type ProjectRef } from '@lb/common/contracts';
import { type BoardsRepo, type Logger } from '@lb/common/platform';

/**
 * `main` as migration 003 defines it, until the first load (and the `main`
 * of every project that has not changed its own: it has no row): `desc`, `set`
 * with any operator per write, no reset, `shared` ties, metadata up to
 * 1,024 bytes, scores 0 ... MAX_SCORE.
 */
export const MAIN_DEFAULT: Board = {
  id: MAIN_BOARD,
  title: 'Main',
  order: 'desc',
  operator: 'set',
  reset: 'none',
  resetRule: parseReset('none'),
  tieBreak: 'shared',
  minScore: 0,
  maxScore: Number.MAX_SAFE_INTEGER,
  maxMetadataBytes: 1024,
  clientWrites: true,
  allowOperatorOverride: true,
  webhookUrl: null,
  keepPeriods: 2,
  createdAt: new Date(0).toISOString(),
  updatedAt: new Date(0).toISOString(),
  deletedAt: null,
};

export class BoardCatalog {
  /** The definitions by project scope, then by id. */
  private boards = new Map<string, Map<string, Board>>();
  private readonly mainDefault: Board;
  private revision: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  /** Why the last load failed (undefined after a load that worked). */
  private loadError: unknown;

  /**
   * @param maxScore MAX_SCORE: the bound of `main`'s scores (its stored
   *   definition may lower it, not raise it), as the original endpoints
   *   always had it
   */
  constructor(
    private readonly repo: BoardsRepo,
    private readonly refreshMs: number,
    private readonly log: Logger,
    private readonly maxScore: number = Number.MAX_SAFE_INTEGER,
  ) {
    this.mainDefault = this.bounded(MAIN_DEFAULT);
  }

  /** `main` with MAX_SCORE as its highest score at most. */
  private bounded(main: Board): Board {
    return main.maxScore <= this.maxScore ? main : { ...main, maxScore: this.maxScore };
  }

  private of(project: ProjectRef): Map<string, Board> | undefined {
    return this.boards.get(projectScope(project));
  }

  /** A project's board `main` (always known: the original endpoints never depend on the control plane). */
  main(project: ProjectRef): Board {
    return this.of(project)?.get(MAIN_BOARD) ?? this.mainDefault;
  }

  /** Loads the definitions (a failure is logged; polling retries) and starts polling. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A live board of a project, or undefined (unknown, deleted, or another project's). */
  get(project: ProjectRef, id: string): Board | undefined {
    const b = this.getAny(project, id);
    return b && b.deletedAt === null ? b : undefined;
  }

  /** The load that misses wait for: it starts once the one in flight (which may predate them) is done. */
  private missLoad: Promise<void> | undefined;

  /**
   * A live board; on a miss, the copy is reloaded first, so a board created
   * through another replica is found at once rather than after the next
   * poll. A miss is answered from a load that started after it arrived
   * (never from one that may predate an outage or a creation); concurrent
   * misses share that load, so a flood of unknown ids costs at most one
   * revision query at a time. A miss that cannot be checked because
   * Postgres is unavailable throws StoreUnavailable.
   */
  async lookup(project: ProjectRef, id: string): Promise<Board | undefined> {
    const known = this.get(project, id);
    if (known || this.getAny(project, id)) return known;
    this.missLoad ??= (async () => {
      await this.inFlight;
      this.missLoad = undefined;
      await this.poll();
    })();
    await this.missLoad;
    if (!this.getAny(project, id) && this.loadError instanceof StoreUnavailable) throw this.loadError;
    return this.get(project, id);
  }

  /** Any board a project ever created, deleted ones included (their ids stay taken), and its `main`. */
  getAny(project: ProjectRef, id: string): Board | undefined {
    return this.of(project)?.get(id) ?? (id === MAIN_BOARD ? this.mainDefault : undefined);
  }

  /** A project's live boards, `main` first. */
  live(project: ProjectRef): Board[] {
    const own = [...(this.of(project)?.values() ?? [])].filter((b) => b.deletedAt === null && b.id !== MAIN_BOARD);
    return [this.main(project), ...own];
  }

  /** Reloads now (after a change made here), whatever the revision says. */
  async reload(): Promise<void> {
    // A poll in flight may have read the revision before the change.
    await this.inFlight;
    this.revision = undefined;
    await this.poll();
  }

  /** Reloads when the control plane's revision moved (one poll at a time). */
  private poll(): Promise<void> {
    this.inFlight ??= this.load().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async load(): Promise<void> {
    try {
      const rev = await this.repo.revision();
      this.loadError = undefined;
      if (rev === this.revision) return;
      const boards = new Map<string, Map<string, Board>>();
      for (const { project, board } of await this.repo.all()) {
        const scope = projectScope(project);
        let own = boards.get(scope);
        if (!own) boards.set(scope, (own = new Map()));
        own.set(board.id, board.id === MAIN_BOARD ? this.bounded(board) : board);
      }
      this.boards = boards;
      this.revision = rev;
    } catch (e) {
      this.loadError = e;
      this.log.warn('board definitions could not be reloaded; the known ones stay in use', { err: e as Error });
    }
  }
}
