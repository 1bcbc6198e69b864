/**
 * The live leaderboard page: pickers, the live top 10, the player's live
 * card with a history sparkline, the current period with a countdown, and
 * an operator panel. Plain DOM, no framework; see docs/OPERATIONS.md ("The
 * live page") and the push API in docs/API.md.
 */
import './style.css';
import { api, ApiError, boardPath, type AdminStats, type Board, type CardEvent, type HistoryEvent, type Period, type Row, type TopEvent } from './api.js';
import { startConsole } from './console.js';
import { LiveStream, type LiveState } from './live.js';
import { sparkline } from './sparkline.js';
import { flash, TopList } from './top-list.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

const LIMIT = 10;
const TOKEN_KEY = 'lb.session';
const ADMIN_KEY = 'lb.adminKey';

interface Session {
  token: string;
  user_id: string;
  name: string;
  region: string;
}

const state = {
  board: 'main',
  region: 'GLOBAL',
  boards: [] as Board[],
  session: undefined as Session | undefined,
  top: undefined as LiveStream<TopEvent> | undefined,
  card: undefined as LiveStream<CardEvent> | undefined,
  period: undefined as Period | undefined,
};

const topList = new TopList($<HTMLOListElement>('top'));
const boardSelect = $<HTMLSelectElement>('board');
const regionSelect = $<HTMLSelectElement>('region');

// ---------------------------------------------------------------- pickers

async function loadBoards(): Promise<void> {
  let boards: Board[] = [];
  try {
    boards = (await api<{ boards: Board[] }>('/boards')).boards;
  } catch (e) {
    console.warn('GET /boards failed', e);
  }
  // `main` first (it always exists), then the others by title.
  const main = boards.find((b) => b.id === 'main') ?? { id: 'main', title: 'main', reset: 'none', order: 'desc' as const };
  const rest = boards.filter((b) => b.id !== 'main').sort((a, b) => a.title.localeCompare(b.title));
  boardsLoadedAt = Date.now();
  state.boards = [main, ...rest];
  boardSelect.replaceChildren(
    ...state.boards.map((b) => {
      const o = document.createElement('option');
      o.value = b.id;
      o.textContent = b.id === 'main' ? 'Main board' : b.title;
      return o;
    }),
  );
  const wanted = new URLSearchParams(location.search).get('board');
  if (wanted && state.boards.some((b) => b.id === wanted)) state.board = wanted;
  boardSelect.value = state.board;
}

function syncUrl(): void {
  const q = new URLSearchParams();
  if (state.board !== 'main') q.set('board', state.board);
  if (state.region !== 'GLOBAL') q.set('region', state.region);
  const url = `${location.pathname}${q.size > 0 ? `?${q}` : ''}`;
  history.replaceState(null, '', url);
}

// Boards created since the page loaded appear when the picker is next used.
let boardsLoadedAt = 0;
boardSelect.addEventListener('focus', () => {
  if (Date.now() - boardsLoadedAt > 2000) void loadBoards();
});

boardSelect.addEventListener('change', () => {
  state.board = boardSelect.value;
  syncUrl();
  void switchBoard();
});
regionSelect.addEventListener('change', () => {
  state.region = regionSelect.value;
  syncUrl();
  openTop();
});
$('pickers').addEventListener('submit', (e) => e.preventDefault());

// ---------------------------------------------------------------- top 10

const streamStatus = $('stream-status');

function describe(state: LiveState, detail?: string): string {
  switch (state) {
    case 'connecting':
      return 'Connecting…';
    case 'live':
      return 'Live';
    case 'retrying':
      return `Reconnecting (${detail ?? 'connection lost'})`;
    case 'closed':
      return '';
    case 'failed':
      return `Stopped (${detail ?? 'refused'})`;
  }
}

