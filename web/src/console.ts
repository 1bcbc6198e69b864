/**
 * The tenant console, at `/#console`: a tenant's administrators open it
 * with an `admin` API key (kept in this tab's sessionStorage until "Sign
 * out") and manage their projects, and per project its boards (create, edit
 * the mutable fields, delete, a live preview of the top 10), the tenant's
 * keys (create, the secret shown once with a copy button, list, revoke),
 * usage per day and kind with the monthly quota, and the audit log.
 *
 * Every call sends the key as `X-Api-Key`, never in a URL, the live preview
 * included (read with fetch(), live.ts / sse.ts, as the admin key's with
 * `?project=`). Errors are shown in plain words (errors.ts) in `role=alert`
 * regions next to what failed. docs/OPERATIONS.md, "The tenant console".
 */
import { api, ApiError, type ApiKeyInfo, type AuditEntry, type AuditPage, type BoardDef, type CreatedKey, type KeyKind, type Project, type Quota, type TopEvent, type Usage, type UsageKind, USAGE_KINDS } from './api.js';
import { fieldName, plainError } from './errors.js';
import { LiveStream } from './live.js';
import { TopList } from './top-list.js';
import { usageChart, type DayUsage } from './usage-chart.js';

const KEY_STORE = 'lb.consoleKey';
const PROJECT_STORE = 'lb.consoleProject';
const PREVIEW_LIMIT = 10;
/** How often the usage tab refreshes while it is shown (the open period comes from live counters). */
const USAGE_REFRESH_MS = 5000;
const PROJECT_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const BOARD_ID = /^[a-z0-9_-]{1,64}$/;

type Tab = 'boards' | 'keys' | 'usage' | 'audit';
const TABS: readonly Tab[] = ['boards', 'keys', 'usage', 'audit'];

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

/** An element with text and attributes (`class`, `data-*`, ...), children appended. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children);
  return e;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const when = (iso: string) => new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
const timeEl = (iso: string) => h('time', { datetime: iso }, when(iso));

const state = {
  key: undefined as string | undefined,
  tenant: '',
  projects: [] as Project[],
  project: undefined as string | undefined,
  tab: 'boards' as Tab,
  boards: [] as BoardDef[],
  keys: [] as ApiKeyInfo[],
  preview: undefined as { board: string; stream: LiveStream<TopEvent> } | undefined,
  /** Webhook URLs learnt from /admin/boards answers (GET /boards never shows them). */
  webhooks: new Map<string, string | null>(),
  usage: undefined as { days: DayUsage[]; label: string } | undefined,
  usageTimer: undefined as ReturnType<typeof setTimeout> | undefined,
  /** `before` of each audit page seen (null: the newest page), and which is shown. */
  audit: { cursors: [null] as Array<string | null>, index: 0, next: null as string | null, actions: new Set<string>() },
};

/** An /admin call with the console's key; a refused key signs out. */
async function call<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const key = state.key;
  if (!key) throw new ApiError(401, 'invalid_api_key', 'signed out');
  try {
    return await api<T>(path, { ...init, apiKey: key });
  } catch (e) {
    if (e instanceof ApiError && e.code === 'invalid_api_key' && state.key === key) signOut('That key is not valid (or was revoked). Paste a valid admin key.');
    throw e;
  }
}

/** `path` with `?project=` of the chosen project (how an admin key names it). */
function inProject(path: string, project = state.project!): string {
  return `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(project)}`;
}

/** Runs `fn` with the form's buttons disabled; an error goes to `errorEl` in plain words (and focuses the input it names). */
async function busy(form: HTMLElement, errorEl: HTMLElement, what: string, fn: () => Promise<void>, fields: Record<string, string> = {}): Promise<void> {
  errorEl.textContent = '';
  const buttons = [...form.querySelectorAll('button')];
  buttons.forEach((b) => (b.disabled = true));
  form.setAttribute('aria-busy', 'true');
  try {
    await fn();
  } catch (e) {
    errorEl.textContent = plainError(e, what);
    const field = e instanceof ApiError ? e.field : undefined;
    const input = field && fields[field] ? document.getElementById(fields[field]!) : undefined;
    if (input && !(input as HTMLInputElement).disabled) input.focus();
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    form.removeAttribute('aria-busy');
  }
}

/** Shows `text` as an input's problem before anything is sent. */
function invalid(errorEl: HTMLElement, inputId: string, text: string): void {
  errorEl.textContent = text;
  $(inputId).focus();
}

// ---------------------------------------------------------------- the view: /#console or the live page

function route(): void {
  const inConsole = location.hash === '#console';
  $('console').hidden = !inConsole;
  $('live-page').hidden = inConsole;
  $('pickers').hidden = inConsole;
  $(inConsole ? 'nav-console' : 'nav-live').setAttribute('aria-current', 'page');
  $(inConsole ? 'nav-live' : 'nav-console').removeAttribute('aria-current');
  document.title = inConsole ? 'Tenant console · Live leaderboard' : 'Live leaderboard';
  if (inConsole) {
    if (state.key && state.tab === 'usage') scheduleUsage(0);
    (state.key ? $('console-title') : $('console-key')).focus();
  } else {
    clearTimeout(state.usageTimer);
  }
}

