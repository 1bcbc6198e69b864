/**
 * The timing of period closes and their webhooks, on BullMQ queues of the
 * control shard's Redis:
 *
 * - `periods`: one job scheduler per board with a reset (BullMQ's
 *   upsertJobScheduler, the board's boundaries as a cron pattern in UTC)
 *   fires a `boundary` job at each boundary; it queues a `close` job for the
 *   period that just ended, delayed by the grace for in-flight writes, with
 *   one job id per (board, period) so that every trigger of one close
 *   is one job. A sync every PERIOD_SYNC_MS keeps the schedulers in step with
 *   the board definitions and queues the close of any ended period a
 *   missed boundary left open.
 * - `webhooks`: one job per delivery (`period.closed`), retried with
 *   exponential backoff; a delivery that spends its attempts stays in
 *   webhook_deliveries as `failed` for replay.
 *
 * Closes themselves are exactly once whatever happens to the jobs
 * (closer.ts); jobs only decide when they are attempted. A job that finds
 * the control-plane Postgres unavailable (StoreUnavailable, see
 * {@link postponeOutage}) is tried again after PERIOD_SYNC_MS without
 * spending an attempt, however long the outage lasts: a close is never
 * dropped, and a webhook's attempts are kept for its receiver's failures.
 */
import { createHmac } from 'node:crypto';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import {
  DEFAULT_PROJECT,
  isDefaultProject,
  parseProjectScope,
  periodAt,
  previousPeriod,
  projectScope,
  queuePrefix,
  type Board,
  type ProjectRef,
  type ResetRule,
  StoreUnavailable,
  type Topology,
} from '@lb/common/contracts';
import { connectionEnded, connectionFor, type BoardsRepo, type Logger, type PgPools } from '@lb/common/platform';
import type { PeriodCloser } from './closer.js';

export const PERIODS_QUEUE = 'periods';
export const WEBHOOKS_QUEUE = 'webhooks';

export interface PeriodJobSettings {
  keyPrefix: string;
  /** PERIOD_GRACE_MS: how long after a period's end its close waits for writes in flight. */
  graceMs: number;
  /** PERIOD_SYNC_MS: how often schedulers and open deliveries are brought in step. */
  syncMs: number;
  /** WEBHOOK_ATTEMPTS and WEBHOOK_BACKOFF_MS of a delivery. */
  webhookAttempts: number;
  webhookBackoffMs: number;
  webhookTimeoutMs: number;
  /** BullMQ lock and stalled-check of the period workers (a dead closer's job is retried after about this long). */
  lockMs: number;
  stalledIntervalMs: number;
}

/** The cron pattern (UTC) of a reset's boundaries. */
export function boundaryPattern(rule: ResetRule): string | undefined {
  if (rule === 'none') return undefined;
  if (rule === 'daily') return '0 0 * * *';
  if (rule === 'weekly') return '0 0 * * 1';
  if (rule === 'monthly') return '0 0 1 * *';
  return rule.cron;
}

// BullMQ job ids cannot contain ':' (cron period ids do: 2026-12-01T18:00Z).
const safeId = (s: string): string => s.replace(/[:/]/g, '_');

/** The project of a job (boundary, close, delivery): its `project` scope; a job queued before tenancy has none and is the default project's. */
function jobProject(data: { project?: unknown }): ProjectRef {
  if (data.project === undefined) return DEFAULT_PROJECT;
  const p = typeof data.project === 'string' ? parseProjectScope(data.project) : undefined;
  if (!p) throw new Error(`period job with a malformed project ${JSON.stringify(data.project)}`);
  return p;
}

/**
 * How a project is named in its job ids: nothing for the default project
 * (its ids are those of before tenancy, so schedulers and jobs queued then
 * are the same ones), else `<tenant>.<project>.` (`.` is in no tenant or
 * project id, so ids of two projects never meet).
 */
const projectPart = (project: ProjectRef): string => (isDefaultProject(project) ? '' : `${project.tenant}.${project.project}.`);

/** The id of a project's board's job scheduler. */
export const schedulerIdOf = (project: ProjectRef, board: string): string => `boundary_${projectPart(project)}${board}`;

/** The id of the close job of a project's board's period: one job however many triggers. */
export const closeJobIdOf = (project: ProjectRef, board: string, period: string): string => `close_${projectPart(project)}${board}_${safeId(period)}`;

/** The signature header value of a webhook body: `sha256=<hex HMAC-SHA256 of the raw body>`. */
export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A job's data with its project (none for the default project: the data of before tenancy). */
function jobData<T extends object>(project: ProjectRef, data: T): T & { project?: string } {
  return isDefaultProject(project) ? data : { ...data, project: projectScope(project) };
}

