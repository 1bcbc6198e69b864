/**
 * What a live channel is: the nchan channel that every stream watching the
 * same thing subscribes to, and what its publisher needs to compute it.
 *
 * Channel ids are nginx URI paths as they stand (they appear in the
 * X-Accel-Redirect of a subscription and in the publisher's URL): board
 * ids, periods, region names and user ids are all made of unreserved
 * characters, never `.` or `..` alone.
 *
 *   live/<view>/<limit>                         GET /live: the board main, original rows
 *   top/<board>/<period>/<view>/<limit>         GET /boards/:id/live
 *   card/<board>/<period>/<user>                GET /me/live?board=
 */
import { ALL_TIME, GLOBAL, MAIN_BOARD, type ShardRouter } from '@lb/common/contracts';

/** What a channel shows. */
export type ChannelSpec =
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
    };

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
  switch (s.kind) {
    case 'live':
      return `live/${s.view}/${s.limit}`;
    case 'top':
      return `top/${s.board}/${s.period}/${s.view}/${s.limit}`;
    case 'card':
      return `card/${s.board}/${s.period}/${s.userId}`;
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

/** The top-changed names (`<board>/<period>/<view>`) whose messages may change what a channel shows. */
export function changeNames(s: ChannelSpec): string[] {
  switch (s.kind) {
    case 'live':
      return [`${MAIN_BOARD}/${ALL_TIME}/${s.view}`];
    case 'top':
      return [`${s.board}/${s.period}/${s.view}`];
    case 'card':
      return [`${s.board}/${s.period}/${GLOBAL}`, ...(s.region !== GLOBAL ? [`${s.board}/${s.period}/${s.region}`] : [])];
  }
}

/** Reads a spec back from its registration (JSON written by {@link channelId}'s caller); undefined when it is not one. */
export function parseSpec(json: string | null | undefined): ChannelSpec | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const s = JSON.parse(json) as ChannelSpec;
    return s !== null && typeof s === 'object' && (s.kind === 'live' || s.kind === 'top' || s.kind === 'card') ? s : undefined;
  } catch {
    return undefined;
  }
}