// ---------------------------------------------------------------- sign in and out

async function signIn(key: string): Promise<void> {
  const res = await api<{ tenant: string; projects: Project[] }>('/admin/projects', { apiKey: key });
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  state.tenant = res.tenant;
  $('console-key').closest('form')!.hidden = true;
  ($('console-key') as HTMLInputElement).value = '';
  $('console-body').hidden = false;
  $('console-signout').hidden = false;
  $('console-tenant').textContent = `Tenant ${res.tenant}`;
  setProjects(res.projects);
  const remembered = sessionStorage.getItem(PROJECT_STORE);
  const first = res.projects.find((p) => p.id === remembered) ?? res.projects[0];
  selectProject(first?.id);
}

function signOut(why?: string): void {
  state.key = undefined;
  sessionStorage.removeItem(KEY_STORE);
  sessionStorage.removeItem(PROJECT_STORE);
  closePreview();
  clearTimeout(state.usageTimer);
  state.project = undefined;
  state.projects = [];
  state.boards = [];
  state.keys = [];
  state.usage = undefined;
  state.webhooks.clear();
  hideSecret();
  for (const d of document.querySelectorAll<HTMLDialogElement>('#console dialog[open]')) d.close();
  $('console-body').hidden = true;
  $('console-signout').hidden = true;
  $('console-tenant').textContent = '';
  $('console-signin').hidden = false;
  $('console-signin-error').textContent = why ?? '';
  if (!$('console').hidden) $('console-key').focus();
}

$('console-signin').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>('console-key');
  const err = $('console-signin-error');
  const key = input.value.trim();
  if (!key) return invalid(err, 'console-key', 'Paste an admin API key of your tenant.');
  void busy($('console-signin'), err, 'Opening the console', async () => {
    await signIn(key);
    $('console-title').focus();
  });
});
$('console-signout').addEventListener('click', () => signOut());

// ---------------------------------------------------------------- projects

function setProjects(projects: Project[]): void {
  state.projects = [...projects].sort((a, b) => a.id.localeCompare(b.id));
  const list = $('project-list');
  list.replaceChildren(
    ...state.projects.map((p) => {
      const b = h('button', { type: 'button', class: 'project-button', 'data-project': p.id, 'aria-pressed': String(p.id === state.project) }, h('span', { class: 'name' }, p.name), h('code', {}, p.id));
      b.addEventListener('click', () => {
        selectProject(p.id);
        $('project-title').focus();
      });
      return h('li', {}, b);
    }),
  );
  $('projects-empty').hidden = projects.length > 0;
}

function selectProject(id: string | undefined): void {
  closePreview();
  state.project = id;
  state.boards = [];
  if (id) sessionStorage.setItem(PROJECT_STORE, id);
  for (const b of document.querySelectorAll<HTMLButtonElement>('#project-list button')) b.setAttribute('aria-pressed', String(b.dataset.project === id));
  const p = state.projects.find((x) => x.id === id);
  $('project-title').textContent = p ? `${p.name} (${p.id})` : 'No project yet';
  $('project-delete').hidden = !p || (state.tenant === 'default' && p.id === 'default');
  $('project-panel-error').textContent = '';
  $('boards-status').textContent = '';
  $('board-list').replaceChildren();
  // Usage and keys are the tenant's; boards need a project.
  $('board-new').toggleAttribute('disabled', !p);
  $<HTMLSelectElement>('usage-scope').options[0]!.disabled = !p;
  if (!p) $<HTMLSelectElement>('usage-scope').value = 'all';
  updateKeyScope();
  showTab(state.tab, false);
}

$('project-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const err = $('project-error');
  const id = $<HTMLInputElement>('project-id').value.trim();
  const name = $<HTMLInputElement>('project-name').value.trim();
  if (!PROJECT_ID.test(id)) return invalid(err, 'project-id', 'The id is 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit.');
  if (!name) return invalid(err, 'project-name', 'Give the project a name.');
  void busy(
    $('project-form'),
    err,
    'Creating the project',
    async () => {
      const made = await call<Project>('/admin/projects', { body: { id, name } });
      $<HTMLInputElement>('project-id').value = '';
      $<HTMLInputElement>('project-name').value = '';
      await reloadProjects();
      selectProject(made.id);
      $('project-title').focus();
    },
    { id: 'project-id', name: 'project-name' },
  );
});

async function reloadProjects(): Promise<void> {
  const res = await call<{ projects: Project[] }>('/admin/projects');
  setProjects(res.projects);
}

