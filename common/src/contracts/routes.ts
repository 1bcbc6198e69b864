/**
 * The public route table: every path the platform answers through nginx,
 * written once. The gateway's forwarding and its token check of score
 * writes (api-gateway/src/routes/proxy.ts), and nginx's live-stream
 * location (scripts/stack/nginx.ts renders it into nginx/nginx.conf) are
 * derived from it.
 *
 * A route is a path (a regular expression source that means the same in
 * JavaScript and in nginx's PCRE: literal segments, `[^/]+`, `.+`, `.*`,
 * `(?:...)`, `?`; anchored by its users), the methods it serves, how it is
 * authenticated and which process answers it. The table is at the edge's
 * grain, not the replicas' router's: a catch-all row such as `/boards(?:/.*)?`
 * stands for every board route the replicas serve, and a path the replicas
 * do not know is still theirs to answer (404 `not_found`), as is a method a
 * path does not serve. So:
 *
 * - a path matching any `leaderboard-service` row is forwarded, whatever its
 *   method (`.` and `..` segments excepted, the gateway's own rule);
 * - `methods` and `auth` say what the edge does before forwarding: a
 *   `scoreWrite` row's token is verified at the gateway, a `stream` row's GET
 *   is a live stream (checked by a replica, then held by nginx's nchan and
 *   counted per client address there).
 */

/** HTTP methods named by the table. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Which methods a route serves: a list, `reads` (GET and HEAD), `writes`
 * (every method but GET and HEAD, as the gateway counts them), or `any`.
 */
export type RouteMethods = readonly HttpMethod[] | 'reads' | 'writes' | 'any';

/**
 * How a route is authenticated:
 * - `none`: public;
 * - `password`: the body carries the credentials (register, login);
 * - `token`: `Authorization: Bearer <JWT>`;
 * - `token-or-key`: a player's Bearer token, or a game server's `X-Api-Key`;
 * - `token-or-ticket`: a Bearer token or a short-lived `?ticket=` (EventSource cannot send headers);
 * - `admin-key`: a platform or admin `X-Api-Key`.
 *
 * Beside these, any route takes an `X-Api-Key` (the live streams also a
 * client key as `?key=`): the key, or else the token, decides the
 * request's project (docs/API.md, "Tenants, projects and keys").
 */
export type RouteAuth = 'none' | 'password' | 'token' | 'token-or-key' | 'token-or-ticket' | 'admin-key';

/** Which process answers a route. */
export type RouteUpstream = 'api-gateway' | 'leaderboard-service';

export interface PublicRoute {
  /** Regular expression source of the whole path, from its leading `/` (unanchored). */
  readonly path: string;
  readonly methods: RouteMethods;
  readonly auth: RouteAuth;
  readonly upstream: RouteUpstream;
  /**
   * A score write: the gateway verifies the Bearer token before the body
   * reaches a replica (unless the request carries `X-Api-Key`, which the
   * replica checks), and the replica verifies it again.
   */
  readonly scoreWrite?: true;
  /** A live stream (Server-Sent Events) on GET: checked by a replica, then held by nginx (nchan), counted per client address. */
  readonly stream?: true;
  /** What is there. */
  readonly doc: string;
}

/**
 * Every public route. The order of first path segments is the order of
 * {@link API_PREFIXES}, and the streams' order is that of nginx's location;
 * within a segment, rows may overlap (a catch-all and the rows that single
 * out a stream or a score write under it).
 */