export class PeriodJobs {
  queue: Queue;
  webhooks: Queue;
  private worker: Worker | undefined;
  private hookWorker: Worker | undefined;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private readonly control: string;

  constructor(
    private readonly deps: { topology: Topology; pools: PgPools; boards: BoardsRepo; closer: PeriodCloser; log: Logger },
    private readonly s: PeriodJobSettings,
  ) {
    const shard = deps.topology.shards[0]!;
    this.control = shard.id;
    this.queue = this.openQueue(PERIODS_QUEUE);
    this.webhooks = this.openQueue(WEBHOOKS_QUEUE);
  }

  private openQueue(name: string): Queue {
    const shard = this.deps.topology.shards[0]!;
    const q = new Queue(name, { connection: connectionFor(shard.redis, false), prefix: queuePrefix(shard.id, this.s.keyPrefix) });
    q.on('error', (err) => this.deps.log.debug('period queue error', { err: err.message }));
    return q;
  }

  /** Queues whose connection ended for good (connectionEnded) are made again. */
  private reopenQueues(): void {
    const ended = [this.queue, this.webhooks];
    this.queue = this.openQueue(PERIODS_QUEUE);
    this.webhooks = this.openQueue(WEBHOOKS_QUEUE);
    this.deps.log.warn('period queues\' connection ended for good; made new ones');
    for (const q of ended) void q.disconnect().catch(() => undefined);
  }

