/**
 * The API's errors (docs/API.md, "Error codes") in plain words, for the
 * tenant console. The server's own message is technical ("id: must match
 * [a-z0-9][a-z0-9_-]{0,63}"); it is kept only where it says what to fix.
 */
import { ApiError } from './api.js';

/** What the console calls an input the API names in `field`. */
const FIELD_NAMES: Record<string, string> = {
  id: 'the id',
  name: 'the name',
  title: 'the title',
  kind: 'the kind of key',
  project: 'the project',
  order: 'the order',
  operator: 'the operator',
  reset: 'the reset',
  tie_break: 'the tie rule',
  min_score: 'the lowest score',
  max_score: 'the highest score',
  max_metadata_bytes: 'the metadata limit',
  client_writes: 'players may write',
  webhook_url: 'the webhook URL',
  keep_periods: 'the periods kept',
  from: 'the first day',
  to: 'the last day',
  month: 'the month',
  limit: 'the page size',
  before: 'the page',
  action: 'the action filter',
};

export function fieldName(field: string | undefined): string {
  return field ? (FIELD_NAMES[field] ?? field) : 'an input';
}

function seconds(e: ApiError): string {
  const s = Number(e.details.retry_after);
  return Number.isFinite(s) && s > 0 ? ` in ${Math.ceil(s)} s` : ' in a moment';
}

/** One sentence for the person at the console; `what` names the action that failed ("Creating the board"), for errors that are not about the input. */
export function plainError(e: unknown, what?: string): string {
  if (!(e instanceof ApiError)) return `Something went wrong in this page: ${(e as Error)?.message ?? String(e)}.`;
  const failed = what ? `${what} failed: ` : '';
  switch (e.code) {
    case 'network':
      return `${failed}the server could not be reached. Check the connection and try again.`;
    case 'invalid_api_key':
      return 'That key is not valid (or was revoked).';
    case 'forbidden':
      return 'This key may not do that: the console needs an admin key of your tenant (server and client keys cannot manage it).';
    case 'invalid_payload':
    case 'invalid_query': {
      // "id: must match …" → "must match …": the field is named in words.
      const why = e.message.replace(/^[a-z_]+: /, '');
      return `Check ${fieldName(e.field)}: it ${why.startsWith('must') || why.startsWith('is ') ? why : `is not accepted (${why})`}.`;
    }
    case 'invalid_json':
    case 'unsupported_media_type':
    case 'payload_too_large':
      return `${failed}the request was refused as malformed (${e.message}). This is a bug of the page: please report it.`;
    case 'project_exists':
      return 'A project with that id exists already, or existed: ids of deleted projects are not reused. Pick another id.';
    case 'board_exists':
      return e.details.deleted === true
        ? 'A board with that id existed and was deleted: ids are not reused. Pick another id.'
        : 'A board with that id exists already in this project. Pick another id.';
    case 'immutable_field':
      return `${fieldName(e.field)[0]!.toUpperCase()}${fieldName(e.field).slice(1)} cannot change once the board exists (the scores already stored depend on it).`;
    case 'board_protected':
      return 'The board “main” cannot be deleted: every project has it.';
    case 'project_protected':
      return 'The default project cannot be deleted.';
    case 'tenant_not_found':
      return 'Your tenant no longer exists (or this key cannot see it).';
    case 'project_not_found':
      return 'That project no longer exists (it may have been deleted in another window).';
    case 'board_not_found':
      return 'That board no longer exists (it may have been deleted in another window).';
    case 'key_not_found':
      return 'That key no longer exists or is revoked already.';
    case 'not_found':
      return `${what ?? 'This'} is not available on this server yet (it answers “no such route”).`;
    case 'quota_exceeded':
      return `Your tenant has used its monthly quota of operations; it renews when the month ends (or raise the plan).`;
    case 'rate_limited':
    case 'project_rate_limited':
    case 'too_many_connections':
    case 'too_many_streams':
      return `Too many requests just now. Try again${seconds(e)}.`;
    case 'queue_full':
      return `The service is busy persisting earlier writes. Try again${seconds(e)}.`;
    case 'unavailable':
      return `${failed}a data store is unavailable right now. Try again${seconds(e)}.`;
    case 'bad_gateway':
    case 'gateway_timeout':
    case 'request_timeout':
      return `${failed}the service did not answer in time. Try again.`;
    case 'internal':
      return `${failed}the server hit an error${e.requestId ? ` (request id ${e.requestId})` : ''}. Try again; if it persists, report that id.`;
    default:
      return `${failed}${e.message}${e.message.endsWith('.') ? '' : '.'}`;
  }
}
