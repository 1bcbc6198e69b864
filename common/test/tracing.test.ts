/**
 * common/src/platform/tracing.ts in one process: off (no endpoint) registers nothing
 * and every hook is a no-op; on (with an in-memory exporter in place of
 * OTLP), the event helpers parent, link and sample as documented.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { expect } from 'chai';
import { ConfigError, readKeys } from '../src/platform/config.js';
import {
  currentTraceparent,
  endEventSpans,
  eventContexts,
  initTracing,
  inEventsSpan,
  queueTelemetry,
  sampledContextOf,
  startSpan,
  traceIdOf,
  traceRequest,
  tracingKeys,
  tracingOn,
  unsampledTraceparent,
} from '../src/platform/tracing.js';

const T1 = '0af7651916cd43dd8448eb211c80319c';
const T2 = '4bf92f3577b34da6a3ce929d0e0e4736';
const sampled = (traceId: string, spanId = 'b7ad6b7169203331') => `00-${traceId}-${spanId}-01`;

/** One request through a server whose listener runs `traceRequest`; resolves with the trace id it logged. */
interface Seen {
  traceId: string;
  active: string;
  /** A span object was active in the handler (recording or not). */
  span?: boolean;
  /** A leaf span could be started under it. */
  leaf?: boolean;
  /** What the request hands to the next hop when it is not sampled. */
  handOn?: string | undefined;
}
async function serveOne(headers: Record<string, string>, details = false): Promise<Seen> {
  let seen: Seen = { traceId: '', active: '' };
  const server: Server = createServer((req: IncomingMessage, res) =>
    traceRequest(req, res, () => {
      seen = { traceId: '', active: currentTraceparent() };
      if (details) {
        seen.span = trace.getSpan(context.active()) !== undefined;
        const leaf = startSpan('probe', SpanKind.CLIENT, {});
        seen.leaf = leaf !== undefined;
        leaf?.end();
        seen.handOn = unsampledTraceparent(req);
      }
      res.end('ok', () => (seen.traceId = traceIdOf(req)));
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/rank/alice?region=EU', headers }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  return seen;
}

describe('tracing', () => {
  describe('config', () => {
    it('when nothing is set, then there is no endpoint, the ratio is 1 and the service name is the default', () => {
      expect(readKeys(tracingKeys('api-gateway'), {})).to.deep.equal({ otlpEndpoint: undefined, traceSampleRatio: 1, otelServiceName: 'api-gateway' });
      expect(readKeys(tracingKeys('x'), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_SAMPLER_ARG: '0.1' })).to.include({
        otlpEndpoint: 'http://127.0.0.1:4318',
        traceSampleRatio: 0.1,
      });
    });

    for (const [env, key] of [
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
      [{ OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_TRACES_SAMPLER_ARG: 'half' }, 'OTEL_TRACES_SAMPLER_ARG'],
    ] as const) {
      it(`when ${JSON.stringify(env)} is given, then loading fails naming ${key}`, () => {
        expect(() => readKeys(tracingKeys('x'), env)).to.throw(ConfigError, key);
      });
    }
  });

  describe('when OTEL_EXPORTER_OTLP_ENDPOINT is unset', () => {
    it('then nothing is registered and every hook is a no-op', async () => {
      const stop = initTracing(readKeys(tracingKeys('leaderboard-service'), {}));
      try {
        expect(tracingOn).to.equal(false);
        // The API's no-op tracer and propagator: nothing recorded, nothing injected.
        const span = trace.getTracer('probe').startSpan('probe');
        expect(span.isRecording()).to.equal(false);
        expect(trace.isSpanContextValid(span.spanContext())).to.equal(false);
        expect(propagation.fields()).to.deep.equal([]);
        expect(queueTelemetry()).to.equal(undefined);
        // A request with a sampled traceparent is served untouched: no span, no trace id, no event context.
        const seen = await serveOne({ traceparent: sampled(T1) });
        expect(seen).to.deep.equal({ traceId: '-', active: '' });
      } finally {
        await stop();
      }
    });
  });

  describe('when on (in-memory exporter)', () => {
    const exporter = new InMemorySpanExporter();
    let stop: () => Promise<void>;
    before(() => {
      stop = initTracing({ otlpEndpoint: undefined, traceSampleRatio: 0, otelServiceName: 'test' }, { exporter });
    });
    after(async () => {
      await stop();
      expect(tracingOn, 'shutdown unregisters').to.equal(false);
    });
    beforeEach(() => exporter.reset());

    it('then a request continues the traceparent it carries, and one without starts its trace from X-Lb-Trace-Id when well-formed', async () => {
      expect(tracingOn).to.equal(true);
      const continued = await serveOne({ traceparent: sampled(T1) });
      expect(continued.traceId).to.equal(T1);
      const server = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
      expect(server.name, 'route template, never the raw path').to.equal('GET /rank/:userId');
      expect(server.parentSpanContext?.spanId).to.equal('b7ad6b7169203331');
      expect(continued.active, 'a write here would hand the SERVER span to its event').to.equal(sampled(T1, server.spanContext().spanId));

      const seeded = await serveOne({ 'x-lb-trace-id': T2 });
      expect(seeded.traceId).to.equal(T2);
      // Ratio 0: a root is not sampled, so its events carry nothing.
      expect(seeded.active).to.equal('');
      const other = await serveOne({ 'x-lb-trace-id': 'not-hex' });
      expect(other.traceId).to.match(/^[0-9a-f]{32}$/).and.not.equal(T2);
    });

    it('then a request that is not sampled makes no span object, records nothing, and hands its decision on', async () => {
      // Ratio 0: a root is not sampled.
      const root = await serveOne({ 'x-lb-trace-id': T2 }, true);
      expect(root).to.deep.include({ traceId: T2, active: '', span: false, leaf: false });
      expect(root.handOn).to.match(new RegExp(`^00-${T2}-[0-9a-f]{16}-00$`));
      // A parent that says "not sampled" is followed, with its own span id handed on.
      const child = await serveOne({ traceparent: `00-${T1}-b7ad6b7169203331-00` }, true);
      expect(child).to.deep.include({ traceId: T1, active: '', span: false, leaf: false, handOn: `00-${T1}-b7ad6b7169203331-00` });
      expect(exporter.getFinishedSpans()).to.have.length(0);
      // A sampled one has its SERVER span active, leaves under it, and nothing to hand on but its span.
      const kept = await serveOne({ traceparent: sampled(T1) }, true);
      expect(kept).to.deep.include({ traceId: T1, span: true, leaf: true, handOn: undefined });
      expect(exporter.getFinishedSpans().map((s) => s.kind)).to.have.members([SpanKind.SERVER, SpanKind.CLIENT]);
      // Outside any request there is nothing to attach a leaf to.
      expect(startSpan('orphan', SpanKind.CLIENT, {})).to.equal(undefined);
    });

    it('then a lone event’s span is its child, several events get a root linked to each sampled one, and none gets no span', async () => {
      const one = eventContexts([{ traceparent: sampled(T1) }]);
      await inEventsSpan('relay.enqueue', SpanKind.PRODUCER, {}, one.contexts, 'child', async () => undefined);
      const several = eventContexts([{ traceparent: sampled(T1) }, {}, { traceparent: `00-${T2}-b7ad6b7169203332-00` }, { traceparent: sampled(T2) }]);
      expect(several.any).to.equal(true);
      expect(several.contexts.map((c) => c?.traceId)).to.deep.equal([T1, undefined, undefined, T2]);
      await inEventsSpan('pg.batch', SpanKind.CLIENT, {}, several.contexts, 'link', async (batch) => {
        endEventSpans('persist', several.contexts, Date.now(), {}, batch, (i) => (i === 3 ? 'refused' : undefined));
      });
      const none = eventContexts([{}, { traceparent: `00-${T2}-b7ad6b7169203332-00` }]);
      expect(none.any).to.equal(false);
      await inEventsSpan('relay.enqueue', SpanKind.PRODUCER, {}, none.contexts, 'child', async (span) => {
        expect(span).to.equal(undefined);
        // Inside, what is started (BullMQ's add) is not sampled, and what it hands on says so.
        const inner = trace.getTracer('probe').startSpan('add');
        expect(inner.isRecording()).to.equal(false);
        const carrier: Record<string, string> = {};
        propagation.inject(context.active(), carrier);
        expect(carrier.traceparent).to.match(/-00$/);
      });

      const spans = exporter.getFinishedSpans();
      const enqueue = spans.find((s) => s.name === 'relay.enqueue')!;
      expect(enqueue.spanContext().traceId).to.equal(T1);
      expect(enqueue.parentSpanContext?.spanId).to.equal('b7ad6b7169203331');
      const batch = spans.find((s) => s.name === 'pg.batch')!;
      expect(batch.parentSpanContext, 'a root').to.equal(undefined);
      expect(batch.spanContext().traceFlags & TraceFlags.SAMPLED, 'sampled for its links though the ratio is 0').to.equal(TraceFlags.SAMPLED);
      expect(batch.links.map((l) => l.context.traceId)).to.deep.equal([T1, T2]);
      const persists = spans.filter((s) => s.name === 'persist');
      expect(persists.map((s) => s.spanContext().traceId)).to.deep.equal([T1, T2]);
      expect(persists.map((s) => s.parentSpanContext?.spanId)).to.deep.equal(['b7ad6b7169203331', 'b7ad6b7169203331']);
      expect(persists.map((s) => s.status.code)).to.deep.equal([0, 2]);
      expect(persists[0]!.links[0]!.context.spanId).to.equal(batch.spanContext().spanId);
      expect(spans).to.have.length(4);
    });

    it('then only well-formed sampled traceparents count', () => {
      expect(sampledContextOf(undefined)).to.equal(undefined);
      expect(sampledContextOf(`00-${T1}-b7ad6b7169203331-00`)).to.equal(undefined);
      expect(sampledContextOf(`00-${'0'.repeat(32)}-b7ad6b7169203331-01`)).to.equal(undefined);
      expect(sampledContextOf('garbage-01')).to.equal(undefined);
      expect(sampledContextOf(sampled(T1))).to.include({ traceId: T1, spanId: 'b7ad6b7169203331', traceFlags: 1 });
      expect(context.with(ROOT_CONTEXT, currentTraceparent)).to.equal('');
    });
  });
});