$('project-delete').addEventListener('click', () => {
  const id = state.project;
  if (!id) return;
  void confirmThen(`Delete project ${id}?`, `Its boards and scores become unreachable, its keys are revoked and its players' tokens refused. Its id is never reused. This cannot be undone.`, 'Delete project', async () => {
    await busy($('project-delete').parentElement!, $('project-panel-error'), 'Deleting the project', async () => {
      $('boards-status').textContent = 'Deleting the project…';
      await call(`/admin/projects/${encodeURIComponent(id)}`, { method: 'DELETE' });
      sessionStorage.removeItem(PROJECT_STORE);
      await reloadProjects();
      selectProject(state.projects[0]?.id);
      $('boards-status').textContent = `Project ${id} deleted.`;
    });
  });
});

// ---------------------------------------------------------------- tabs

function showTab(tab: Tab, focus: boolean): void {
  state.tab = tab;
  for (const t of TABS) {
    const button = $(`tab-${t}`);
    button.setAttribute('aria-selected', String(t === tab));
    button.tabIndex = t === tab ? 0 : -1;
    $(`panel-${t}`).hidden = t !== tab;
  }
  if (focus) $(`tab-${tab}`).focus();
  clearTimeout(state.usageTimer);
  if (!state.key) return;
  if (tab === 'boards') void loadBoards();
  else if (tab === 'keys') void loadKeys();
  else if (tab === 'usage') scheduleUsage(0);
  else if (tab === 'audit') void loadAudit();
}

for (const t of TABS) {
  const button = $(`tab-${t}`);
  button.addEventListener('click', () => showTab(t, false));
  button.addEventListener('keydown', (e) => {
    const i = TABS.indexOf(t);
    const to = e.key === 'ArrowRight' ? (i + 1) % TABS.length : e.key === 'ArrowLeft' ? (i + TABS.length - 1) % TABS.length : e.key === 'Home' ? 0 : e.key === 'End' ? TABS.length - 1 : -1;
    if (to === -1) return;
    e.preventDefault();
    showTab(TABS[to]!, true);
  });
}

// ---------------------------------------------------------------- confirmation

const confirmDialog = $<HTMLDialogElement>('confirm-dialog');

/** Asks in a modal dialog (Escape or Cancel: no); runs `fn` on yes. */
async function confirmThen(title: string, text: string, yes: string, fn: () => Promise<void>): Promise<void> {
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-yes').textContent = yes;
  confirmDialog.returnValue = '';
  confirmDialog.showModal();
  $('confirm-no').focus();
  const answer = await new Promise<string>((resolve) => confirmDialog.addEventListener('close', () => resolve(confirmDialog.returnValue), { once: true }));
  if (answer === 'yes') await fn();
}

// ---------------------------------------------------------------- boards

async function loadBoards(): Promise<void> {
  const project = state.project;
  if (!project) return;
  const err = $('boards-error');
  try {
    const res = await call<{ boards: BoardDef[] }>(inProject('/boards'));
    if (project !== state.project) return;
    err.textContent = '';
    state.boards = res.boards.sort((a, b) => (a.id === 'main' ? -1 : b.id === 'main' ? 1 : a.id.localeCompare(b.id)));
    renderBoards();
  } catch (e) {
    if (project === state.project) err.textContent = plainError(e, 'Loading the boards');
  }
}

function describeBoard(b: BoardDef): string {
  const reset = b.reset === 'none' ? 'no reset' : `resets ${b.reset}`;
  const order = b.order === 'asc' ? 'lowest first' : 'highest first';
  const period = b.current_period && b.reset !== 'none' ? ` · period ${b.current_period.id}` : '';
  return `${order} · ${b.operator} · ${reset} · ties ${b.tie_break} · scores ${fmt(b.min_score)}–${b.max_score === Number.MAX_SAFE_INTEGER ? 'max' : fmt(b.max_score)}${b.client_writes ? '' : ' · server writes only'}${period}`;
}

function renderBoards(): void {
  $('board-list').replaceChildren(
    ...state.boards.map((b) => {
      const preview = h('button', { type: 'button', class: 'secondary', 'data-action': 'preview', 'aria-label': `Preview ${b.title} live` }, 'Preview');
      preview.addEventListener('click', () => openPreview(b.id));
      const edit = h('button', { type: 'button', class: 'secondary', 'data-action': 'edit', 'aria-label': `Edit ${b.title}` }, 'Edit');
      edit.addEventListener('click', () => openBoardDialog(b));
      const actions = h('div', { class: 'item-actions' }, preview, edit);
      if (b.id !== 'main') {
        const del = h('button', { type: 'button', class: 'secondary danger', 'data-action': 'delete', 'aria-label': `Delete ${b.title}` }, 'Delete');
        del.addEventListener('click', () => deleteBoard(b));
        actions.append(del);
      }
      return h('li', { 'data-board': b.id, class: state.preview?.board === b.id ? 'previewing' : undefined }, h('div', { class: 'item-main' }, h('p', {}, h('strong', {}, b.title), ' ', h('code', {}, b.id)), h('p', { class: 'meta' }, describeBoard(b))), actions);
    }),
  );
}

