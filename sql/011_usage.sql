-- 011: metered usage and monthly quotas (issue 21).
--
-- Plans gain a monthly operation quota (per tenant, per calendar month in
-- UTC, over all its projects; NULL = none): free 100,000, hobby 2,000,000,
-- pro 20,000,000; enterprise has none of its own: each enterprise tenant
-- gets its quota in tenants.monthly_ops (set by the platform with
-- PATCH /admin/tenants/:id {"plan": "enterprise", "monthly_ops": N}).
-- The services count operations in Redis (per shard, per hour); the worker
-- rolls them up into usage_hourly (below).
--
-- Idempotent: every step checks what is there.
ALTER TABLE plans ADD COLUMN IF NOT EXISTS monthly_ops bigint CHECK (monthly_ops IS NULL OR monthly_ops > 0);
UPDATE plans SET monthly_ops = 100000 WHERE id = 'free' AND monthly_ops IS NULL;
UPDATE plans SET monthly_ops = 2000000 WHERE id = 'hobby' AND monthly_ops IS NULL;
UPDATE plans SET monthly_ops = 20000000 WHERE id = 'pro' AND monthly_ops IS NULL;

-- An enterprise tenant's own quota (another plan's tenants have NULL: the plan's applies).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS monthly_ops bigint CHECK (monthly_ops IS NULL OR monthly_ops > 0);
-- Where the tenant's own events (quota.warning, quota.exceeded) are POSTed,
-- signed with HMAC-SHA256 under webhook_secret (shown once, when set).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS webhook_url text;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS webhook_secret text;

-- What the worker rolled up: one row per tenant, project, kind, hour and
-- the shard it was counted on. `count` is the shard's counter for that
-- hour as last read (counters only grow, so a rollup run twice, or by two
-- workers at once, writes GREATEST(old, new) and counts once); `closed`
-- once the hour ended more than the grace ago and was read after that.
-- A day is the sum of its hours (usage_daily).
CREATE TABLE IF NOT EXISTS usage_hourly (
  tenant_id  text        NOT NULL CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  -- '*': the tenant's own operations that name no project (an admin key's /admin requests).
  project_id text        NOT NULL CHECK (project_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$' OR project_id = '*'),
  kind       varchar(8)  NOT NULL CHECK (kind IN ('write', 'read', 'stream', 'event', 'admin')),
  hour       timestamptz NOT NULL,
  shard      text        NOT NULL,
  count      bigint      NOT NULL CHECK (count >= 0),
  closed     boolean     NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, hour, project_id, kind, shard)
);

-- A tenant sees (and the worker writes) only the rows of the tenant its
-- transaction names (set_config('app.tenant_id', ..., true)).
ALTER TABLE usage_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_hourly FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS usage_tenant ON usage_hourly;
CREATE POLICY usage_tenant ON usage_hourly
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
-- Usage is billing data: the services insert and raise counts, never delete.
GRANT SELECT, INSERT, UPDATE ON usage_hourly TO lb_app;
REVOKE DELETE, TRUNCATE ON usage_hourly FROM lb_app;

CREATE OR REPLACE VIEW usage_daily WITH (security_invoker = true) AS
  SELECT tenant_id, project_id, kind, date_trunc('day', hour, 'UTC') AS day, sum(count)::bigint AS count, bool_and(closed) AS closed
    FROM usage_hourly GROUP BY tenant_id, project_id, kind, date_trunc('day', hour, 'UTC');
GRANT SELECT ON usage_daily TO lb_app;
