/**
 * OpenTelemetry tracing: one write is one trace, from nginx to Postgres.
 *
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` unset (the default): tracing is off. No
 *   provider is registered, the API's tracer is its no-op, and every hook
 *   below is behind the {@link tracingOn} boolean, so the hot paths do no
 *   extra work (no header parsing, no span, an empty Lua argument).
 * - Set: spans go over OTLP/HTTP (JSON) to `<endpoint>/v1/traces` through a
 *   BatchSpanProcessor. Every process samples with
 *   ParentBased(TraceIdRatioBased(`OTEL_TRACES_SAMPLER_ARG`)), so a trace is
 *   kept or dropped as a whole: the root decides on its trace id and every
 *   later hop follows the sampled flag it was handed.
 *
 * How the context travels:
 * - nginx has no tracing module: it forwards a client's well-formed
 *   `traceparent`, and otherwise sends its own `$request_id` (32 hex digits)
 *   as `X-Lb-Trace-Id`. A gateway that received no traceparent starts the
 *   trace with that id, so nginx's access line (`trace=`) names the trace
 *   the gateway starts. The gateway strips `x-lb-*` headers before the
 *   replicas, as it does all of them.
 * - gateway → service: `traceparent` of the CLIENT span of each attempt.
 * - service → queue → worker: the write script puts the request's
 *   traceparent (sampled requests only) in the event itself, because the
 *   relay sends events later, often several in one job. The relay's span for
 *   a job is the child of its event when the job carries one event, and a
 *   new root linked to each sampled event when it carries several; BullMQ
 *   (bullmq-otel) carries that span's context in the job. The worker's batch
 *   transaction is likewise a root linked to each sampled event it holds,
 *   and each such event gets a short `persist` span, child of its write's
 *   context, ending at its COMMIT.
 * - Roots with sampled links are sampled (see {@link LinkedOrRatioSampler}),
 *   so an envelope or a batch holding a sampled write is always recorded.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { parseTraceParent, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  SamplingDecision,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type IdGenerator,
  type Sampler,
  type SamplingResult,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Telemetry } from 'bullmq';
import { BullMQOtel, BullMQOTelSpan } from 'bullmq-otel';
import { checkHttpUrl, numberKey, optionalKey, stringKey, type ConfigKey } from './config.js';
import { requestRoute } from './metrics.js';

// ------------------------------------------------------------ config ----

export const OTEL_EXPORTER_OTLP_ENDPOINT = optionalKey(
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTLP/HTTP collector base URL (spans go to <url>/v1/traces, e.g. http://127.0.0.1:4318 for Jaeger). Unset = tracing off, at no cost.',
  (raw) => checkHttpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', raw),
);
export const OTEL_TRACES_SAMPLER_ARG = numberKey(
  'OTEL_TRACES_SAMPLER_ARG',
  'Share of traces recorded, 0..1, decided on the trace id where a trace starts (every later hop follows that decision).',
  { default: 1, min: 0, max: 1 },
);
/** This process's OTEL_SERVICE_NAME key (the default is the component's name). */
export function otelServiceNameKey(defaultName: string): ConfigKey<string> {
  return stringKey('OTEL_SERVICE_NAME', 'service.name of this process\'s spans.', { default: defaultName, pattern: /^[A-Za-z0-9_.:-]{1,64}$/ });
}

/** The tracing keys of a service's config spec (spread into it). */
export function tracingKeys(serviceName: string) {
  return {
    otlpEndpoint: OTEL_EXPORTER_OTLP_ENDPOINT,
    traceSampleRatio: OTEL_TRACES_SAMPLER_ARG,
    otelServiceName: otelServiceNameKey(serviceName),
  };
}

export interface TracingConfig {
  readonly otlpEndpoint: string | undefined;
  readonly traceSampleRatio: number;
  readonly otelServiceName: string;
}

// ----------------------------------------------------------- provider ----

/**
 * True while a tracer provider is registered. Hot paths test it before any
 * tracing work, so tracing off costs one boolean test.
 */
export let tracingOn = false;

let tracer: Tracer = trace.getTracer('leaderboard-platform');

/**
 * Ids as the SDK's random generator makes them, except that the next trace
 * id may be given: a root span started by {@link traceRequest} takes
 * nginx's request id as its trace id. `startSpan` is synchronous, so the
 * seed is set and cleared around one call.
 */
