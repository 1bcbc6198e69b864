-- 012: the audit log (issue 21). Every administrative action (tenants,
-- projects, keys, boards, plans, webhook replays, lifted login lockouts,
-- quota events) is one row, appended and never changed. A control-plane
-- table like tenants and api_keys (009): the services use the first
-- shard's database of the topology; every database gets it.
--
-- A row is a tenant's: the tenant the action concerns (a tenant created or
-- re-planned by the operator is that tenant's row, not tenant default's).
-- Row-level security (enabled and forced) on app.tenant_id, set per
-- transaction by PgPools.inScope, as for projects and api_keys. The
-- platform's view of every tenant at once is the SECURITY DEFINER function
-- lb_audit_entries below; one tenant's is read in that tenant's scope.
--
-- Immutable: lb_app may INSERT and SELECT only. 008's ALTER DEFAULT
-- PRIVILEGES granted it UPDATE and DELETE on every new table, so they are
-- revoked here (with TRUNCATE); and a trigger refuses UPDATE, DELETE and
-- TRUNCATE from anyone, the owner included (dropping the trigger is then a
-- deliberate act of the owner, not a slip).
--
-- `key_id` / `key_name` are the acting API key's id and name (never its
-- secret); the admin CLI records key_id NULL and key_name 'cli'; both NULL
-- for an action of the system itself (quota events). `change` is
-- {"before": ..., "after": ...} for edits, {"after": ...} for creations,
-- {"before": ...} for deletions, or NULL.
--
-- Idempotent: every step checks what is there or replaces it.
CREATE TABLE IF NOT EXISTS audit_log (
  id         bigserial   PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  tenant_id  text        NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')
                         CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  project_id text        CHECK (project_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  key_id     text,
  key_name   text,
  -- The closed list of actions is the service's (AUDIT_ACTIONS in
  -- leaderboard-service/src/db/audit-repo.ts); here only their form.
  action     text        NOT NULL CHECK (action ~ '^[a-z]+\.[a-z]+$'),
  target     text        NOT NULL CHECK (length(target) BETWEEN 1 AND 300),
  change     jsonb,
  request_id text        CHECK (length(request_id) <= 200)
);
-- A tenant's entries, newest first, whole or by action (the paging key is id).
CREATE INDEX IF NOT EXISTS audit_log_tenant_id ON audit_log (tenant_id, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_tenant_action_id ON audit_log (tenant_id, action, id DESC);
-- Quota events are recorded once per tenant per month per threshold: their
-- target names both (e.g. 'quota 2026-12 75%'), and an insert that finds
-- the row there already does nothing (AuditRepo.append with `once`).
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_quota_once ON audit_log (tenant_id, action, target)
  WHERE action IN ('quota.warning', 'quota.exceeded');

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audit_log_tenant ON audit_log;
CREATE POLICY audit_log_tenant ON audit_log
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
-- The owner may read (only read) every row, as for api_keys (009): what the
-- definer function below relies on when the owner does not bypass RLS.
DROP POLICY IF EXISTS audit_log_owner_reads ON audit_log;
CREATE POLICY audit_log_owner_reads ON audit_log FOR SELECT
  USING (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'public.audit_log'::regclass), 'USAGE'));

GRANT SELECT, INSERT ON audit_log TO lb_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM lb_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO lb_app;

CREATE OR REPLACE FUNCTION lb_audit_immutable()
RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION lb_audit_immutable();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION lb_audit_immutable();

-- The platform's read of every tenant's entries (GET /admin/audit with a
-- platform key and no ?tenant=): newest first, below `before` (NULL: from
-- the newest), of one action (NULL: all), at most `max_rows`.
CREATE OR REPLACE FUNCTION lb_audit_entries(max_rows integer, before_id bigint, only_action text)
RETURNS TABLE (id bigint, at timestamptz, tenant_id text, project_id text, key_id text, key_name text,
               action text, target text, change jsonb, request_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT a.id, a.at, a.tenant_id, a.project_id, a.key_id, a.key_name, a.action, a.target, a.change, a.request_id
    FROM public.audit_log a
   WHERE (before_id IS NULL OR a.id < before_id) AND (only_action IS NULL OR a.action = only_action)
   ORDER BY a.id DESC
   LIMIT least(greatest(max_rows, 0), 1000)
$$;
REVOKE ALL ON FUNCTION lb_audit_entries(integer, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lb_audit_entries(integer, bigint, text) TO lb_app;
