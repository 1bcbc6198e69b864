/**
 * Forwards one request to a replica, with failover.
 *
 * http-proxy-middleware (over httpxy) does the proxying: header copying,
 * streaming the answer back, hop-by-hop details. It has no notion of "try the
 * next upstream", so the retry loop lives here, around it:
 *
 * - Each attempt picks a replica from the pool and calls the HPM middleware
 *   again; its `router` option returns the replica this attempt chose
 *   (per-request state hangs off `req` under a symbol).
 * - Failures arrive on HPM's `error` event (httpxy emits it instead of
 *   rejecting when a listener exists), where this module decides: retry on
 *   the next healthy replica, or answer 502/504 through `next(err)`.
 * - A POST is replayable only because its body was buffered before the first
 *   attempt (`http/body.ts`) and is written into each attempt's upstream
 *   request in the `proxyReq` event; the original stream is already drained,
 *   so httpxy's own `req.pipe(proxyReq)` just ends the request.
 * - httpxy's `proxyTimeout` destroys the request without saying it was a
 *   timeout (the error is a plain ECONNRESET), and only measures socket idle
 *   time once connected; a per-attempt timer here marks the attempt as timed
 *   out and destroys it with a recognisable error instead.
 *
 * Retry policy:
 * - connect failure (ECONNREFUSED and friends: nothing was sent): the replica
 *   leaves rotation and any request, POST included, moves to the next
 *   healthy replica not tried yet. These retries are free (bounded by the
 *   number of replicas).
 * - timeout: the replica leaves rotation; a GET/HEAD is retried once on the
 *   next healthy replica, anything else is answered 504 `gateway_timeout`
 *   (the write may have happened).
 * - any other upstream error (reset mid-request...): GET/HEAD retried once,
 *   anything else 502 `bad_gateway`. The replica stays in rotation: a reset
 *   alone (e.g. a kept-alive socket closing under us) does not prove it is
 *   down, and if it is, the next connect is refused.
 */
import http from 'node:http';
import https from 'node:https';
import { createProxyMiddleware, type Plugin, type RequestHandler } from 'http-proxy-middleware';
import { AppError } from '@lb/common/contracts';
import { activeContext, endSpan, injectHeaders, requestRoute, SpanKind, startSpan, tracingOn, unsampledTraceparent, type Logger, type TraceContext, type TraceSpan } from '@lb/common/platform';
import type { ForwarderMetrics } from './metrics.js';
import type { Upstream, UpstreamPool } from './upstreams.js';

/** Errors meaning the connection was never established, so the request was never sent. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const TIMEOUT_CODE = 'LB_UPSTREAM_TIMEOUT';

const STATE = Symbol('lb.forward');

interface ForwardState {
  readonly body: Buffer | undefined;
  /** GET/HEAD: may be retried once after a failure other than a refused connection. */
  readonly idempotent: boolean;
  readonly next: (err?: unknown) => void;
  readonly tried: Upstream[];
  upstream: Upstream | undefined;
  proxyReq: http.ClientRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  timedOut: boolean;
  /** The one retry after a non-connect failure has been used. */
  retried: boolean;
  /** Response headers arrived or a final answer was chosen: later events are stale. */
  settled: boolean;
  lastFailure: 'timeout' | 'error' | undefined;
  /** Tracing on: the request's SERVER span context, parent of one CLIENT span per attempt. */
  readonly trace: TraceContext | undefined;
  /** The current attempt's CLIENT span (tracing on). */
  span: TraceSpan | undefined;
}

type ForwardedRequest = http.IncomingMessage & { [STATE]?: ForwardState };

const stateOf = (req: http.IncomingMessage | undefined): ForwardState | undefined => (req as ForwardedRequest | undefined)?.[STATE];

export interface ForwarderOptions {
  pool: UpstreamPool;
  /** Time a replica has to send response headers, per attempt. */
  timeoutMs: number;
  /** Most keep-alive sockets to one replica. */
  maxSockets: number;
  log: Logger;
  /** Attempts, retries and failovers (undefined: metrics off). */
  metrics?: ForwarderMetrics | undefined;
}

export class Forwarder {
  private readonly pool: UpstreamPool;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly proxy: RequestHandler;
  private readonly metrics: ForwarderMetrics | undefined;
  private draining = false;