class SeededIds implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  seed: string | undefined;
  generateTraceId(): string {
    const s = this.seed;
    this.seed = undefined;
    return s ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}
const ids = new SeededIds();

/**
 * The root sampler: a root span with a sampled link (an envelope or a batch
 * holding a sampled write) is sampled; any other root by the ratio on its
 * trace id.
 */
export class LinkedOrRatioSampler implements Sampler {
  private readonly ratio: TraceIdRatioBasedSampler;
  constructor(ratio: number) {
    this.ratio = new TraceIdRatioBasedSampler(ratio);
  }
  shouldSample(ctx: Context, traceId: string, _name: string, _kind: SpanKind, _attributes: Attributes, links: Link[]): SamplingResult {
    for (const l of links) if ((l.context.traceFlags & TraceFlags.SAMPLED) !== 0) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    return this.ratio.shouldSample(ctx, traceId);
  }
  toString(): string {
    return `LinkedOrRatio{${this.ratio.toString()}}`;
  }
}

export interface TracingOptions {
  /** Tests: export here (synchronously, SimpleSpanProcessor) instead of OTLP; tracing is then on whatever the endpoint. */
  exporter?: SpanExporter;
}

/**
 * Registers the tracer provider, the AsyncLocalStorage context manager and
 * the W3C propagator when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise
 * registers nothing. Returns the shutdown: it flushes the spans not yet
 * exported (call it on SIGTERM, after the servers closed).
 */
export function initTracing(config: TracingConfig, opts: TracingOptions = {}): () => Promise<void> {
  if (config.otlpEndpoint === undefined && opts.exporter === undefined) return async () => undefined;
  if (tracingOn) throw new Error('tracing is already initialised in this process');
  const processor = opts.exporter
    ? new SimpleSpanProcessor({ exporter: opts.exporter })
    : new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: `${config.otlpEndpoint!.replace(/\/+$/, '')}/v1/traces` }),
        scheduledDelayMillis: 1000,
      });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.otelServiceName }),
    sampler: new ParentBasedSampler({ root: new LinkedOrRatioSampler(config.traceSampleRatio) }),
    idGenerator: ids,
    spanProcessors: [processor],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  tracer = trace.getTracer('leaderboard-platform');
  rootRatio = new TraceIdRatioBasedSampler(config.traceSampleRatio);
  tracingOn = true;
  let done: Promise<void> | undefined;
  return () =>
    (done ??= (async () => {
      try {
        await provider.shutdown();
      } finally {
        tracingOn = false;
        rootRatio = undefined;
        trace.disable();
        propagation.disable();
        context.disable();
        tracer = trace.getTracer('leaderboard-platform');
      }
    })());
}

// ------------------------------------------------------------ helpers ----

/** Header by which nginx hands its request id to a gateway as the trace id of a trace it did not receive. */
export const TRACE_ID_HEADER = 'x-lb-trace-id';
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const TRACE = Symbol('lb.trace');
/** What {@link traceRequest} noted on a request: its trace id, and for one not sampled the traceparent to hand on. */
interface RequestTrace {
  readonly traceId: string;
  /** `00-<trace>-<span>-00` when the request is not sampled (nothing recorded, no span object); undefined when it is. */
  readonly unsampled: string | undefined;
}
type Traced = IncomingMessage & { [TRACE]?: RequestTrace };

/** The root sampler's ratio, for the decision {@link traceRequest} takes before any span exists. */
let rootRatio: TraceIdRatioBasedSampler | undefined;

/**
 * Serves a request inside a SERVER span (when tracing is on): its parent is
 * the request's `traceparent`; without one the trace starts here, with the
 * id in {@link TRACE_ID_HEADER} when nginx sent one. The span is named by
 * method and route template, never the raw path, and ends when the answer
 * is sent or the connection closes. Health probes are not traced.
 *
 * The sampling decision is taken first, as the provider's sampler would
 * (the parent's sampled flag, else the ratio on the trace id): a request
 * that is not sampled gets no span object at all, not even a non-recording
 * one, and runs in the root context, so the leaf helpers below record
 * nothing for it either. It still has its trace id (access logs) and hands
 * on an unsampled `traceparent` ({@link unsampledTraceparent}), so the next
 * hop does not decide again.
 */