  /** Starts the workers of both queues and the periodic sync. */
  start(): void {
    const shard = this.deps.topology.shards[0]!;
    const prefix = queuePrefix(shard.id, this.s.keyPrefix);
    this.worker = new Worker(PERIODS_QUEUE, (job, token) => this.postponeOutage(job, token, () => this.process(job, token)), {
      connection: connectionFor(shard.redis, true),
      prefix,
      concurrency: 2,
      lockDuration: this.s.lockMs,
      stalledInterval: this.s.stalledIntervalMs,
    });
    this.hookWorker = new Worker(WEBHOOKS_QUEUE, (job, token) => this.postponeOutage(job, token, () => this.deliver(jobProject(job.data), String(job.data.id))), {
      connection: connectionFor(shard.redis, true),
      prefix,
      concurrency: 4,
    });
    this.hookWorker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) void this.markFailed(job.data, String(job.data.id), err.message);
    });
    for (const w of [this.worker, this.hookWorker]) w.on('error', (err) => this.deps.log.debug('period worker error', { err: err.message }));
    void this.sync();
    this.timer = setInterval(() => void this.sync(), this.s.syncMs);
    this.timer.unref();
  }

  /** Brings the job schedulers in step with the boards, and queues what a missed boundary or delivery left. */
  sync(now = Date.now()): Promise<void> {
    this.syncing ??= this.doSync(now)
      .catch((e: unknown) => {
        this.deps.log.warn('period sync failed; next time', { err: e as Error });
        if (connectionEnded(e)) this.reopenQueues();
      })
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async doSync(now: number): Promise<void> {
    // Every project's live boards (a deleted project's are marked deleted with it).
    const boards = (await this.deps.boards.all()).filter((b) => b.board.deletedAt === null);
    const wanted = new Map<string, { project: ProjectRef; board: Board }>();
    for (const b of boards) if (boundaryPattern(b.board.resetRule)) wanted.set(schedulerIdOf(b.project, b.board.id), b);
    for (const [id, { project, board }] of wanted) {
      await this.queue.upsertJobScheduler(id, { pattern: boundaryPattern(board.resetRule)!, tz: 'UTC' }, { name: 'boundary', data: jobData(project, { board: board.id }) });
      await this.queueEndedPeriod(project, board, now);
    }
    for (const s of await this.queue.getJobSchedulers()) if (!wanted.has(s.key)) await this.queue.removeJobScheduler(s.key);
    // Every project's pending deliveries: the one system-wide read, through a definer function (sql/008).
    const pending = await this.deps.pools.run(this.control, (pool) =>
      pool.query<{ tenant_id: string; project_id: string; id: string }>(`SELECT tenant_id, project_id, id FROM lb_pending_webhook_deliveries(interval '10 seconds')`),
    'period');
    for (const d of pending.rows) await this.queueDelivery({ tenant: d.tenant_id, project: d.project_id }, d.id);
  }

  /** Queues the close of a project's board's period before the current one, unless it is archived already. */
  async queueEndedPeriod(project: ProjectRef, board: Board, now: number): Promise<void> {
    const ended = previousPeriod(board.resetRule, periodAt(board.resetRule, now));
    if (!ended || ended.endsAt === undefined) return;
    const done = await this.deps.pools.inScope(this.control, project, (c) => c.query('SELECT 1 FROM period_closes WHERE board = $1 AND period = $2', [board.id, ended.id]), 'period');
    if (done.rowCount === 1) return;
    await this.queue.add(
      'close',
      jobData(project, { board: board.id, period: ended.id }),
      {
        jobId: closeJobIdOf(project, board.id, ended.id),
        delay: Math.max(0, ended.endsAt + this.s.graceMs - now),
        attempts: 20,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
        removeOnFail: false,
      },
    );
  }

  /** Queues a project's webhook delivery (the job id makes a repeat harmless). */
  async queueDelivery(project: ProjectRef, id: string): Promise<void> {
    await this.webhooks.add('deliver', { id, project: projectScope(project) }, {
      jobId: `hook_${projectPart(project)}${safeId(id)}`,
      attempts: this.s.webhookAttempts,
      backoff: { type: 'exponential', delay: this.s.webhookBackoffMs },
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  /**
   * Runs a job's work; when it finds the control-plane Postgres unavailable
   * (StoreUnavailable from PgPools.run: the one classification), the job is
   * moved to delayed for PERIOD_SYNC_MS and DelayedError thrown: BullMQ
   * 6.7's Job.moveToDelayed skips the attempt (skipAttempt), so an outage of
   * any length neither fails a close nor uses up a webhook's attempts.
   * Other errors (Redis, a receiver answering 500) spend attempts as before.
   */
  private async postponeOutage<T>(job: Job, token: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof StoreUnavailable && e.store === 'postgres')) throw e;
      this.deps.log.warn('postgres unavailable; period job postponed, attempts kept', { job: job.id, retry_ms: this.s.syncMs, err: (e.cause as Error | undefined)?.message ?? e.message });
      await job.moveToDelayed(Date.now() + this.s.syncMs, token);
      throw new DelayedError();
    }
  }

  private async process(job: Job, token: string | undefined): Promise<unknown> {
    const project = jobProject(job.data);
    if (job.name === 'boundary') {
      const board = (await this.deps.boards.ofProject(project)).find((b) => b.id === job.data.board && b.deletedAt === null);
      if (board) await this.queueEndedPeriod(project, board, Date.now());
      return undefined;
    }
    const outcome = await this.deps.closer.close(project, String(job.data.board), String(job.data.period), Date.now(), this.s.graceMs);
    if (outcome === 'not_ended') {
      // Early (a clock behind, or a job moved forward): try again after the grace.
      await job.moveToDelayed(Date.now() + this.s.graceMs, token);
      throw new DelayedError();
    }
    return outcome;
  }

  /** POSTs one of a project's deliveries, signed with the board's secret; throws (to be retried) unless the receiver answers 2xx. */
  async deliver(project: ProjectRef, id: string): Promise<void> {
    const q = (text: string, values: unknown[]) => this.deps.pools.inScope(this.control, project, (c) => c.query(text, values), 'webhook');
    const r = await this.deps.pools.inScope(this.control, project, (c) =>
      c.query<{ board: string; url: string; payload: unknown; status: string }>('SELECT board, url, payload, status FROM webhook_deliveries WHERE id = $1', [id]),
    'webhook');
    const d = r.rows[0];
    if (!d || d.status === 'delivered') return;
    const body = JSON.stringify(d.payload);
    const secret = (await this.deps.boards.webhookSecret(project, d.board)) ?? '';
    let error: string | undefined;
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-leaderboard-event': 'period.closed',
          'x-leaderboard-delivery': id,
          'x-leaderboard-signature': signWebhook(secret, body),
        },
        body,
        signal: AbortSignal.timeout(this.s.webhookTimeoutMs),
        redirect: 'manual',
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) error = `receiver answered ${res.status}`;
    } catch (e) {
      error = (e as Error).message;
    }
    if (error === undefined) {
      await q(`UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL WHERE id = $1`, [id]);
      return;
    }
    await q('UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2 WHERE id = $1', [id, error]);
    throw new Error(error);
  }

  private async markFailed(data: { project?: unknown }, id: string, err: string): Promise<void> {
    await Promise.resolve()
      .then(() => jobProject(data))
      .then((project) => this.deps.pools.inScope(this.control, project, (c) => c.query(`UPDATE webhook_deliveries SET status = 'failed', last_error = $2 WHERE id = $1 AND status = 'pending'`, [id, err]), 'webhook'))
      .catch(() => undefined);
    this.deps.log.warn('webhook delivery failed for good; kept for replay', { delivery: id, err });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.syncing;
    await Promise.all([this.worker?.close(), this.hookWorker?.close()]);
    await Promise.all([this.queue.close(), this.webhooks.close()]);
  }
}