function deleteBoard(b: BoardDef): void {
  void confirmThen(`Delete board ${b.id}?`, 'Its scores are removed from every shard; its history stays in the database, and its id is never reused.', 'Delete board', async () => {
    const status = $('boards-status');
    await busy($('board-list'), $('boards-error'), 'Deleting the board', async () => {
      await call(inProject(`/admin/boards/${encodeURIComponent(b.id)}`), { method: 'DELETE' });
      if (state.preview?.board === b.id) closePreview();
      status.textContent = `Board ${b.id} deleted.`;
      await loadBoards();
      $('board-new').focus();
    });
  });
}

const boardDialog = $<HTMLDialogElement>('board-dialog');
let editing: BoardDef | undefined;
const BOARD_FIELDS: Record<string, string> = {
  id: 'bf-id',
  title: 'bf-title',
  order: 'bf-order',
  operator: 'bf-operator',
  reset: 'bf-cron',
  tie_break: 'bf-tie',
  min_score: 'bf-min',
  max_score: 'bf-max',
  max_metadata_bytes: 'bf-meta',
  keep_periods: 'bf-keep',
  webhook_url: 'bf-webhook',
  client_writes: 'bf-client-writes',
};
const input = (id: string) => $<HTMLInputElement>(id);
const select = (id: string) => $<HTMLSelectElement>(id);

function openBoardDialog(b?: BoardDef): void {
  editing = b;
  $('board-form-error').textContent = '';
  $('board-dialog-title').textContent = b ? `Edit board ${b.id}` : 'New board';
  $('bf-save').textContent = b ? 'Save changes' : 'Create board';
  input('bf-id').value = b?.id ?? '';
  input('bf-id').disabled = !!b;
  input('bf-title').value = b?.title ?? '';
  select('bf-order').value = b?.order ?? 'desc';
  select('bf-operator').value = b?.operator ?? 'best';
  const named = ['none', 'daily', 'weekly', 'monthly'].includes(b?.reset ?? 'none');
  select('bf-reset').value = named ? (b?.reset ?? 'none') : 'cron';
  input('bf-cron').value = named ? '' : (b?.reset ?? '');
  select('bf-tie').value = b?.tie_break ?? 'shared';
  for (const el of boardDialog.querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-immutable]')) el.disabled = !!b;
  $('bf-immutable-hint').hidden = !b;
  input('bf-min').value = b ? String(b.min_score) : '';
  input('bf-max').value = b ? String(b.max_score) : '';
  input('bf-min').placeholder = '0';
  input('bf-max').placeholder = String(Number.MAX_SAFE_INTEGER);
  input('bf-meta').value = b ? String(b.max_metadata_bytes) : '';
  input('bf-meta').placeholder = '1024';
  input('bf-keep').value = b ? String(b.keep_periods) : '';
  input('bf-keep').placeholder = '2';
  const hook = b ? state.webhooks.get(b.id) : undefined;
  input('bf-webhook').value = hook ?? '';
  $('bf-webhook-hint').textContent = b ? (hook === undefined ? '(not shown by the API: empty leaves it as it is)' : '(empty leaves it as it is)') : '(optional: period.closed events, signed)';
  $('bf-webhook-clear-label').hidden = !b;
  input('bf-webhook-clear').checked = false;
  input('bf-client-writes').checked = b?.client_writes ?? true;
  syncCron();
  boardDialog.showModal();
  (b ? input('bf-title') : input('bf-id')).focus();
}

function syncCron(): void {
  $('bf-cron-label').hidden = select('bf-reset').value !== 'cron';
}
select('bf-reset').addEventListener('change', syncCron);
$('bf-cancel').addEventListener('click', () => boardDialog.close());
$('board-new').addEventListener('click', () => openBoardDialog());

/** An integer input's value; undefined when empty; NaN when not an integer. */
function intOf(id: string): number | undefined {
  const raw = input(id).value.trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : NaN;
}

