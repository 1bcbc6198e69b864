/**
 * Traces end to end: a real stack (nginx, gateways, replicas, a worker,
 * Redis, Postgres) exporting over OTLP/HTTP to a receiver run here, on
 * 127.0.0.1. One write through nginx must be one trace across the gateway,
 * the replica and the worker, with the parent/child links and the batch's
 * link that common/src/platform/tracing.ts promises; a read likewise; and the trace
 * id must be in every access line of the request.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import type { Stack } from '../scripts/stack/stack.js';
import { call, eventually, linesWith, post } from './support/e2e.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';


/** A span as the OTLP/HTTP JSON encoding carries it (ids in hex), with its resource's service.name. */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
}
const SERVER = 2;
const CLIENT = 3;

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
const valueOf = (v: AnyValue): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? v.boolValue));
const attrs = (list: { key: string; value: AnyValue }[] | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/** An OTLP/HTTP trace receiver: POST /v1/traces with a JSON ExportTraceServiceRequest. */
class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly contentTypes = new Set<string>();
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        this.contentTypes.add(String(req.headers['content-type']));
        try {
          this.take(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          res.writeHead(400).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private take(body: any): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attrs(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind,
            links: (s.links ?? []).map((l: any) => ({ traceId: l.traceId, spanId: l.spanId })),
            attributes: attrs(s.attributes),
          });
        }
      }
    }
  }

  inTrace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
  }
}