function openTop(): void {
  state.top?.close();
  topList.clear();
  const list = $('top');
  list.setAttribute('aria-busy', 'true');
  const board = state.board;
  const region = state.region;
  state.top = new LiveStream<TopEvent>({
    url: async () => `${boardPath(board, 'live')}?region=${encodeURIComponent(region)}&limit=${LIMIT}`,
    event: 'top',
    onData: (ev) => {
      list.setAttribute('aria-busy', 'false');
      topList.render(ev.rows.slice(0, LIMIT));
      $('top-empty').hidden = ev.rows.length > 0;
      document.body.dataset.topAt = ev.at;
      if (state.period && ev.period && ev.period !== state.period.id) void loadPeriod();
    },
    onState: (s, detail) => {
      streamStatus.textContent = describe(s, detail);
      streamStatus.dataset.state = s;
    },
  }).start();
}

// ---------------------------------------------------------------- period and countdown

let countdownTimer: ReturnType<typeof setInterval> | undefined;

async function loadPeriod(): Promise<void> {
  clearInterval(countdownTimer);
  const box = $('period');
  state.period = undefined;
  box.hidden = true;
  const board = state.board;
  if (board === 'main') return;
  let info: Board;
  let players: number | undefined;
  try {
    info = await api<Board>(`/boards/${encodeURIComponent(board)}`);
    const periods = await api<{ periods: Array<Period & { status: string; players: number }> }>(`/boards/${encodeURIComponent(board)}/periods?limit=1`).catch(() => undefined);
    players = periods?.periods.find((p) => p.status === 'open')?.players;
  } catch (e) {
    console.warn(`GET /boards/${board} failed`, e);
    return;
  }
  if (board !== state.board || !info.current_period || info.reset === 'none') return;
  const period = info.current_period;
  state.period = period;
  $('period-name').textContent = `Period ${period.id}${players === undefined ? '' : ` · ${players.toLocaleString('en-US')} players`}`;
  const countdown = $<HTMLTimeElement>('countdown');
  countdown.dateTime = period.ends_at;
  const tick = () => {
    const left = Date.parse(period.ends_at) - Date.now();
    countdown.textContent = formatDuration(Math.max(0, left));
    if (left <= 0) {
      clearInterval(countdownTimer);
      // The next period starts with the next write; give the closer a moment, then follow it.
      setTimeout(() => void switchBoard(), 1500);
    }
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
  box.hidden = false;
}

function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
  return d > 0 ? `${d}d ${hms}` : hms;
}

async function switchBoard(): Promise<void> {
  openTop();
  if (state.session) openCard();
  await loadPeriod();
}

// ---------------------------------------------------------------- login, register, card

const authForm = $<HTMLFormElement>('auth');
const authError = $('auth-error');

authForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
  void authenticate(submitter?.value === 'register' ? 'register' : 'login');
});

