/**
 * Buffers a request body as raw bytes, so a write refused by one replica
 * (ECONNREFUSED: nothing was sent) can be replayed on another. Bodies are
 * never parsed here: the replica parses and validates them.
 */
import type { IncomingMessage } from 'node:http';
import { AppError } from '@lb/common';

/** True when the request announces a body (a length other than 0, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/**
 * Reads the whole body, at most `limit` bytes: 413 `payload_too_large` above
 * it (from Content-Length up front when declared), 400 `invalid_payload`
 * when the client goes away mid-body.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = () => {
      done();
      reject(new AppError('invalid_payload', 'request body was not received completely'));
    };
    const onClose = () => {
      if (!req.complete) onError();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function tooLarge(limit: number): AppError {
  return new AppError('payload_too_large', `request body is larger than ${limit} bytes`);
}
