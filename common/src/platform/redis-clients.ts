/**
 * Every Redis client of the project is made here, from a shard's endpoint
 * (contracts/topology.ts): a node-redis client for a plain server, or the
 * library's own Sentinel client (`createSentinel`) for a shard behind
 * Sentinel, which asks the Sentinels for the current primary, follows
 * `+switch-master` and moves its subscriptions across a failover. BullMQ's
 * ioredis connections get ioredis' Sentinel options (queue.ts connectionFor).
 *
 * node-redis' Sentinel client has the same commands as a client; what
 * differs is hidden behind {@link RedisHandle}.
 */
import { createClient, createSentinel } from 'redis';
import type { RedisEndpoint } from '../contracts/topology.js';

export interface RedisClientOptions {
  /** How long a connection attempt may take, ms (default 2000). */
  readonly connectTimeoutMs?: number;
  /** Commands sent while disconnected fail at once instead of queueing (default true). */
  readonly failWhileOffline?: boolean;
  /** Reconnect after a lost connection (default true; scripts give up instead). */
  readonly reconnect?: boolean;
}

function makeServerClient(url: string, o: RedisClientOptions) {
  return createClient({ url, ...clientSettings(o) });
}

function clientSettings(o: RedisClientOptions) {
  return {
    disableOfflineQueue: o.failWhileOffline ?? true,
    socket: {
      connectTimeout: o.connectTimeoutMs ?? 2000,
      reconnectStrategy: o.reconnect === false ? (false as const) : (retries: number) => Math.min(50 * 2 ** retries, 1000),
    },
  };
}

/**
 * A command that never left this process: the Sentinel client had no
 * primary to send it to (during a failover). Nothing was applied.
 */
