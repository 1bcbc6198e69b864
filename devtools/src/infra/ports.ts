/**
 * Ephemeral port allocation for test servers.
 */
import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it
 * (listen on port 0) and we release it immediately. Another process can grab
 * it before our server binds it, so callers that start servers on it retry
 * with a fresh port when the bind fails (see `startRedis`/`startPostgres`).
 *
 * `exclude`: ports already picked for the same process but not bound yet
 * (the kernel may hand one out again once it was released).
 */
export async function freePort(exclude: readonly (number | undefined)[] = []): Promise<number> {
  for (;;) {
    const port = await pickPort();
    if (!exclude.includes(port)) return port;
  }
}

function pickPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: listen(0) returned no TCP address'));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