$('board-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const err = $('board-form-error');
  const body: Record<string, unknown> = {};
  for (const [field, id] of [['min_score', 'bf-min'], ['max_score', 'bf-max'], ['max_metadata_bytes', 'bf-meta'], ['keep_periods', 'bf-keep']] as const) {
    const v = intOf(id);
    if (Number.isNaN(v)) return invalid(err, id, `${fieldName(field)[0]!.toUpperCase()}${fieldName(field).slice(1)} must be a whole number.`);
    if (v !== undefined && (!editing || v !== editing[field])) body[field] = v;
  }
  const title = input('bf-title').value.trim();
  if (title && title !== editing?.title) body.title = title;
  if (!editing || input('bf-client-writes').checked !== editing.client_writes) body.client_writes = input('bf-client-writes').checked;
  const hook = input('bf-webhook').value.trim();
  if (editing && input('bf-webhook-clear').checked) body.webhook_url = null;
  else if (hook) {
    if (!/^https?:\/\/\S+$/.test(hook)) return invalid(err, 'bf-webhook', 'The webhook URL must start with http:// or https://.');
    if (hook !== state.webhooks.get(editing?.id ?? '')) body.webhook_url = hook;
  }
  const project = state.project!;
  if (editing) {
    const b = editing;
    if (Object.keys(body).length === 0) {
      boardDialog.close();
      $('boards-status').textContent = `Nothing changed on board ${b.id}.`;
      return;
    }
    void busy(
      $('board-form'),
      err,
      'Saving the board',
      async () => {
        const saved = await call<BoardDef>(inProject(`/admin/boards/${encodeURIComponent(b.id)}`, project), { method: 'PATCH', body });
        state.webhooks.set(saved.id, saved.webhook_url ?? null);
        boardDialog.close();
        $('boards-status').textContent = `Board ${saved.id} saved.`;
        await loadBoards();
      },
      BOARD_FIELDS,
    );
    return;
  }
  const id = input('bf-id').value.trim();
  if (!BOARD_ID.test(id)) return invalid(err, 'bf-id', 'The id is 1-64 characters of a-z, 0-9, _ and -.');
  body.id = id;
  body.order = select('bf-order').value;
  body.operator = select('bf-operator').value;
  body.tie_break = select('bf-tie').value;
  const reset = select('bf-reset').value;
  if (reset === 'cron') {
    const cron = input('bf-cron').value.trim();
    if (cron.split(/\s+/).length !== 5) return invalid(err, 'bf-cron', 'A cron expression has 5 fields: minute, hour, day of month, month, day of week (UTC).');
    body.reset = cron;
  } else body.reset = reset;
  void busy(
    $('board-form'),
    err,
    'Creating the board',
    async () => {
      const made = await call<BoardDef>(inProject('/admin/boards', project), { body });
      state.webhooks.set(made.id, made.webhook_url ?? null);
      boardDialog.close();
      const status = $('boards-status');
      status.replaceChildren(`Board ${made.id} created.`);
      if (made.webhook_url && made.webhook_secret) status.append(' Its webhooks are signed with this secret, shown only now: ', h('code', { class: 'inline-secret' }, made.webhook_secret));
      await loadBoards();
    },
    BOARD_FIELDS,
  );
});

// ---------------------------------------------------------------- live preview (the admin key in a header: fetch, not EventSource)

const previewList = new TopList($<HTMLOListElement>('preview-top'));

function openPreview(board: string): void {
  closePreview();
  const project = state.project!;
  const key = state.key!;
  const b = state.boards.find((x) => x.id === board);
  $('preview').hidden = false;
  $('preview-title').textContent = `Live preview: ${b?.title ?? board}`;
  $('preview').dataset.board = board;
  const status = $('preview-status');
  const region = select('preview-region').value;
  const stream = new LiveStream<TopEvent>({
    url: async () => inProject(`/boards/${encodeURIComponent(board)}/live?region=${encodeURIComponent(region)}&limit=${PREVIEW_LIMIT}`, project),
    headers: () => ({ 'x-api-key': key }),
    event: 'top',
    onData: (ev) => {
      previewList.render(ev.rows.slice(0, PREVIEW_LIMIT));
      $('preview-empty').hidden = ev.rows.length > 0;
      $('preview').dataset.at = String(ev.at);
    },
    onState: (s, detail, error) => {
      status.dataset.state = s;
      status.textContent =
        s === 'live' ? `Live · top ${PREVIEW_LIMIT} of ${board}${b?.current_period && b.reset !== 'none' ? `, period ${b.current_period.id}` : ''}` : s === 'connecting' ? 'Connecting…' : s === 'retrying' ? `Reconnecting (${detail ?? 'connection lost'})` : s === 'failed' ? `Stopped: ${plainError(error, 'The preview')}` : '';
    },
  }).start();
  state.preview = { board, stream };
  for (const li of document.querySelectorAll<HTMLElement>('#board-list > li')) li.classList.toggle('previewing', li.dataset.board === board);
  $('preview-title').focus();
}

function closePreview(): void {
  state.preview?.stream.close();
  state.preview = undefined;
  previewList.clear();
  $('preview').hidden = true;
  delete $('preview').dataset.board;
  for (const li of document.querySelectorAll('#board-list > li.previewing')) li.classList.remove('previewing');
}

$('preview-close').addEventListener('click', () => {
  const board = state.preview?.board;
  closePreview();
  document.querySelector<HTMLElement>(`#board-list > li[data-board="${CSS.escape(board ?? '')}"] [data-action="preview"]`)?.focus();
});
$('preview').addEventListener('keydown', (e) => {
  if (e.key === 'Escape') $('preview-close').click();
});
select('preview-region').addEventListener('change', () => {
  if (state.preview) {
    openPreview(state.preview.board);
    select('preview-region').focus();
  }
});

// ---------------------------------------------------------------- keys

/** The id part of a key (`lbk_<id>_<secret>`), to mark the console's own. */
const ownKeyId = () => state.key?.split('_')[1];