  constructor(opts: ForwarderOptions) {
    this.pool = opts.pool;
    this.metrics = opts.metrics;
    this.timeoutMs = opts.timeoutMs;
    this.log = opts.log;
    const agentOptions = { keepAlive: true, maxSockets: opts.maxSockets, maxFreeSockets: opts.maxSockets, scheduling: 'lifo' } as const;
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);

    this.proxy = createProxyMiddleware({
      // The replica was chosen by `attempt`; the router only hands it over.
      // `options` is HPM's per-request copy, so choosing the agent here is safe.
      router: (req, _res, options) => {
        const s = stateOf(req)!;
        const target = s.upstream!.target;
        options.agent = target.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
        return target;
      },
      // X-Forwarded-* are set by http/headers.ts with the trusted-proxy rule.
      xfwd: false,
      // No default plugins: their logger builds a URL per response and their
      // error responder answers in plain text. `events` below replaces both.
      ejectPlugins: true,
      plugins: [this.events],
    });
  }

  /**
   * Forwards `req` to a healthy replica and streams its answer to `res`;
   * failures the client should see go to `next(err)` as AppErrors.
   *
   * @param body the buffered request body, if it had one (written to every attempt)
   */
  forward(req: http.IncomingMessage, res: http.ServerResponse, next: (err?: unknown) => void, body: Buffer | undefined): void {
    const s: ForwardState = {
      body,
      idempotent: req.method === 'GET' || req.method === 'HEAD',
      next,
      tried: [],
      upstream: undefined,
      proxyReq: undefined,
      timer: undefined,
      timedOut: false,
      retried: false,
      settled: false,
      lastFailure: undefined,
      // Held here: upstream socket events may run in another request's context (kept-alive sockets).
      trace: tracingOn ? activeContext() : undefined,
      span: undefined,
    };
    (req as ForwardedRequest)[STATE] = s;
    this.attempt(req, res, s);
  }

  /**
   * Graceful stop: answers still on their way close their client connection
   * too (requests arriving from now on are handled in app.ts), so no client
   * reuses a socket the stopping server is about to close.
   */
  drain(): void {
    this.draining = true;
  }

  /** Closes idle upstream connections (shutdown). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private attempt(req: http.IncomingMessage, res: http.ServerResponse, s: ForwardState): void {
    const u = this.pool.pick(s.tried);
    if (u === undefined) {
      this.fail(req, s);
      return;
    }
    s.upstream = u;
    if (s.tried.length > 0) this.metrics?.retry();
    s.tried.push(u);
    if (s.trace !== undefined) startAttemptSpan(req, s, u);
    s.proxyReq = undefined;
    s.timedOut = false;
    s.timer = setTimeout(onAttemptTimeout, this.timeoutMs, s);
    void this.proxy(req, res, s.next);
  }

  /** Answers the client with the error the last failure calls for. */
  private fail(req: http.IncomingMessage, s: ForwardState): void {
    s.settled = true;
    clearTimeout(s.timer);
    let err: AppError;
    if (s.lastFailure === 'timeout') err = new AppError('gateway_timeout', 'the leaderboard service did not answer in time');
    else if (s.lastFailure === 'error') err = new AppError('bad_gateway', 'the leaderboard service could not be reached');
    else err = new AppError('bad_gateway', 'no healthy leaderboard service replica');
    this.log.warn('request failed at the gateway', {
      method: req.method,
      url: req.url,
      request_id: req.headers['x-request-id'],
      tried: s.tried.map((u) => u.url),
      error: err.code,
    });
    s.next(err);
  }

  /** The httpxy event handlers: body replay, X-Upstream, failure handling. */
  private readonly events: Plugin = (proxyServer) => {
    proxyServer.on('proxyReq', (proxyReq, req) => {
      const s = stateOf(req);
      if (!s) return;
      s.proxyReq = proxyReq;
      if (s.timedOut) {
        proxyReq.destroy(timeoutError(this.timeoutMs));
        return;
      }
      // The client's Connection (say `close` from nginx) describes its own
      // socket; the upstream socket is kept alive. Overwritten rather than
      // removed: removing it also stops Node from writing its own.
      if (req.headers.connection !== undefined) proxyReq.setHeader('connection', 'keep-alive');
      // The replica's SERVER span is the child of this attempt's span; a
      // request not sampled hands on that decision, so the replica takes none.
      if (s.span !== undefined) injectHeaders(s.trace!, s.span, proxyReq);
      else if (tracingOn) {
        const tp = unsampledTraceparent(req);
        if (tp !== undefined) proxyReq.setHeader('traceparent', tp);
      }
      if (s.body !== undefined) proxyReq.write(s.body);
    });

    proxyServer.on('proxyRes', (proxyRes, req, res) => {
      const s = stateOf(req);
      if (!s) return;
      s.settled = true;
      clearTimeout(s.timer);
      if (s.span !== undefined) {
        s.span.setAttribute('http.response.status_code', proxyRes.statusCode ?? 0);
        endAttemptSpan(s);
      }
      res.setHeader('X-Upstream', s.upstream!.url);
      if (this.metrics) {
        this.metrics.attempt(s.upstream!.url, 'answered');
        if (s.tried.length > 1) this.metrics.failover();
      }
      // The replica's connection headers describe the gateway's socket to it,
      // not the client's: httpxy then answers with the client's own choice.
      delete proxyRes.headers.connection;
      delete proxyRes.headers['keep-alive'];
      if (this.draining) req.headers.connection = 'close';
    });

    proxyServer.on('econnreset', (_err, req) => {
      // The client went away: nothing to answer, and no fault of the replica.
      const s = stateOf(req);
      if (!s) return;
      s.settled = true;
      clearTimeout(s.timer);
      endAttemptSpan(s, new Error('the client closed the connection'));
    });

    proxyServer.on('error', (err: NodeJS.ErrnoException, req, res) => {
      const s = stateOf(req);
      if (!s || s.settled || !req || !(res instanceof http.ServerResponse)) return;
      clearTimeout(s.timer);
      endAttemptSpan(s, s.timedOut ? timeoutError(this.timeoutMs) : err);
      if (res.destroyed || res.headersSent) {
        s.settled = true;
        if (!res.destroyed) res.destroy();
        return;
      }
      const u = s.upstream!;
      const connectFailed = err.code !== undefined && CONNECT_FAILURES.has(err.code);
      if (s.timedOut || connectFailed) {
        const reason = s.timedOut ? `no answer within ${this.timeoutMs} ms` : `connect failed: ${err.code}`;
        if (this.pool.markDown(u, reason)) this.log.warn('upstream out of rotation', { upstream: u.url, reason });
      }
      s.lastFailure = s.timedOut ? 'timeout' : 'error';
      this.metrics?.attempt(u.url, s.timedOut ? 'timeout' : connectFailed ? 'connect_failed' : 'error');
      if (connectFailed || (s.idempotent && !s.retried)) {
        if (!connectFailed) s.retried = true;
        this.log.debug('retrying on the next replica', { method: req.method, url: req.url, failed: u.url, error: err.code ?? err.message });
        this.attempt(req, res, s);
      } else {
        this.fail(req, s);
      }
    });
  };
}

/**
 * A CLIENT span for an attempt: retries and failovers show as sibling
 * attempts under the request's SERVER span, named like it (route template).
 */
function startAttemptSpan(req: http.IncomingMessage, s: ForwardState, u: Upstream): void {
  const method = req.method ?? 'GET';
  s.span = startSpan(
    `${method} ${requestRoute(req)}`,
    SpanKind.CLIENT,
    { 'http.request.method': method, 'server.address': u.url, 'http.request.resend_count': s.tried.length - 1 },
    s.trace,
  );
}

function endAttemptSpan(s: ForwardState, err?: unknown): void {
  if (s.span === undefined) return;
  endSpan(s.span, err);
  s.span = undefined;
}

function onAttemptTimeout(s: ForwardState): void {
  if (s.settled) return;
  s.timedOut = true;
  // Without a socket yet (agent queue), the proxyReq handler destroys it on arrival.
  s.proxyReq?.destroy(timeoutError(0));
}

function timeoutError(ms: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`upstream did not answer${ms ? ` within ${ms} ms` : ''}`), { code: TIMEOUT_CODE });
}