export const PUBLIC_ROUTES: readonly PublicRoute[] = Object.freeze([
  { path: '/auth/.+', methods: ['POST'], auth: 'password', upstream: 'leaderboard-service', doc: 'POST /auth/register, POST /auth/login' },
  { path: '/score(?:/.*)?', methods: 'reads', auth: 'none', upstream: 'leaderboard-service', doc: 'GET /score (top), /score/rank/:id, /score/around/:id (legacy names of the reads)' },
  {
    path: '/score(?:/.*)?',
    methods: 'writes',
    auth: 'token',
    upstream: 'leaderboard-service',
    scoreWrite: true,
    doc: 'POST /score/create, /score/update, /score/add: the board main\'s writes',
  },
  { path: '/top', methods: 'reads', auth: 'none', upstream: 'leaderboard-service', doc: 'GET /top: the board main\'s top N' },
  { path: '/live', methods: ['GET'], auth: 'none', upstream: 'leaderboard-service', stream: true, doc: 'GET /live: the board main\'s top N, pushed' },
  { path: '/rank/[^/]+', methods: 'reads', auth: 'none', upstream: 'leaderboard-service', doc: 'GET /rank/:id' },
  { path: '/around/[^/]+', methods: 'reads', auth: 'none', upstream: 'leaderboard-service', doc: 'GET /around/:id' },
  { path: '/history/[^/]+', methods: 'reads', auth: 'none', upstream: 'leaderboard-service', doc: 'GET /history/:id' },
  {
    path: '/boards(?:/.*)?',
    methods: 'any',
    auth: 'none',
    upstream: 'leaderboard-service',
    doc: 'GET /boards, /boards/:id, /boards/:id/{top,rank/:uid,around/:uid,periods}, POST /boards/:id/ranks',
  },
  {
    path: '/boards/[^/]+/scores',
    methods: 'writes',
    auth: 'token-or-key',
    upstream: 'leaderboard-service',
    scoreWrite: true,
    doc: 'POST /boards/:id/scores: a player\'s write (token) or a game server\'s (X-Api-Key)',
  },
  { path: '/boards/[^/]+/live', methods: ['GET'], auth: 'none', upstream: 'leaderboard-service', stream: true, doc: 'GET /boards/:id/live: a board\'s top N, pushed' },
  { path: '/me/live-ticket', methods: ['POST'], auth: 'token', upstream: 'leaderboard-service', doc: 'POST /me/live-ticket: a 30 s ticket for /me/live' },
  { path: '/me/live', methods: ['GET'], auth: 'token-or-ticket', upstream: 'leaderboard-service', stream: true, doc: 'GET /me/live: the player\'s own card, pushed' },
  { path: '/admin/.+', methods: 'any', auth: 'admin-key', upstream: 'leaderboard-service', doc: 'GET /admin/stats; /admin/tenants, /admin/projects, /admin/keys; POST /admin/boards, PATCH and DELETE /admin/boards/:id' },
  { path: '/health', methods: 'reads', auth: 'none', upstream: 'api-gateway', doc: 'GET /health: the gateway and the replicas it can reach' },
] satisfies PublicRoute[]);

/** True when `method` is one of `m`. */
export function methodServed(m: RouteMethods, method: string): boolean {
  if (m === 'any') return true;
  const read = method === 'GET' || method === 'HEAD';
  if (m === 'reads') return read;
  if (m === 'writes') return !read;
  return (m as readonly string[]).includes(method);
}

/** The first path segment of a route, as `/<segment>`. */
export function prefixOf(r: PublicRoute): string {
  const m = /^\/[a-z][a-z0-9_-]*/.exec(r.path);
  if (!m) throw new Error(`route ${r.path}: must start with a literal first segment`);
  return m[0];
}

/** The distinct paths of `routes`, in table order, as one alternation (unanchored). */
export function pathAlternation(routes: readonly PublicRoute[]): string {
  return [...new Set(routes.map((r) => r.path))].join('|');
}

/** One anchored RegExp matching the paths of `routes`. */
export function pathRegExp(routes: readonly PublicRoute[]): RegExp {
  return new RegExp(`^(?:${pathAlternation(routes)})$`);
}

/** Every first path segment the API answers, as `/<segment>`, in table order. */
export const API_PREFIXES: readonly string[] = Object.freeze([...new Set(PUBLIC_ROUTES.map(prefixOf))]);

/** The routes the gateway forwards to the replicas. */
export const FORWARDED_ROUTES: readonly PublicRoute[] = Object.freeze(PUBLIC_ROUTES.filter((r) => r.upstream === 'leaderboard-service'));
/** The routes whose token the gateway verifies on a write. */
export const SCORE_WRITE_ROUTES: readonly PublicRoute[] = Object.freeze(PUBLIC_ROUTES.filter((r) => r.scoreWrite === true));
/** The live streams (Server-Sent Events). */
export const LIVE_ROUTES: readonly PublicRoute[] = Object.freeze(PUBLIC_ROUTES.filter((r) => r.stream === true));

/**
 * nginx's location for the live streams: `(^/live$|^/boards/[^/]+/live$|...)`,
 * each path anchored on its own (PCRE, as nginx's `location ~` takes it).
 */
export function liveLocationRegex(): string {
  return `(${[...new Set(LIVE_ROUTES.map((r) => r.path))].map((p) => `^${p}$`).join('|')})`;
}