async function authenticate(action: 'login' | 'register'): Promise<void> {
  authError.textContent = '';
  const user_id = $<HTMLInputElement>('auth-user').value.trim();
  const password = $<HTMLInputElement>('auth-password').value;
  if (!user_id || password.length < 8) {
    authError.textContent = 'Enter your player id and a password of at least 8 characters.';
    (user_id ? $('auth-password') : $('auth-user')).focus();
    return;
  }
  const buttons = authForm.querySelectorAll('button');
  buttons.forEach((b) => (b.disabled = true));
  try {
    if (action === 'register') {
      const name = $<HTMLInputElement>('auth-name').value.trim() || user_id;
      await api('/auth/register', { body: { user_id, password, name, region: $<HTMLSelectElement>('auth-region').value } });
    }
    const res = await api<{ token: string; user: { user_id: string; name: string; region: string } }>('/auth/login', { body: { user_id, password } });
    state.session = { token: res.token, user_id: res.user.user_id, name: res.user.name, region: res.user.region };
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify(state.session));
    $<HTMLInputElement>('auth-password').value = '';
    showCard();
  } catch (e) {
    authError.textContent = e instanceof ApiError ? e.message : String(e);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

$('logout').addEventListener('click', () => {
  state.card?.close();
  state.card = undefined;
  state.session = undefined;
  sessionStorage.removeItem(TOKEN_KEY);
  topList.me = undefined;
  $('card').hidden = true;
  authForm.hidden = false;
  $('auth-user').focus();
});

function showCard(): void {
  const s = state.session!;
  topList.me = s.user_id;
  authForm.hidden = true;
  $('card').hidden = false;
  $('card-name').textContent = s.name;
  $('card-id').textContent = `@${s.user_id}`;
  $('card-region').textContent = s.region === 'GLOBAL' ? '' : `(${s.region})`;
  openCard();
  $('card-name').closest('.card')?.querySelector<HTMLElement>('#logout')?.focus();
}

function openCard(): void {
  state.card?.close();
  const s = state.session!;
  const board = state.board;
  let lastScore: number | null | undefined;
  void loadHistory();
  state.card = new LiveStream<CardEvent>({
    // A new ticket for every connection: they expire after 30 s.
    url: async () => {
      const t = await api<{ ticket: string }>('/me/live-ticket', { method: 'POST', token: s.token }).catch((e: unknown) => {
        // The session's token expired or was refused: back to the login form.
        if (e instanceof ApiError && e.status === 401) setTimeout(() => $('logout').click(), 0);
        throw e;
      });
      return `/me/live?board=${encodeURIComponent(board)}&ticket=${encodeURIComponent(t.ticket)}`;
    },
    event: 'card',
    onData: (card) => {
      renderCard(card);
      if (lastScore !== undefined && card.score !== lastScore) void loadHistory(300, card.score ?? undefined);
      lastScore = card.score;
    },
    onState: (st, detail) => {
      $('card-status').textContent = st === 'live' ? '' : describe(st, detail);
    },
  }).start();
}

function renderCard(card: CardEvent): void {
  const set = (id: string, text: string) => {
    const el = $(id);
    if (el.textContent !== text) {
      el.textContent = text;
      flash(el, 'changed');
    }
  };
  // Not on this board (yet): no score, no ranks.
  set('card-score', card.score === null ? '–' : card.score.toLocaleString('en-US'));
  set('card-rank-region', card.rank.region === null ? '–' : `#${card.rank.region}`);
  set('card-rank-global', card.rank.global === null ? '–' : `#${card.rank.global}`);
  const pct = card.percentile.global ?? card.percentile.region;
  set('card-pct', pct === null ? '–' : `${pct}%`);
  $('card').dataset.score = card.score === null ? '' : String(card.score);
  // The window (GLOBAL) lists the neighbours only: the player's own row goes in its place among them
  // (by rank; equal ranks are listed by user_id).
  const rows: Row[] = [...card.around];
  if (card.rank.global !== null && card.score !== null) {
    const self: Row = { rank: card.rank.global, user_id: card.user_id, name: card.name, score: card.score };
    const after = rows.findIndex((r) => r.rank > self.rank || (r.rank === self.rank && r.user_id > self.user_id));
    rows.splice(after === -1 ? rows.length : after, 0, self);
  }
  const around = $('around');
  around.replaceChildren(
    ...rows.map((r: Row) => {
      const li = document.createElement('li');
      li.className = `row${r.user_id === card.user_id ? ' me' : ''}`;
      li.innerHTML = '<span class="rank"></span><span class="name"></span><span class="score"></span>';
      li.children[0]!.textContent = `#${r.rank}`;
      li.children[1]!.textContent = r.name || r.user_id;
      li.children[2]!.textContent = r.score.toLocaleString('en-US');
      return li;
    }),
  );
}

let historyTimer: ReturnType<typeof setTimeout> | undefined;

/** Tries of one history load waiting for the card's score to be persisted. */
const HISTORY_TRIES = 12;

/**
 * The sparkline from GET /history (Postgres: a write shows once the worker
 * persisted it). With `expect` (the card's new score), a history whose
 * latest change is not that score yet is asked again, with a growing
 * delay, until it is (at most {@link HISTORY_TRIES} times).
 */
function loadHistory(delayMs = 0, expect?: number, tries = 0): Promise<void> {
  clearTimeout(historyTimer);
  return new Promise((resolve) => {
    historyTimer = setTimeout(async () => {
      const s = state.session;
      if (!s) return resolve();
      const q = state.board === 'main' ? '' : `&board=${encodeURIComponent(state.board)}`;
      try {
        const h = await api<{ events: HistoryEvent[] }>(`/history/${encodeURIComponent(s.user_id)}?limit=50${q}`);
        const n = h.events.length;
        const label = n === 0 ? 'No score history yet' : `Score history, last ${n} changes, latest ${h.events[0]!.score}`;
        $('sparkline').replaceChildren(sparkline(h.events, label));
        $('history-caption').textContent = n === 0 ? 'No scores yet.' : `Last ${n} change${n === 1 ? '' : 's'}`;
        if (expect !== undefined && h.events[0]?.score !== expect && tries + 1 < HISTORY_TRIES) {
          resolve();
          void loadHistory(Math.min(2000, 250 * 2 ** Math.min(tries, 3)), expect, tries + 1);
          return;
        }
      } catch (e) {
        $('history-caption').textContent = e instanceof ApiError && e.code === 'user_not_found' ? 'No scores yet.' : 'History unavailable.';
      }
      resolve();
    }, delayMs);
  });
}

// ---------------------------------------------------------------- operator panel

const opsKey = $<HTMLInputElement>('ops-key');
const opsError = $('ops-error');
let opsTimer: ReturnType<typeof setInterval> | undefined;

opsKey.value = sessionStorage.getItem(ADMIN_KEY) ?? '';
$('ops-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const key = opsKey.value.trim();
  if (!key) {
    opsError.textContent = 'Enter an admin API key (npm start writes one to .data/admin-key).';
    opsKey.focus();
    return;
  }
  sessionStorage.setItem(ADMIN_KEY, key);
  startOps();
});
$('ops-forget').addEventListener('click', () => {
  sessionStorage.removeItem(ADMIN_KEY);
  opsKey.value = '';
  clearInterval(opsTimer);
  $('ops-table').hidden = true;
});
$<HTMLDetailsElement>('ops').addEventListener('toggle', (e) => {
  if ((e.target as HTMLDetailsElement).open && sessionStorage.getItem(ADMIN_KEY)) startOps();
  else clearInterval(opsTimer);
});

