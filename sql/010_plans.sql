-- 010: plans as data (issue 20): the rate limits every project of a
-- tenant gets from the tenant's plan. Control-plane data, read by the
-- services (lb_app may only read it); the operator changes it here.
--
--   writes_per_s   a project's score writes per second on each shard it
--                  writes to (a token bucket of that capacity, refilled
--                  over one second, checked in the write script before the
--                  player's and the region's); 0 = no project bucket
--   reads_per_s    a project's reads per second over the whole
--                  installation (one counter per project); 0 = none
--   backlog_share  the share of QUEUE_REJECT_LENGTH one project's events
--                  waiting to be persisted may take on a shard; 1 = the
--                  shard's whole backlog, as before tenancy
--
-- Plan `default` (tenant default's) has no project limits: a single-game
-- installation keeps exactly the limits it had (the player's, the
-- region's, the backlog). The next issue adds the monthly quotas.
CREATE TABLE IF NOT EXISTS plans (
  id            text         PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name          varchar(200) NOT NULL,
  writes_per_s  integer      NOT NULL CHECK (writes_per_s >= 0),
  reads_per_s   integer      NOT NULL CHECK (reads_per_s >= 0),
  backlog_share real         NOT NULL CHECK (backlog_share > 0 AND backlog_share <= 1),
  created_at    timestamptz  NOT NULL DEFAULT now()
);
INSERT INTO plans (id, name, writes_per_s, reads_per_s, backlog_share) VALUES
  ('default',    'Default (the installation''s own)', 0, 0, 1),
  ('free',       'Free',         20,   100, 0.05),
  ('hobby',      'Hobby',       100,   500, 0.10),
  ('pro',        'Pro',        1000,  5000, 0.25),
  ('enterprise', 'Enterprise', 5000, 20000, 0.50)
ON CONFLICT (id) DO NOTHING;
-- A plan a tenant of before this migration names and no row has keeps
-- working as it did (no project limits) until the operator sets one.
INSERT INTO plans (id, name, writes_per_s, reads_per_s, backlog_share)
  SELECT DISTINCT plan, plan, 0, 0, 1 FROM tenants
ON CONFLICT (id) DO NOTHING;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'tenants_plan_fk') THEN
    ALTER TABLE tenants ADD CONSTRAINT tenants_plan_fk FOREIGN KEY (plan) REFERENCES plans (id);
  END IF;
END $$;
-- The services read plans; only the owner (migrations, the operator) writes them.
GRANT SELECT ON plans TO lb_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON plans FROM lb_app;