export function traceRequest(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
  if (!tracingOn) {
    handle();
    return;
  }
  const route = requestRoute(req);
  // Health probes (the supervisor's, the gateways') would be a trace each, every second.
  if (route === '/health') {
    handle();
    return;
  }
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const parentSc = trace.getSpanContext(parent);
  let traceId: string;
  let sampled: boolean;
  if (parentSc !== undefined) {
    traceId = parentSc.traceId;
    sampled = (parentSc.traceFlags & TraceFlags.SAMPLED) !== 0;
  } else {
    const seed = req.headers[TRACE_ID_HEADER];
    traceId = typeof seed === 'string' && TRACE_ID.test(seed) ? seed : ids.generateTraceId();
    sampled = rootRatio!.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
  }
  if (!sampled) {
    (req as Traced)[TRACE] = { traceId, unsampled: `00-${traceId}-${parentSc?.spanId ?? ids.generateSpanId()}-00` };
    // Kept-alive sockets may carry another request's context: this one runs in none.
    if (context.active() === ROOT_CONTEXT) handle();
    else context.with(ROOT_CONTEXT, handle);
    return;
  }
  const method = req.method ?? 'GET';
  ids.seed = traceId;
  const span = tracer.startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': route } }, parent);
  ids.seed = undefined;
  (req as Traced)[TRACE] = { traceId: span.spanContext().traceId, unsampled: undefined };
  res.once('close', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500 || !res.writableFinished) span.setStatus({ code: SpanStatusCode.ERROR, ...(!res.writableFinished && { message: 'connection closed before the answer was sent' }) });
    span.end();
  });
  context.with(trace.setSpan(parent, span), handle);
}

/** The trace id of a request served by {@link traceRequest}, for access logs (`-` when not traced). */
export function traceIdOf(req: IncomingMessage): string {
  return (req as Traced)[TRACE]?.traceId ?? '-';
}

/** The `traceparent` a request that is not sampled hands to the next hop (undefined when it is sampled or not traced). */
export function unsampledTraceparent(req: IncomingMessage): string | undefined {
  return (req as Traced)[TRACE]?.unsampled;
}

/** The active context (pass it on where async work may lose it). */
export function activeContext(): Context {
  return context.active();
}

/**
 * Starts a span that is not made active (a leaf such as a Redis call or an
 * upstream attempt): child of `parent`, the active context by default.
 * Undefined when the parent records nothing (a request not sampled, or no
 * request at all): no span object is made for work nobody will see.
 */
export function startSpan(name: string, kind: SpanKind, attributes: Attributes, parent: Context = context.active()): Span | undefined {
  if (trace.getSpan(parent)?.isRecording() !== true) return undefined;
  return tracer.startSpan(name, { kind, attributes }, parent);
}

/** Ends a span, marking it failed when `err` is given. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/** Runs `fn` in a leaf span (see {@link startSpan}) that ends when it settles; just runs `fn` when nothing records. */
export async function inSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  const span = startSpan(name, kind, attributes);
  if (span === undefined) return fn();
  try {
    const r = await fn();
    span.end();
    return r;
  } catch (e) {
    endSpan(span, e);
    throw e;
  }
}

/** Writes the W3C headers (`traceparent`, `tracestate`) of `span` under `parent` into an outgoing request. */
export function injectHeaders(parent: Context, span: Span, req: { setHeader(name: string, value: string): unknown }): void {
  propagation.inject(trace.setSpan(parent, span), req, { set: (r, k, v) => void r.setHeader(k, v) });
}

/**
 * The active span's traceparent when it is sampled, for an event to carry
 * (the write scripts' last argument); '' when tracing is off or the request
 * is not sampled, so unsampled events carry nothing and cost nothing later.
 */
export function currentTraceparent(): string {
  if (!tracingOn) return '';
  const sc = trace.getSpanContext(context.active());
  if (sc === undefined || (sc.traceFlags & TraceFlags.SAMPLED) === 0) return '';
  return `00-${sc.traceId}-${sc.spanId}-01`;
}

/** The span context of a sampled traceparent; undefined for none, a malformed one, or an unsampled one. */
export function sampledContextOf(traceparent: string | undefined): SpanContext | undefined {
  if (traceparent === undefined || !traceparent.endsWith('-01')) return undefined;
  const sc = parseTraceParent(traceparent);
  if (sc === null || !trace.isSpanContextValid(sc)) return undefined;
  sc.isRemote = true;
  return sc;
}