export class RedisNotSent extends Error {
  constructor(cause: unknown) {
    super(`not sent: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** The command API every caller uses: a node-redis client's (a Sentinel client has the same commands). */
export type RedisClient = ReturnType<typeof makeServerClient>;

/** What a Sentinel client reports on a topology change (node-redis' `topology-change`). */
export interface RedisTopologyEvent {
  readonly type: string;
  readonly node?: { readonly host: string; readonly port: number };
}

/**
 * One connection to a shard's Redis, whichever endpoint it has.
 *
 * - `client`: the commands. Behind Sentinel it is node-redis' Sentinel client
 *   with a reserved connection to the primary (`reserveClient`) that every
 *   command goes on, and a second one (`masterPoolSize: 2`, leased at
 *   connect) for {@link RedisHandle.sendInOrder}: the writes that wait for
 *   the replica and their `WAIT`, which blocks its connection until the
 *   replica answers (up to its timeout when the replica is gone), so reads
 *   never queue behind it. It never sends a command twice: `maxCommandRediscovers: 0`
 *   (the library would otherwise resend a write whose connection broke after
 *   it was sent, which could apply it twice); a command that meets a
 *   failover fails, and the next one goes to the new primary.
 * - `send`: one raw command (EVALSHA, WAIT…).
 * - `onPrimaryChange`: called when a Sentinel client moves to another
 *   primary than the one it first connected to (never for a plain server).
 */
export interface RedisHandle {
  readonly client: RedisClient;
  readonly endpoint: RedisEndpoint;
  /**
   * False while a Sentinel client has never reached a primary (it is
   * connecting in the background): calls fail at once rather than wait in
   * the library's queue. A plain client is always usable (it refuses
   * commands itself while offline).
   */
  readonly usable: boolean;
  send(args: readonly string[]): Promise<unknown>;
  /**
   * Sends commands on one connection, in this order, in one write to the
   * socket (nothing can come between them): what a `WAIT` after writes
   * needs to cover exactly those writes. Each reply is settled on its own.
   */
  sendInOrder(commands: readonly (readonly string[])[]): Promise<PromiseSettledResult<unknown>[]>;
  /**
   * Connects; rejects when the first attempt fails, and keeps trying in the
   * background (a plain client reconnects by itself, a Sentinel client is
   * made again each second) until connected or closed.
   */
  connect(): Promise<void>;
  /** Client events, kept across the Sentinel client being made again: `error`, and `ready` / `end` (connected, connection lost). */
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'ready' | 'end', listener: () => void): void;
  /** A connection of its own for subscriptions, with the same endpoint (Sentinel: re-subscribed after a failover by the library). */
  duplicate(): RedisHandle;
  onPrimaryChange(listener: (primary: { host: string; port: number }) => void): void;
  close(): Promise<void>;
}

export function openRedis(endpoint: RedisEndpoint, o: RedisClientOptions = {}): RedisHandle {
  return endpoint.kind === 'server' ? serverHandle(endpoint, makeServerClient(endpoint.url, o)) : sentinelHandle(endpoint, o);
}

function serverHandle(endpoint: RedisEndpoint, client: RedisClient): RedisHandle {
  return {
    client,
    endpoint,
    usable: true,
    send: (args) => client.sendCommand([...args]),
    sendInOrder: (commands) => inOrder(client, commands),
    connect: async () => {
      await client.connect();
    },
    on: (event: string, listener: (...a: any[]) => void) => void client.on(event, listener),
    duplicate: () => serverHandle(endpoint, client.duplicate()),
    onPrimaryChange: () => undefined,
    close: () => closeClient(client),
  };
}

function sentinelHandle(endpoint: Extract<RedisEndpoint, { kind: 'sentinel' }>, o: RedisClientOptions): RedisHandle {
  const settings = clientSettings(o);
  const listeners: ((p: { host: string; port: number }) => void)[] = [];
  const events: { event: string; listener: (...a: any[]) => void }[] = [];
  /** The primary last connected to (`host:port`); the first one is not a change. */
  let primary: string | undefined;
  const make = () => {
    const s = createSentinel({
      name: endpoint.master,
      sentinelRootNodes: endpoint.sentinels.map((n) => ({ host: n.host, port: n.port })),
      nodeClientOptions: settings,
      sentinelClientOptions: { socket: { connectTimeout: settings.socket.connectTimeout, reconnectStrategy: settings.socket.reconnectStrategy } },
      // Two connections to the primary: the reserved one for every command,
      // and one leased for the writes that wait for the replica (sendInOrder):
      // a WAIT blocks its connection until the replica answers, and reads
      // must not queue behind it.
      masterPoolSize: 2,
      reserveClient: true,
      maxCommandRediscovers: 0,
      // A topology check each second besides the Sentinels' pub/sub, which a
      // Sentinel restarting during a failover can miss.
      scanInterval: 1000,
      passthroughClientErrorEvents: true,
      commandOptions: { timeout: 0 },
    });
    s.on('error', () => undefined);
    for (const { event, listener } of events) s.on(event, listener);
    s.on('topology-change', (event: RedisTopologyEvent) => {
      if (event.type !== 'MASTER_CHANGE' || !event.node) return;
      const now = `${event.node.host}:${event.node.port}`;
      const before = primary;
      primary = now;
      if (before !== undefined && before !== now) for (const l of listeners) l({ host: event.node.host, port: event.node.port });
    });
    return s;
  };
  // A Sentinel client whose first connection failed is destroyed by the
  // library and cannot be opened again: a new one takes its place.
  let sentinel = make();
  /** The leased primary connection of sendInOrder. */
  let writer: SentinelInternals | undefined;
  let opened = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const attempt = async (): Promise<void> => {
    try {
      await sentinel.connect();
      writer = (await sentinel.acquire()) as unknown as SentinelInternals;
      opened = true;
    } catch (e) {
      sentinel = make();
      if (!closed) retry = setTimeout(() => void attempt().catch(() => undefined), 1000).unref();
      throw e;
    }
  };
  /**
   * Runs `fn` on the library's current primary connection, through its one
   * entry to it (`_execute`, what its own sendCommand and pipelines go
   * through): the commands `fn` sends reach that connection in order with
   * nothing between them (its public calls each go through their own
   * awaits, and two of them can swap places while it reconnects). A failure
   * before `fn` ran (no primary: a failover) is {@link RedisNotSent}.
   */
  const onPrimary = async <T>(fn: (c: RedisClient) => Promise<T>, via: SentinelInternals = sentinel as unknown as SentinelInternals): Promise<T> => {
    let sent = false;
    try {
      return await via._execute(false, (c) => {
        sent = true;
        return fn(c);
      });
    } catch (e) {
      throw sent ? e : new RedisNotSent(e);
    }
  };
  return {
    get client() {
      return sentinel as unknown as RedisClient;
    },
    endpoint,
    get usable() {
      return opened && !closed;
    },
    send: (args) => onPrimary((c) => c.sendCommand([...args])),
    sendInOrder: (commands) => onPrimary((c) => inOrder(c, commands), writer),
    connect: attempt,
    on: (event: string, listener: (...a: any[]) => void) => {
      events.push({ event, listener });
      sentinel.on(event, listener);
    },
    duplicate: () => sentinelHandle(endpoint, o),
    onPrimaryChange: (l) => void listeners.push(l),
    close: async () => {
      closed = true;
      clearTimeout(retry);
      if (!opened) return;
      try {
        await sentinel.close();
      } catch {
        await sentinel.destroy().catch(() => undefined);
      }
    },
  };
}

/**
 * node-redis' RedisSentinel._execute and RedisSentinelClient._execute (a
 * leased connection's): what their sendCommand is made of,
 * `sendCommand(ro, args) = _execute(ro, c => c.sendCommand(args))`.
 */
interface SentinelInternals {
  _execute<T>(isReadonly: boolean, fn: (client: RedisClient) => Promise<T>): Promise<T>;
}

/** Queues every command on `client` before yielding (node-redis' sendCommand queues synchronously). */
function inOrder(client: RedisClient, commands: readonly (readonly string[])[]): Promise<PromiseSettledResult<unknown>[]> {
  return Promise.allSettled(commands.map((c) => client.sendCommand([...c])));
}

async function closeClient(client: RedisClient): Promise<void> {
  try {
    await client.close();
  } catch {
    try {
      client.destroy();
    } catch {
      /* never connected */
    }
  }
}