function updateKeyScope(): void {
  const kind = select('key-kind').value as KeyKind;
  const scope = $('key-scope');
  if (kind === 'admin') scope.textContent = `An admin key manages the whole tenant ${state.tenant} (all its projects).`;
  else if (state.project) scope.textContent = `A ${kind} key belongs to project ${state.project}.`;
  else scope.textContent = `A ${kind} key belongs to a project: create one first.`;
}
select('key-kind').addEventListener('change', updateKeyScope);

async function loadKeys(): Promise<void> {
  try {
    const res = await call<{ keys: ApiKeyInfo[] }>('/admin/keys');
    $('keys-error').textContent = '';
    state.keys = res.keys;
    renderKeys();
  } catch (e) {
    $('keys-error').textContent = plainError(e, 'Loading the keys');
  }
}

function renderKeys(): void {
  const showRevoked = input('keys-revoked').checked;
  const own = ownKeyId();
  const keys = state.keys.filter((k) => showRevoked || !k.revoked_at).sort((a, b) => Number(!!a.revoked_at) - Number(!!b.revoked_at) || b.created_at.localeCompare(a.created_at));
  $('key-list').replaceChildren(
    ...keys.map((k) => {
      const actions = h('div', { class: 'item-actions' });
      if (!k.revoked_at) {
        const revoke = h('button', { type: 'button', class: 'secondary danger', 'data-action': 'revoke', 'aria-label': `Revoke key ${k.name}` }, 'Revoke');
        revoke.addEventListener('click', () => revokeKey(k));
        actions.append(revoke);
      }
      const meta = h('p', { class: 'meta' }, `${k.project ? `project ${k.project}` : 'whole tenant'} · id ${k.id} · created `, timeEl(k.created_at));
      if (k.revoked_at) meta.append(' · revoked ', timeEl(k.revoked_at));
      return h(
        'li',
        { 'data-key': k.id, class: k.revoked_at ? 'revoked' : undefined },
        h('div', { class: 'item-main' }, h('p', {}, h('strong', {}, k.name), ' ', h('span', { class: `badge kind-${k.kind}` }, k.kind), k.id === own ? h('span', { class: 'badge' }, 'this console') : '', k.revoked_at ? h('span', { class: 'badge revoked' }, 'revoked') : ''), meta),
        actions,
      );
    }),
  );
  const hidden = state.keys.length - keys.length;
  $('keys-status').textContent = `${keys.length} key${keys.length === 1 ? '' : 's'}${hidden > 0 ? ` (${hidden} revoked not shown)` : ''}.`;
}
input('keys-revoked').addEventListener('change', renderKeys);