/**
 * A context whose span is valid and not sampled: work run in it records
 * nothing, and what it hands on (a BullMQ job's metadata) says "not
 * sampled", so the consumer records nothing either. (Suppressing tracing
 * would hand on nothing, and the consumer would start a root of its own.)
 */
const UNSAMPLED = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '0000000000000000000000000000000f',
  spanId: '000000000000000f',
  traceFlags: TraceFlags.NONE,
  isRemote: true,
});

/** The sampled contexts of a run of events, by index, and whether any is sampled. */
export function eventContexts(events: readonly { traceparent?: string }[]): { contexts: (SpanContext | undefined)[]; any: boolean } {
  let any = false;
  const contexts = events.map((e) => {
    const sc = sampledContextOf(e.traceparent);
    if (sc !== undefined) any = true;
    return sc;
  });
  return { contexts, any };
}

/**
 * Runs `fn` (work on a run of events: an enqueue, a batch transaction) in a
 * span named `name`, made active so that libraries called inside (BullMQ)
 * attach to it:
 * - no sampled event: no span, and `fn` runs in a context that says "not
 *   sampled" (see UNSAMPLED);
 * - `lone: 'child'` and a single event: the span is that event's child;
 * - otherwise a new root with a link to each sampled event (sampled, see
 *   {@link LinkedOrRatioSampler}).
 * `fn` gets the span (undefined when there is none).
 */
export async function inEventsSpan<T>(
  name: string,
  kind: SpanKind,
  attributes: Attributes,
  contexts: readonly (SpanContext | undefined)[],
  lone: 'child' | 'link',
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  const sampled = contexts.filter((c): c is SpanContext => c !== undefined);
  if (sampled.length === 0) return context.with(UNSAMPLED, () => fn(undefined));
  const parent = lone === 'child' && contexts.length === 1 ? trace.setSpanContext(ROOT_CONTEXT, sampled[0]!) : ROOT_CONTEXT;
  const links = parent === ROOT_CONTEXT ? sampled.map((c) => ({ context: c })) : [];
  const span = tracer.startSpan(name, { kind, attributes, links, root: parent === ROOT_CONTEXT }, parent);
  try {
    const r = await context.with(trace.setSpan(parent, span), () => fn(span));
    span.end();
    return r;
  } catch (e) {
    endSpan(span, e);
    throw e;
  }
}

/**
 * A span per sampled event, child of the event's own context, from
 * `startTime` to now, linked to `link` (the batch span): the event's part
 * in work done for many. `failed(i)` gives the reason event i failed, if it did.
 */
export function endEventSpans(
  name: string,
  contexts: readonly (SpanContext | undefined)[],
  startTime: number,
  attributes: Attributes,
  link: Span | undefined,
  failed: (i: number) => string | undefined,
): void {
  const links = link ? [{ context: link.spanContext() }] : [];
  contexts.forEach((sc, i) => {
    if (sc === undefined) return;
    const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes, links, startTime }, trace.setSpanContext(ROOT_CONTEXT, sc));
    const reason = failed(i);
    endSpan(span, reason === undefined ? undefined : new Error(reason));
  });
}

/** BullMQ span names that are kept: a job's enqueue and its processing. */
const JOB_SPAN = /^(add|addBulk|process) /;
const NO_SPAN = new BullMQOTelSpan(trace.wrapSpanContext({ traceId: '00000000000000000000000000000000', spanId: '0000000000000000', traceFlags: TraceFlags.NONE }));

/**
 * BullMQ's telemetry (bullmq-otel) for a Queue or Worker, or undefined
 * when tracing is off. Jobs carry their producer's context in their options
 * (`telemetry.metadata`), and a worker processes each in a child of it.
 * Only the job spans are recorded: BullMQ also traces every poll for work
 * and every housekeeping step, each a trace of its own.
 */
export function queueTelemetry(): Telemetry<Context> | undefined {
  if (!tracingOn) return undefined;
  const otel = new BullMQOtel({ tracerName: 'bullmq' });
  return {
    contextManager: otel.contextManager,
    tracer: { startSpan: (name, options, ctx) => (JOB_SPAN.test(name) ? otel.tracer.startSpan(name, options, ctx) : NO_SPAN) },
  };
}

export { SpanKind };
export type { Context as TraceContext, Span as TraceSpan };