function startOps(): void {
  clearInterval(opsTimer);
  void refreshOps();
  opsTimer = setInterval(() => void refreshOps(), 2000);
}

async function refreshOps(): Promise<void> {
  const key = sessionStorage.getItem(ADMIN_KEY);
  if (!key) return;
  try {
    const s = await api<AdminStats>('/admin/stats', { apiKey: key });
    opsError.textContent = '';
    $('ops-caption').textContent = `Replica ${s.instance}: ${s.write_rate.per_s.toFixed(1)} writes/s applied over the last ${s.write_rate.window_s} s (lag: oldest event not yet queued)`;
    $('ops-body').replaceChildren(
      ...s.shards.map((sh) => {
        const tr = document.createElement('tr');
        const cells = [
          sh.error ? `${sh.shard} (down)` : sh.shard,
          sh.backlog === null ? '–' : sh.backlog.toLocaleString('en-US'),
          sh.lag_ms === null ? '–' : `${(sh.lag_ms / 1000).toFixed(1)} s`,
          sh.writes_per_s.toFixed(1),
        ];
        cells.forEach((text, i) => {
          const cell = document.createElement(i === 0 ? 'th' : 'td');
          if (i === 0) cell.setAttribute('scope', 'row');
          cell.textContent = text;
          tr.append(cell);
        });
        return tr;
      }),
    );
    $('ops-table').hidden = false;
  } catch (e) {
    clearInterval(opsTimer);
    opsError.textContent = e instanceof ApiError && e.code === 'invalid_api_key' ? 'That key was refused.' : `Stats unavailable: ${(e as Error).message}`;
  }
}

// ---------------------------------------------------------------- start

async function main(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const region = (q.get('region') ?? 'GLOBAL').toUpperCase();
  if ([...regionSelect.options].some((o) => o.value === region)) state.region = region;
  regionSelect.value = state.region;
  await loadBoards();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    try {
      state.session = JSON.parse(saved) as Session;
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  openTop();
  void loadPeriod();
  if (state.session) showCard();
}

void main();
// The tenant console at /#console (console.ts).
startConsole();