describe('traces (end to end, OTLP/HTTP)', function () {
  this.timeout(120_000);
  const receiver = new OtlpReceiver();
  let running: TestStack | undefined;
  let stack: Stack;

  before(async function () {
    skipUnlessInstalled(this);
    this.timeout(180_000);
    const endpoint = await receiver.start();
    running = await startTestStack('lb-traces-', {
      replicas: 2,
      gateways: 2,
      workers: 1,
      nginxAccessLog: true,
      metrics: false,
      env: { LOG_LEVEL: 'warn', ACCESS_LOG: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER_ARG: '1' },
      log: () => undefined,
    });
    stack = running.stack;
  });

  after(async function () {
    this.timeout(90_000);
    await running?.stop();
    await receiver.stop();
  });

  /** Waits until the trace holds spans matching every predicate, then returns all its spans. */
  const traceWith = (traceId: () => string | undefined, what: string, ...wanted: ((s: ReceivedSpan) => boolean)[]) =>
    eventually(
      async () => {
        const id = traceId();
        if (id === undefined) return undefined;
        const spans = receiver.inTrace(id);
        return wanted.every((w) => spans.some(w)) ? spans : undefined;
      },
      30_000,
      what,
    );
  const one = (spans: ReceivedSpan[], what: string, p: (s: ReceivedSpan) => boolean): ReceivedSpan => {
    const found = spans.filter(p);
    expect(found, `${what} in ${JSON.stringify(spans.map((s) => `${s.service}:${s.name}`))}`).to.have.length(1);
    return found[0]!;
  };

  it('when a score write goes through nginx, then the gateway, the replica and the worker record one trace with the right parents and the batch links to it', async () => {
    const userId = `trace-${randomUUID().slice(0, 8)}`;
    const enqueues = () => receiver.spans.filter((s) => s.service === 'leaderboard-service' && s.name === 'relay.enqueue').length;
    const before = enqueues();
    const reg = await post(`${stack.url}/auth/register`, { user_id: userId, name: 'Tracy', region: 'EU', password: 'correct horse battery' });
    expect(reg.status, JSON.stringify(reg.body)).to.equal(201);
    // The registration's event is enqueued first: otherwise the relay may put both events in one
    // envelope, whose enqueue span is a root linked to each write rather than the write's child.
    await eventually(async () => enqueues() > before || undefined, 15_000, "the registration's enqueue span");
    const rid = `trace-write-${randomUUID()}`;
    const write = await post(`${stack.url}/score/update`, { score: 4242 }, { token: reg.body.token, headers: { 'x-request-id': rid } });
    expect(write.status, JSON.stringify(write.body)).to.equal(200);

    // nginx started the trace: its access line names it, and the gateway's root span has that id.
    const nginxLog = join(dirname(stack.component('nginx').logFile), 'nginx-access.log');
    const traceId = await eventually(
      async () => /trace=([0-9a-f]{32})/.exec(linesWith(nginxLog, `rid=${rid}`)[0] ?? '')?.[1],
      15_000,
      'the write in the nginx access log',
    );
    const isWorker = (s: ReceivedSpan) => s.service === 'worker-service';
    const spans = await traceWith(
      () => traceId,
      'the write trace, worker included',
      (s) => s.service === 'api-gateway' && s.kind === SERVER,
      (s) => s.service === 'leaderboard-service' && s.name === 'relay.enqueue',
      (s) => isWorker(s) && s.name === 'persist',
    );
    expect(new Set(spans.map((s) => s.service))).to.deep.equal(new Set(['api-gateway', 'leaderboard-service', 'worker-service']));

    const gwServer = one(spans, 'gateway SERVER span', (s) => s.service === 'api-gateway' && s.kind === SERVER);
    expect(gwServer.name, 'a route template, never a raw path').to.equal('POST /score/update');
    expect(gwServer.parentSpanId, 'the root (nginx started the trace without a span)').to.equal('');
    const attempt = one(spans, 'gateway CLIENT attempt span', (s) => s.service === 'api-gateway' && s.kind === CLIENT);
    expect(attempt.parentSpanId).to.equal(gwServer.spanId);
    expect(attempt.attributes['server.address']).to.equal(write.headers.get('x-upstream'));
    const svcServer = one(spans, 'service SERVER span', (s) => s.service === 'leaderboard-service' && s.kind === SERVER);
    expect(svcServer.name).to.equal('POST /score/update');
    expect(svcServer.parentSpanId, "the replica's span is the child of the gateway's attempt").to.equal(attempt.spanId);
    const luaWrite = one(spans, 'redis.write span', (s) => s.name === 'redis.write');
    expect(luaWrite.parentSpanId).to.equal(svcServer.spanId);
    const enqueue = one(spans, 'relay.enqueue span', (s) => s.name === 'relay.enqueue');
    expect(enqueue.parentSpanId, 'a lone event: its job is the child of its write').to.equal(svcServer.spanId);
    // BullMQ carried the context in the job: its add and the worker's processing are in the trace too.
    const add = one(spans, "BullMQ's add span", (s) => s.service === 'leaderboard-service' && s.name.startsWith('add '));
    expect(add.parentSpanId).to.equal(enqueue.spanId);
    const processed = one(spans, "the worker's process span", (s) => isWorker(s) && s.name.startsWith('process '));
    expect(processed.parentSpanId).to.equal(add.spanId);
    const persist = one(spans, 'persist span', (s) => isWorker(s) && s.name === 'persist');
    expect(spans.map((s) => s.spanId), "persist's parent is in the trace").to.include(persist.parentSpanId);
    expect(persist.parentSpanId).to.equal(svcServer.spanId);
    // The batch transaction is a trace of its own, linked to each write it holds.
    const batch = await eventually(
      async () => receiver.spans.find((s) => isWorker(s) && s.name === 'pg.batch' && s.links.some((l) => l.traceId === traceId)),
      10_000,
      'the pg.batch span',
    );
    expect(batch.links).to.deep.include({ traceId, spanId: persist.parentSpanId });
    expect(batch.parentSpanId).to.equal('');
    expect(batch.attributes).to.include({ 'lb.shard': 'eu' });

    // The trace id is in the gateway's and the replica's access lines of the request.
    for (const name of ['api-gateway', 'leaderboard-service']) {
      const logs = stack.components.filter((c) => c.name.startsWith(name)).map((c) => c.logFile);
      await eventually(async () => (logs.some((f) => linesWith(f, `rid=${rid} trace=${traceId}`).length === 1) ? true : undefined), 10_000, `trace= in a ${name} access line`);
    }
    expect([...receiver.contentTypes]).to.deep.equal(['application/json']);
  });

  it("when a read carries the client's own sampled traceparent, then the gateway and the replica continue that trace", async () => {
    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const read = await call(`${stack.url}/top?region=EU&limit=5`, { headers: { traceparent: `00-${clientTrace}-${clientSpan}-01` } });
    expect(read.status, JSON.stringify(read.body)).to.equal(200);
    const spans = await traceWith(
      () => clientTrace,
      'the read trace',
      (s) => s.service === 'api-gateway' && s.kind === SERVER,
      (s) => s.service === 'leaderboard-service' && s.kind === SERVER,
    );
    const gwServer = one(spans, 'gateway SERVER span', (s) => s.service === 'api-gateway' && s.kind === SERVER);
    expect(gwServer.name).to.equal('GET /top');
    expect(gwServer.parentSpanId, "the client's span is the parent").to.equal(clientSpan);
    const attempt = one(spans, 'gateway CLIENT attempt span', (s) => s.service === 'api-gateway' && s.kind === CLIENT);
    const svcServer = one(spans, 'service SERVER span', (s) => s.service === 'leaderboard-service' && s.kind === SERVER);
    expect(svcServer.parentSpanId).to.equal(attempt.spanId);
    expect(attempt.parentSpanId).to.equal(gwServer.spanId);
    for (const s of spans.filter((x) => x.name.startsWith('redis.'))) expect(s.parentSpanId, s.name).to.equal(svcServer.spanId);
  });

  it("when a client's traceparent is not sampled, then nothing of its request is recorded", async () => {
    const clientTrace = randomBytes(16).toString('hex');
    const read = await call(`${stack.url}/top?region=NA&limit=5`, { headers: { traceparent: `00-${clientTrace}-${randomBytes(8).toString('hex')}-00` } });
    expect(read.status).to.equal(200);
    // A sampled request sent after it is exported; by then the unsampled one would have been too.
    const marker = randomBytes(16).toString('hex');
    await call(`${stack.url}/top?region=NA&limit=5`, { headers: { traceparent: `00-${marker}-${randomBytes(8).toString('hex')}-01` } });
    await traceWith(() => marker, 'the sampled marker read', (s) => s.service === 'leaderboard-service' && s.kind === SERVER);
    expect(receiver.inTrace(clientTrace)).to.deep.equal([]);
  });
});
