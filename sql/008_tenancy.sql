-- 008: tenants and projects (issue 20). Every tenant-owned table gets
-- tenant_id and project_id; existing rows are the default project's
-- (default/default). Player ids, board ids and everything keyed by them
-- are unique only within a project, so every key gains (tenant_id,
-- project_id) in front.
--
-- Row-level security is enabled and FORCED on each table, with one policy:
-- a row is visible (and writable) only when it is the project named by the
-- transaction's settings app.tenant_id / app.project_id, which the
-- services set with set_config(…, true) (PgPools.inScope) so that they end
-- with the transaction. NULLIF makes an unset or empty setting match
-- nothing. The columns' default comes from the same settings, so an insert
-- made outside a project's transaction fails (NOT NULL) instead of landing
-- in `default`.
--
-- The services connect as lb_app, which owns nothing and has no BYPASSRLS;
-- the role running migrations owns the tables and the SECURITY DEFINER
-- functions below, the only ways to see across projects, each returning
-- just what one piece of system-wide work needs. That owner must be a
-- superuser or have BYPASSRLS (the local `leaderboard` superuser and the
-- compose image's are), or the definer functions would see nothing.
--
-- Idempotent: every step checks what is there or replaces it.

-- The services' role. Roles are per server, so another database of the
-- same server may have created it already (or be creating it now).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lb_app') THEN
    CREATE ROLE lb_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END $$;

DO $$
DECLARE
  t text;
  project_match constant text :=
    $p$tenant_id = NULLIF(current_setting('app.tenant_id', true), '') AND project_id = NULLIF(current_setting('app.project_id', true), '')$p$;
BEGIN
  FOREACH t IN ARRAY ARRAY['accounts', 'user_directory', 'boards', 'board_scores', 'board_score_events',
                           'period_closes', 'period_archive', 'webhook_deliveries'] LOOP
    -- The backfill: ADD COLUMN with a constant default fills every existing row.
    EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL DEFAULT %L', t, 'default');
    EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS project_id text NOT NULL DEFAULT %L', t, 'default');
    -- From now on the project comes from the transaction, never by default.
    EXECUTE format($f$ALTER TABLE %I ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant_id', true), '')$f$, t);
    EXECUTE format($f$ALTER TABLE %I ALTER COLUMN project_id SET DEFAULT NULLIF(current_setting('app.project_id', true), '')$f$, t);
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t::regclass AND conname = t || '_tenant_id_check') THEN
      EXECUTE format($f$ALTER TABLE %I ADD CONSTRAINT %I CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$')$f$, t, t || '_tenant_id_check');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t::regclass AND conname = t || '_project_id_check') THEN
      EXECUTE format($f$ALTER TABLE %I ADD CONSTRAINT %I CHECK (project_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$')$f$, t, t || '_project_id_check');
    END IF;
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS lb_project_rows ON %I', t);
    EXECUTE format('CREATE POLICY lb_project_rows ON %I USING (%s) WITH CHECK (%s)', t, project_match, project_match);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO lb_app', t);
  END LOOP;
END $$;

-- Keys: the project in front. Dropping and re-adding a primary key is safe
-- to repeat; the views of 007 depend on no index.
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_pkey,
  ADD CONSTRAINT accounts_pkey PRIMARY KEY (tenant_id, project_id, user_id);
ALTER TABLE user_directory DROP CONSTRAINT IF EXISTS user_directory_pkey,
  ADD CONSTRAINT user_directory_pkey PRIMARY KEY (tenant_id, project_id, user_id);
ALTER TABLE boards DROP CONSTRAINT IF EXISTS boards_pkey,
  ADD CONSTRAINT boards_pkey PRIMARY KEY (tenant_id, project_id, id);
ALTER TABLE board_scores DROP CONSTRAINT IF EXISTS board_scores_pkey,
  ADD CONSTRAINT board_scores_pkey PRIMARY KEY (tenant_id, project_id, board, period, user_id);
ALTER TABLE board_score_events DROP CONSTRAINT IF EXISTS board_score_events_pkey,
  ADD CONSTRAINT board_score_events_pkey PRIMARY KEY (tenant_id, project_id, board, period, user_id, version);
ALTER TABLE period_closes DROP CONSTRAINT IF EXISTS period_closes_pkey,
  ADD CONSTRAINT period_closes_pkey PRIMARY KEY (tenant_id, project_id, board, period);
ALTER TABLE period_archive DROP CONSTRAINT IF EXISTS period_archive_pkey,
  ADD CONSTRAINT period_archive_pkey PRIMARY KEY (tenant_id, project_id, board, period, view, position);
ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_pkey,
  ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (tenant_id, project_id, id);

DROP INDEX IF EXISTS board_score_events_user_idx;
CREATE INDEX IF NOT EXISTS board_score_events_project_user_idx ON board_score_events (tenant_id, project_id, user_id, board, ts DESC);
DROP INDEX IF EXISTS period_archive_user_idx;
CREATE UNIQUE INDEX IF NOT EXISTS period_archive_project_user_idx ON period_archive (tenant_id, project_id, board, period, view, user_id);
-- The worker's webhook sweep (lb_pending_webhook_deliveries) across projects.
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending_idx ON webhook_deliveries (created_at) WHERE status = 'pending';

-- The compatibility views of 007 answer for the default project only, and
-- as invoker views, so the reader's row-level security applies (a view is
-- otherwise run with its owner's rights, which would skip the policy).
CREATE OR REPLACE VIEW leaderboard WITH (security_invoker = true) AS
  SELECT user_id, name, region, score, version, updated_at
    FROM board_scores WHERE tenant_id = 'default' AND project_id = 'default' AND board = 'main' AND period = 'all';
CREATE OR REPLACE VIEW score_events WITH (security_invoker = true) AS
  SELECT user_id, version, region, op, delta, score, ts, request_id, created_at
    FROM board_score_events WHERE tenant_id = 'default' AND project_id = 'default' AND board = 'main' AND period = 'all';
GRANT SELECT ON leaderboard, score_events TO lb_app;

-- What lb_app may use besides the tables above: the schema, the boards'
-- revision sequence, the control plane's api_keys, and whatever later
-- migrations (run by this same owner) create.
GRANT USAGE ON SCHEMA public TO lb_app;
GRANT USAGE, SELECT ON SEQUENCE boards_revision_seq TO lb_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO lb_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO lb_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO lb_app;

-- System-wide work, through definer functions (owner's rights, a fixed
-- search_path so a caller's objects cannot stand in for ours), each
-- returning only what its caller needs.

-- A replica's board catalog: every project's definitions (not their
-- webhook secrets), reloaded when the largest revision moves.
CREATE OR REPLACE FUNCTION lb_all_boards()
RETURNS TABLE (tenant_id text, project_id text, id text, title varchar, sort_order varchar, operator varchar,
               reset varchar, tie_break varchar, min_score bigint, max_score bigint, max_metadata_bytes integer,
               client_writes boolean, allow_operator_override boolean, webhook_url text, keep_periods integer,
               created_at timestamptz, updated_at timestamptz, deleted_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT b.tenant_id, b.project_id, b.id, b.title, b.sort_order, b.operator, b.reset, b.tie_break, b.min_score,
         b.max_score, b.max_metadata_bytes, b.client_writes, b.allow_operator_override, b.webhook_url,
         b.keep_periods, b.created_at, b.updated_at, b.deleted_at
    FROM public.boards b ORDER BY b.tenant_id, b.project_id, b.id
$$;

CREATE OR REPLACE FUNCTION lb_boards_revision()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(max(revision), 0)::text FROM public.boards
$$;

-- The worker's webhook sweep: which deliveries of which project are still
-- pending after `older_than` (their content is read in the project's scope).
CREATE OR REPLACE FUNCTION lb_pending_webhook_deliveries(older_than interval)
RETURNS TABLE (tenant_id text, project_id text, id text, attempts integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT d.tenant_id, d.project_id, d.id, d.attempts FROM public.webhook_deliveries d
   WHERE d.status = 'pending' AND d.created_at < now() - older_than
   ORDER BY d.created_at
$$;

REVOKE ALL ON FUNCTION lb_all_boards(), lb_boards_revision(), lb_pending_webhook_deliveries(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lb_all_boards(), lb_boards_revision(), lb_pending_webhook_deliveries(interval) TO lb_app;
