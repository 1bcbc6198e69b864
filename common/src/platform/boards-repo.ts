/**
 * Board definitions in the control-plane database (the topology's first
 * shard). Every query is parameterised; connection failures surface as
 * StoreUnavailable (PgPools.run). A project's boards are read and written
 * in that project's row scope (PgPools.inScope, row-level security of
 * sql/008); only the catalog's load of every project's definitions crosses
 * projects, through the definer functions lb_all_boards() and
 * lb_boards_revision(), which return no webhook secret.
 */
import { randomBytes } from 'node:crypto';
import type { PgPools } from './pg-pools.js';
import type { Board, NewBoard, SortOrder, Operator, TieBreak } from '../contracts/boards/definition.js';
import { parseReset } from '../contracts/boards/periods.js';
import type { ProjectRef } from '../contracts/tenancy.js';

/** A board with the project it belongs to. */
export interface ProjectBoard {
  readonly project: ProjectRef;
  readonly board: Board;
}

interface Row {
  id: string;
  title: string;
  sort_order: SortOrder;
  operator: Operator;
  reset: string;
  tie_break: TieBreak;
  min_score: string;
  max_score: string;
  max_metadata_bytes: number;
  client_writes: boolean;
  allow_operator_override: boolean;
  webhook_url: string | null;
  keep_periods: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLUMNS = `id, title, sort_order, operator, reset, tie_break, min_score, max_score, max_metadata_bytes,
  client_writes, allow_operator_override, webhook_url, keep_periods, created_at, updated_at, deleted_at`;

function toBoard(r: Row): Board {
  return {
    id: r.id,
    title: r.title,
    order: r.sort_order,
    operator: r.operator,
    reset: r.reset,
    resetRule: parseReset(r.reset),
    tieBreak: r.tie_break,
    minScore: Number(r.min_score),
    maxScore: Number(r.max_score),
    maxMetadataBytes: r.max_metadata_bytes,
    clientWrites: r.client_writes,
    allowOperatorOverride: r.allow_operator_override,
    webhookUrl: r.webhook_url,
    keepPeriods: r.keep_periods,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    deletedAt: r.deleted_at ? r.deleted_at.toISOString() : null,
  };
}

export class BoardsRepo {
  /** @param controlShard the shard whose database is the control plane */
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /** Every project's boards, deleted ones included (their ids stay taken), by project then id. */
  async all(): Promise<ProjectBoard[]> {
    const r = await this.pools.run(this.controlShard, (p) => p.query<Row & { tenant_id: string; project_id: string }>('SELECT * FROM lb_all_boards()'));
    return r.rows.map((row) => ({ project: { tenant: row.tenant_id, project: row.project_id }, board: toBoard(row) }));
  }

  /** One project's boards, deleted ones included. */
  async ofProject(project: ProjectRef): Promise<Board[]> {
    const r = await this.pools.inScope(this.controlShard, project, (c) => c.query<Row>(`SELECT ${COLUMNS} FROM boards ORDER BY id`));
    return r.rows.map(toBoard);
  }

  /** The largest revision of any project's boards: it moves whenever any definition changes. */
  async revision(): Promise<string> {
    const r = await this.pools.run(this.controlShard, (p) => p.query<{ rev: string }>('SELECT lb_boards_revision() AS rev'));
    return r.rows[0]!.rev;
  }

  /**
   * Inserts a board with a new webhook signing secret; undefined when the
   * id is taken (by a live or a deleted board). The secret is returned only
   * here (the admin who creates the board is shown it once).
   */
  async create(project: ProjectRef, b: NewBoard): Promise<{ board: Board; webhookSecret: string } | undefined> {
    const secret = randomBytes(24).toString('base64url');
    const r = await this.pools.inScope(this.controlShard, project, (p) =>
      p.query<Row>(
        `INSERT INTO boards (id, title, sort_order, operator, reset, tie_break, min_score, max_score, max_metadata_bytes,
           client_writes, allow_operator_override, webhook_url, keep_periods, webhook_secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (tenant_id, project_id, id) DO NOTHING
         RETURNING ${COLUMNS}`,
        [b.id, b.title, b.order, b.operator, b.reset, b.tieBreak, b.minScore, b.maxScore, b.maxMetadataBytes, b.clientWrites, b.allowOperatorOverride, b.webhookUrl, b.keepPeriods, secret],
      ),
    );
    return r.rows[0] ? { board: toBoard(r.rows[0]), webhookSecret: secret } : undefined;
  }

  /** The key a board's webhooks are signed with (null for boards made before it existed). */
  async webhookSecret(project: ProjectRef, id: string): Promise<string | null> {
    const r = await this.pools.inScope(this.controlShard, project, (p) => p.query<{ webhook_secret: string | null }>('SELECT webhook_secret FROM boards WHERE id = $1', [id]));
    return r.rows[0]?.webhook_secret ?? null;
  }

  /** Writes the mutable fields of a live board; undefined when there is none. */
  async update(project: ProjectRef, b: NewBoard): Promise<Board | undefined> {
    const r = await this.pools.inScope(this.controlShard, project, (p) =>
      p.query<Row>(
        `UPDATE boards SET title = $2, min_score = $3, max_score = $4, max_metadata_bytes = $5, client_writes = $6,
           webhook_url = $7, keep_periods = $8, updated_at = now(), revision = nextval('boards_revision_seq')
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING ${COLUMNS}`,
        [b.id, b.title, b.minScore, b.maxScore, b.maxMetadataBytes, b.clientWrites, b.webhookUrl, b.keepPeriods],
      ),
    );
    return r.rows[0] ? toBoard(r.rows[0]) : undefined;
  }

  /** Marks a live board deleted; false when there was none. */
  async markDeleted(project: ProjectRef, id: string): Promise<boolean> {
    const r = await this.pools.inScope(this.controlShard, project, (p) =>
      p.query(`UPDATE boards SET deleted_at = now(), updated_at = now(), revision = nextval('boards_revision_seq') WHERE id = $1 AND deleted_at IS NULL`, [id]),
    );
    return r.rowCount === 1;
  }
}
