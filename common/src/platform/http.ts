/**
 * The HTTP pieces both Node services share: the server with its timeouts
 * and JSON answers to malformed or stalled requests, request ids, body
 * reading with a size limit and a total deadline, JSON parsing, and the one
 * error writer.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { AppError, ERROR_STATUS, toAppError, type ErrorCode } from '../contracts/errors.js';
import type { Logger } from './logger.js';

/** Time limits on receiving a request. */
export interface RequestTimeouts {
  /** HEADERS_TIMEOUT_MS: the request line and headers must arrive within this, from the first byte. */
  headersTimeoutMs: number;
  /** BODY_TIMEOUT_MS: the whole body must arrive within this once the headers are in (trickling does not extend it). */
  bodyTimeoutMs: number;
}

/**
 * An HTTP server whose stalled or malformed requests get the platform's
 * JSON error shape: 408 `request_timeout` when the headers do not arrive
 * in time, 431 `headers_too_large`, 400 for anything unparsable. Node checks
 * its timeouts every second (the default is every 30 s). The body deadline
 * is kept by {@link readBody}; Node's own whole-request timeout stays behind
 * it as a backstop.
 */
export function createHttpServer(listener: RequestListener, t: RequestTimeouts): Server {
  const server = createServer(
    {
      headersTimeout: t.headersTimeoutMs,
      requestTimeout: t.headersTimeoutMs + t.bodyTimeoutMs + 1000,
      connectionsCheckingInterval: 1000,
    },
    listener,
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
  // Longer than nginx's (and the gateways') upstream keepalive_timeout, so the client side closes idle sockets first.
  server.keepAliveTimeout = 65_000;
  return server;
}

const REASONS: Partial<Record<number, string>> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** Writes a JSON error straight to the socket (there is no response object for a request Node could not parse). */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const pending = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable || pending?.headersSent) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new AppError('request_timeout', 'the request did not arrive in time')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new AppError('headers_too_large', 'request headers are too large')
        : new AppError('invalid_payload', 'malformed HTTP request');
  const body = JSON.stringify(e.toJSON());
  socket.end(
    `HTTP/1.1 ${e.status} ${REASONS[e.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The caller's X-Request-Id when it is 1-128 of `[A-Za-z0-9_.:-]`, else a new UUID. */
export function requestIdOf(given: string | string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/** True when the request announces a body (a length other than 0, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

export interface BodyLimits {
  /** Largest body, bytes: 413 above it (from Content-Length up front when declared). */
  limitBytes: number;
  /** The whole body must arrive within this, ms: 408 otherwise. */
  timeoutMs: number;
}

/**
 * Reads the whole body as bytes: 413 `payload_too_large` above the limit,
 * 408 `request_timeout` when it has not all arrived in time (a stalled or
 * trickling client), 400 when the client goes away mid-body. The caller's
 * error answer closes the connection (see {@link writeError}), since the
 * rest of such a body would otherwise be read as the next request.
 */
export function readBody(req: IncomingMessage, o: BodyLimits): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > o.limitBytes) return Promise.reject(tooLarge(o.limitBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (e: AppError) => {
      done();
      // Stop reading: what is left of the body is not wanted.
      req.pause();
      reject(e);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > o.limitBytes) fail(tooLarge(o.limitBytes));
      else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = () => fail(new AppError('invalid_payload', 'request body was not received completely'));
    const onClose = () => {
      if (!req.complete) onError();
    };
    const timer = setTimeout(
      () => fail(new AppError('request_timeout', `the request body did not arrive within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function tooLarge(limit: number): AppError {
  return new AppError('payload_too_large', `request body is larger than ${limit} bytes`);
}

const JSON_MEDIA_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;

/**
 * Reads a JSON body. No body is `{}`; a body that is not
 * `application/json` (or `application/*+json`) is 415, checked before a
 * byte is read; broken JSON is 400 `invalid_json`, and so is a top-level
 * value that is not an object or array.
 */
export async function readJsonBody(req: IncomingMessage, o: BodyLimits): Promise<unknown> {
  if (!hasBody(req)) return {};
  if (!JSON_MEDIA_TYPE.test(req.headers['content-type'] ?? '')) {
    throw new AppError('unsupported_media_type', 'send the body as application/json');
  }
  const text = (await readBody(req, o)).toString('utf8').trim();
  if (text === '') return {};
  if (text[0] !== '{' && text[0] !== '[') throw new AppError('invalid_json', 'request body is not valid JSON');
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('invalid_json', 'request body is not valid JSON');
  }
}

/** Codes whose answer closes the connection: the request was not read to its end. */
const CLOSES_CONNECTION = new Set<ErrorCode>(['payload_too_large', 'request_timeout']);

/**
 * Writes any error as `{"error": code, "message": ..., ...details}` with its
 * registered status and `Retry-After` from `retry_after`; unknown errors
 * are 500 `internal` and logged in full. An answer already under way can
 * only be cut off. Used by every route of both services.
 */
export function writeError(log: Logger, err: unknown, req: IncomingMessage, res: ServerResponse): void {
  const e = toAppError(err);
  if (e.code === 'internal') {
    log.error('unhandled error', { err: err as Error, method: req.method, url: req.url, request_id: res.getHeader('x-request-id') });
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (e.details && typeof e.details.retry_after === 'number') res.setHeader('Retry-After', String(e.details.retry_after));
  // Unread request data would otherwise be parsed as the next request.
  if (!req.complete || CLOSES_CONNECTION.has(e.code)) res.setHeader('Connection', 'close');
  sendJson(res, ERROR_STATUS[e.code], e.toJSON());
}

/** Sends a JSON answer (an object, or text that already is JSON). */
export function sendJson(res: ServerResponse, status: number, body: unknown, text = JSON.stringify(body)): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
