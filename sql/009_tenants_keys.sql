-- 009: tenants, their projects, and API keys of four kinds (issue 20).
-- Control-plane tables: the service uses the first shard's database of the
-- topology (as for boards and api_keys, 003); every database gets them.
--
-- A tenant is a customer with a plan; a project is one game or one
-- environment of a tenant. Tenant 'default' with project 'default' always
-- exists: what has no credentials naming another project is theirs.
-- Deleted tenants and projects keep their row (marked), and their ids are
-- not reused.
CREATE TABLE IF NOT EXISTS tenants (
  id         text         PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name       varchar(200) NOT NULL,
  plan       text         NOT NULL CHECK (plan ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  created_at timestamptz  NOT NULL DEFAULT now(),
  updated_at timestamptz  NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
INSERT INTO tenants (id, name, plan) VALUES ('default', 'Default', 'default') ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS projects (
  tenant_id  text         NOT NULL REFERENCES tenants (id),
  id         text         NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name       varchar(200) NOT NULL,
  created_at timestamptz  NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  PRIMARY KEY (tenant_id, id)
);
INSERT INTO projects (tenant_id, id, name) VALUES ('default', 'default', 'Default') ON CONFLICT (tenant_id, id) DO NOTHING;

-- Keys: platform keys belong to tenant 'default' (the installation's own)
-- and name no project; admin keys name their tenant only; server and
-- client keys their project. The keys of before tenancy were all the
-- operator's: they become platform keys.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS kind varchar(8) NOT NULL DEFAULT 'platform'
  CHECK (kind IN ('platform', 'admin', 'server', 'client'));
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS project_id text;
-- From now on every insert says what it creates.
ALTER TABLE api_keys ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE api_keys ALTER COLUMN tenant_id DROP DEFAULT;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'api_keys_project_fk') THEN
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_project_fk FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'api_keys_kind_scope') THEN
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_kind_scope CHECK (
      (kind = 'platform' AND tenant_id = 'default' AND project_id IS NULL)
      OR (kind = 'admin' AND project_id IS NULL)
      OR (kind IN ('server', 'client') AND project_id IS NOT NULL));
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id, created_at);

-- Row-level security, enabled and forced (the owner too): a session sees
-- the projects and keys of the tenant its transaction set with
-- set_config('app.tenant_id', ..., true) (PgPools.inScope), and with
-- nothing set (NULLIF: '' matches nothing) none at all.
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS projects_tenant ON projects;
CREATE POLICY projects_tenant ON projects
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
DROP POLICY IF EXISTS api_keys_tenant ON api_keys;
CREATE POLICY api_keys_tenant ON api_keys
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- The one lookup made before the tenant is known: a key by its hash. It
-- runs as the tables' owner (SECURITY DEFINER, search_path fixed), and the
-- owner may read (only read) every row: the services connect as a role
-- that owns nothing, so for them only this function crosses tenants, and
-- it answers one live key of one live tenant and project, or nothing.
DROP POLICY IF EXISTS projects_owner_reads ON projects;
CREATE POLICY projects_owner_reads ON projects FOR SELECT
  USING (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'public.projects'::regclass), 'USAGE'));
DROP POLICY IF EXISTS api_keys_owner_reads ON api_keys;
CREATE POLICY api_keys_owner_reads ON api_keys FOR SELECT
  USING (pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'public.api_keys'::regclass), 'USAGE'));

CREATE OR REPLACE FUNCTION api_key_by_hash(p_hash text)
RETURNS TABLE (id text, name text, kind text, tenant_id text, project_id text, plan text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.id::text, k.name::text, k.kind::text, k.tenant_id, k.project_id, t.plan
    FROM public.api_keys k
    JOIN public.tenants t ON t.id = k.tenant_id AND t.deleted_at IS NULL
    LEFT JOIN public.projects p ON p.tenant_id = k.tenant_id AND p.id = k.project_id
   WHERE k.key_hash = p_hash AND k.revoked_at IS NULL
     AND (k.project_id IS NULL OR p.deleted_at IS NULL)
$$;
-- Any role may call it: it answers only to someone holding the key (its
-- hash is the argument), and says no more than the key's own scope.