function revokeKey(k: ApiKeyInfo): void {
  const own = k.id === ownKeyId();
  void confirmThen(`Revoke key ${k.name}?`, `${own ? 'This is the key this console is signed in with: you will be signed out. ' : ''}Every request with it is refused within a second, on every replica. This cannot be undone.`, 'Revoke key', async () => {
    await busy($('key-list'), $('keys-error'), 'Revoking the key', async () => {
      await call(`/admin/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
      if (own) return signOut(`Key ${k.name} was revoked: sign in with another admin key.`);
      await loadKeys();
      $('keys-status').textContent = `Key ${k.name} revoked.`;
      $('key-name').focus();
    });
  });
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const err = $('key-error');
  const name = input('key-name').value.trim();
  const kind = select('key-kind').value as KeyKind;
  if (!name) return invalid(err, 'key-name', 'Give the key a name (what uses it, say "game server").');
  if (kind !== 'admin' && !state.project) return invalid(err, 'key-kind', 'Server and client keys belong to a project: create one first.');
  void busy(
    $('key-form'),
    err,
    'Creating the key',
    async () => {
      const made = await call<CreatedKey>('/admin/keys', { body: { kind, name, ...(kind !== 'admin' && { project: state.project }) } });
      input('key-name').value = '';
      showSecret(made);
      await loadKeys();
    },
    { name: 'key-name', kind: 'key-kind', project: 'key-kind' },
  );
});

function showSecret(k: CreatedKey): void {
  $('key-secret').textContent = k.key;
  $('key-secret-box').dataset.key = k.id;
  $('key-copy-status').textContent = '';
  $('key-secret-title').textContent = `Copy the new ${k.kind} key “${k.name}” now: it is shown only once`;
  $('key-secret-box').hidden = false;
  $('key-copy').focus();
}

function hideSecret(): void {
  $('key-secret').textContent = '';
  $('key-secret-box').hidden = true;
}

$('key-copy').addEventListener('click', async () => {
  const text = $('key-secret').textContent ?? '';
  const status = $('key-copy-status');
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = 'Copied to the clipboard.';
  } catch {
    // No clipboard permission: select the key for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($('key-secret'));
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
    status.textContent = 'The browser did not allow copying: the key is selected, press Ctrl+C (or ⌘C).';
  }
});
$('key-secret-done').addEventListener('click', () => {
  hideSecret();
  input('key-name').focus();
});

// ---------------------------------------------------------------- usage and quota

const monthInput = input('usage-month');
monthInput.value = new Date().toISOString().slice(0, 7);

/** Every day of month `YYYY-MM` as YYYY-MM-DD (UTC). */
function daysOf(month: string): string[] {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const n = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return Array.from({ length: n }, (_, i) => `${month}-${String(i + 1).padStart(2, '0')}`);
}

function shownKinds(): UsageKind[] {
  return [...document.querySelectorAll<HTMLInputElement>('#panel-usage .legend input:checked')].map((i) => i.value as UsageKind);
}

function scheduleUsage(ms: number): void {
  clearTimeout(state.usageTimer);
  state.usageTimer = setTimeout(() => void loadUsage(), ms);
}

async function loadUsage(): Promise<void> {
  if (!state.key || state.tab !== 'usage' || $('console').hidden) return;
  const month = monthInput.value;
  if (!/^\d{4}-\d{2}$/.test(month)) {
    $('usage-error').textContent = 'Pick a month.';
    return;
  }
  const days = daysOf(month);
  const scope = select('usage-scope').value === 'project' && state.project ? state.project : undefined;
  const q = `from=${days[0]}&to=${days.at(-1)}&granularity=day${scope ? `&project=${encodeURIComponent(scope)}` : ''}`;
  let again = true;
  try {
    const [usage, quota] = await Promise.all([call<Usage>(`/admin/usage?${q}`), call<Quota>('/admin/quota').catch((e: unknown) => e as Error)]);
    if (month !== monthInput.value || state.tab !== 'usage') return;
    $('usage-error').textContent = quota instanceof Error ? plainError(quota, 'The quota') : '';
    if (!(quota instanceof Error)) renderQuota(quota);
    const byDay = new Map(days.map((d) => [d, Object.fromEntries(USAGE_KINDS.map((k) => [k, 0])) as Record<UsageKind, number>]));
    for (const row of usage.rows) {
      const c = byDay.get(row.period_start.slice(0, 10));
      if (!c) continue;
      for (const k of USAGE_KINDS) c[k] += Number(row[k]) || 0;
    }
    const label = `Operations per day in ${month} (UTC), ${scope ? `project ${scope}` : `all projects of ${state.tenant}`}`;
    state.usage = { days: [...byDay].map(([day, counts]) => ({ day, counts })), label };
    renderUsage();
    $('usage-status').textContent = `Updated ${new Date().toLocaleTimeString('en-GB')}; the current hour comes from the live counters, so an operation shows within seconds.`;
  } catch (e) {
    $('usage-error').textContent = plainError(e, 'Usage');
    // An answer a retry would repeat: wait for Refresh.
    if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) again = false;
  }
  if (again && state.tab === 'usage') scheduleUsage(USAGE_REFRESH_MS);
}

function renderQuota(q: Quota): void {
  $('quota').hidden = false;
  $('console-tenant').textContent = `Tenant ${q.tenant} · plan ${q.plan}`;
  const gauge = $('quota-gauge');
  const fill = $('quota-fill');
  const resets = new Date(q.resets_at).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
  if (q.limit === null) {
    $('quota-label').textContent = `${fmt(q.used)} operations in ${q.month}: plan ${q.plan} has no monthly quota.`;
    gauge.hidden = true;
    $('quota-detail').textContent = `Counted over all projects; the count restarts ${resets} UTC.`;
    return;
  }
  const pct = q.limit > 0 ? (q.used / q.limit) * 100 : 100;
  gauge.hidden = false;
  gauge.setAttribute('aria-valuemax', String(q.limit));
  gauge.setAttribute('aria-valuenow', String(Math.min(q.used, q.limit)));
  gauge.setAttribute('aria-valuetext', `${pct.toFixed(1)} % used`);
  gauge.dataset.level = pct >= 100 ? 'over' : pct >= 90 ? 'high' : pct >= 75 ? 'warn' : 'ok';
  // CSSOM, not a style attribute: the page's CSP allows no inline styles.
  fill.style.width = `${Math.min(100, pct)}%`;
  $('quota-label').textContent = `Quota for ${q.month}: ${fmt(q.used)} of ${fmt(q.limit)} operations used (${pct < 0.1 && pct > 0 ? '<0.1' : pct.toFixed(1)} %)`;
  $('quota-detail').textContent = `Plan ${q.plan} · ${fmt(q.remaining ?? Math.max(0, q.limit - q.used))} left · over all projects · renews ${resets} UTC${pct >= 100 ? ' · used up: metered requests are refused (429) until then' : ''}.`;
}

function renderUsage(): void {
  const u = state.usage;
  if (!u) return;
  const kinds = shownKinds();
  const box = $('usage-chart');
  box.replaceChildren(usageChart(u.days, kinds, box.clientWidth || 600, u.label));
  $('usage-caption').textContent = u.label;
  const totals = Object.fromEntries(USAGE_KINDS.map((k) => [k, u.days.reduce((s, d) => s + d.counts[k], 0)])) as Record<UsageKind, number>;
  for (const k of USAGE_KINDS) {
    const dd = $(`usage-total-${k}`);
    dd.textContent = fmt(totals[k]);
    dd.dataset.value = String(totals[k]);
  }
  $('usage-table-caption').textContent = u.label;
  $('usage-body').replaceChildren(
    ...u.days
      .filter((d) => USAGE_KINDS.some((k) => d.counts[k] > 0))
      .map((d) => h('tr', {}, h('th', { scope: 'row' }, d.day), ...USAGE_KINDS.map((k) => h('td', {}, fmt(d.counts[k]))))),
  );
  if ($('usage-body').children.length === 0) $('usage-body').append(h('tr', {}, h('td', { colspan: '6' }, 'Nothing counted in this month.')));
}

$('usage-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void loadUsage();
});
monthInput.addEventListener('change', () => scheduleUsage(0));
select('usage-scope').addEventListener('change', () => scheduleUsage(0));
$('panel-usage').querySelector('.legend')!.addEventListener('change', renderUsage);
let resizeFrame = 0;
new ResizeObserver(() => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(renderUsage);
}).observe($('usage-chart'));

// ---------------------------------------------------------------- audit log

async function loadAudit(): Promise<void> {
  const a = state.audit;
  const before = a.cursors[a.index];
  const action = input('audit-action').value.trim();
  const q = new URLSearchParams({ limit: select('audit-limit').value });
  if (before) q.set('before', before);
  if (action) q.set('action', action);
  const err = $('audit-error');
  try {
    const page = await call<AuditPage>(`/admin/audit?${q}`);
    err.textContent = '';
    a.next = page.next_before;
    renderAudit(page.entries);
  } catch (e) {
    err.textContent = plainError(e, 'The audit log');
  }
}

function changeOf(entry: AuditEntry): Node | string {
  if (!entry.change) return '';
  const pre = (v: unknown) => h('pre', {}, v === undefined || v === null ? '—' : JSON.stringify(v, null, 2));
  return h('details', { class: 'change' }, h('summary', {}, 'Change'), h('div', { class: 'change-grid' }, h('div', {}, h('p', { class: 'meta' }, 'Before'), pre(entry.change.before)), h('div', {}, h('p', { class: 'meta' }, 'After'), pre(entry.change.after))));
}

function renderAudit(entries: AuditEntry[]): void {
  const a = state.audit;
  for (const e of entries) a.actions.add(e.action);
  $('audit-actions').replaceChildren(...[...a.actions].sort().map((v) => h('option', { value: v })));
  $('audit-list').replaceChildren(
    ...entries.map((e) => {
      const who = e.key ? `key ${e.key.name} (${e.key.id})` : 'the platform';
      return h(
        'li',
        { 'data-id': e.id, 'data-action': e.action },
        h(
          'div',
          { class: 'item-main' },
          h('p', {}, h('code', { class: 'badge action' }, e.action), ' ', h('strong', {}, e.target)),
          h('p', { class: 'meta' }, timeEl(e.at), ` · ${e.project ? `project ${e.project}` : 'tenant'} · by ${who}${e.request_id ? ` · request ${e.request_id}` : ''}`),
          changeOf(e),
        ),
      );
    }),
  );
  if (entries.length === 0) $('audit-list').append(h('li', { class: 'empty' }, a.index === 0 ? 'No entries.' : 'No older entries.'));
  $('audit-page').textContent = `Page ${a.index + 1}`;
  $<HTMLButtonElement>('audit-newer').disabled = a.index === 0;
  $<HTMLButtonElement>('audit-older').disabled = !a.next;
  $('audit-status').textContent = `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, newest first${a.next ? '; older ones on the next page' : ''}.`;
}

$('audit-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.audit.cursors = [null];
  state.audit.index = 0;
  void loadAudit();
});
select('audit-limit').addEventListener('change', () => $<HTMLFormElement>('audit-form').requestSubmit());
$('audit-older').addEventListener('click', () => {
  const a = state.audit;
  if (!a.next) return;
  a.cursors[a.index + 1] = a.next;
  a.cursors.length = a.index + 2;
  a.index++;
  void loadAudit().then(() => ($<HTMLButtonElement>('audit-older').disabled ? $('audit-newer') : $('audit-older')).focus());
});
$('audit-newer').addEventListener('click', () => {
  const a = state.audit;
  if (a.index === 0) return;
  a.index--;
  void loadAudit().then(() => ($<HTMLButtonElement>('audit-newer').disabled ? $('audit-older') : $('audit-newer')).focus());
});

// ---------------------------------------------------------------- start

/** Wires the view switch and, with a key kept in this tab, signs in again. */
export function startConsole(): void {
  addEventListener('hashchange', route);
  route();
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) {
    void signIn(saved).catch((e: unknown) => {
      signOut(plainError(e, 'Opening the console'));
    });
  }
}
