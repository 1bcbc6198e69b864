/**
 * What a live channel is: the nchan channel that every stream watching the
 * same thing subscribes to, and what its publisher needs to compute it.
 *
 * Every channel is one project's (its board, its players): the id starts
 * with the project (`<tenant>/<project>`, tenancy.ts `projectScope`), so a
 * stream of project A never carries a row of B, even for the same board id
 * and user id. Channel ids are nginx URI paths as they stand (they appear
 * in the X-Accel-Redirect of a subscription and in the publisher's URL,
 * matched there by `(.+)`): tenant and project ids (`[a-z0-9_-]`), board
 * ids, periods, region names and user ids are all made of unreserved
 * characters, checked before a spec is made, never `.` or `..` alone.
 *
 *   <tenant>/<project>/live/<view>/<limit>                   GET /live: the board main, original rows
 *   <tenant>/<project>/top/<board>/<period>/<view>/<limit>   GET /boards/:id/live
 *   <tenant>/<project>/card/<board>/<period>/<user>          GET /me/live?board=
 *
 * Registrations made before tenancy have specs without a project and ids
 * without the prefix: they are the default project's, and keep being
 * published on the ids they were registered with until nobody watches them.
 */
import { ALL_TIME, DEFAULT_PROJECT, GLOBAL, MAIN_BOARD, projectScope, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import { topChangeName } from '../redis/board-store.js';

/** What a channel shows, and whose: every spec names its project. */
export type ChannelSpec = { readonly project: ProjectRef } & (
  | { readonly kind: 'live'; readonly view: string; readonly limit: number }
  | { readonly kind: 'top'; readonly board: string; readonly period: string; readonly view: string; readonly limit: number; readonly endsAt?: number }
  | {
      readonly kind: 'card';
      readonly board: string;
      readonly period: string;
      readonly userId: string;
      /** From the player's token: the card's name until they are on the board. */
      readonly name: string;
      /** Home region (GLOBAL for none). */
      readonly region: string;
      readonly endsAt?: number;
    }
);

/** The metric label of a channel: `top` (a board's top N) or `me` (a player's card), as the streams were counted. */
export type StreamKind = 'top' | 'me';

export function streamKind(s: ChannelSpec): StreamKind {
  return s.kind === 'card' ? 'me' : 'top';
}

/** The SSE event name of a channel's messages. */
export function eventName(s: ChannelSpec): 'top' | 'card' {
  return s.kind === 'card' ? 'card' : 'top';
}

export function channelId(s: ChannelSpec): string {
  const scope = projectScope(s.project);
  switch (s.kind) {
    case 'live':
      return `${scope}/live/${s.view}/${s.limit}`;
    case 'top':
      return `${scope}/top/${s.board}/${s.period}/${s.view}/${s.limit}`;
    case 'card':
      return `${scope}/card/${s.board}/${s.period}/${s.userId}`;
  }
}

/**
 * The shard that keeps a channel's registration: a regional view's own
 * shard (a regional board keeps its pushes while another shard is down), a
 * card's player's home shard, and for a GLOBAL top (which needs every
 * shard anyway) the shard the channel id hashes to, so they spread.
 */
export function channelShard(router: ShardRouter, s: ChannelSpec): string {
  if (s.kind === 'card') return router.homeShard(s.userId, s.region).id;
  return router.homeShard(s.view === GLOBAL ? channelId(s) : '', s.view).id;
}

/** The top-changed names (`<tenant>/<project>/<board>/<period>/<view>`) whose messages may change what a channel shows. */
export function changeNames(s: ChannelSpec): string[] {
  const p = s.project;
  switch (s.kind) {
    case 'live':
      return [topChangeName(p, MAIN_BOARD, ALL_TIME, s.view)];
    case 'top':
      return [topChangeName(p, s.board, s.period, s.view)];
    case 'card':
      return [topChangeName(p, s.board, s.period, GLOBAL), ...(s.region !== GLOBAL ? [topChangeName(p, s.board, s.period, s.region)] : [])];
  }
}

/**
 * Reads a spec back from its registration (JSON written by {@link channelId}'s
 * caller); undefined when it is not one. A spec registered before tenancy
 * (no project) is the default project's.
 */
export function parseSpec(json: string | null | undefined): ChannelSpec | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const s = JSON.parse(json) as Omit<ChannelSpec, 'project'> & { project?: unknown };
    if (s === null || typeof s !== 'object' || !(s.kind === 'live' || s.kind === 'top' || s.kind === 'card')) return undefined;
    if (s.project === undefined) return { ...s, project: DEFAULT_PROJECT } as ChannelSpec;
    const p = s.project as Partial<ProjectRef> | null;
    return p !== null && typeof p === 'object' && typeof p.tenant === 'string' && typeof p.project === 'string' ? (s as ChannelSpec) : undefined;
  } catch {
    return undefined;
  }
}
