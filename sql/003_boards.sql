-- 003: the control plane: board definitions and admin API keys.
-- Every shard's database gets these tables (one schema everywhere); the
-- service uses the first shard's database of the topology as the control
-- plane, so a definition has exactly one home.
CREATE SEQUENCE IF NOT EXISTS boards_revision_seq;

CREATE TABLE IF NOT EXISTS boards (
  id                      text         PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,64}$'),
  title                   varchar(200) NOT NULL,
  sort_order              varchar(4)   NOT NULL CHECK (sort_order IN ('desc', 'asc')),
  operator                varchar(8)   NOT NULL CHECK (operator IN ('best', 'set', 'incr')),
  reset                   varchar(100) NOT NULL,
  tie_break               varchar(16)  NOT NULL CHECK (tie_break IN ('shared', 'earliest')),
  min_score               bigint       NOT NULL,
  max_score               bigint       NOT NULL CHECK (max_score >= min_score),
  max_metadata_bytes      integer      NOT NULL CHECK (max_metadata_bytes BETWEEN 0 AND 65536),
  client_writes           boolean      NOT NULL,
  allow_operator_override boolean      NOT NULL,
  webhook_url             text,
  keep_periods            integer      NOT NULL DEFAULT 2 CHECK (keep_periods BETWEEN 1 AND 1000),
  created_at              timestamptz  NOT NULL DEFAULT now(),
  updated_at              timestamptz  NOT NULL DEFAULT now(),
  -- Deleted boards keep their row (and their archives); their id is not reused.
  deleted_at              timestamptz,
  -- Bumped on every change, from one sequence: replicas reload their copy
  -- of the definitions when the largest revision moves.
  revision                bigint       NOT NULL DEFAULT nextval('boards_revision_seq')
);

-- The board the original endpoints (/score/*, /top, /rank, /around) serve.
INSERT INTO boards (id, title, sort_order, operator, reset, tie_break, min_score, max_score,
                    max_metadata_bytes, client_writes, allow_operator_override)
VALUES ('main', 'Main', 'desc', 'set', 'none', 'shared', 0, 9007199254740991, 1024, true, true)
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS api_keys (
  id         varchar(16)  PRIMARY KEY,
  name       varchar(100) NOT NULL,
  -- SHA-256 of the whole key: keys are 192 random bits, so a fast hash is
  -- enough, and the key itself is never stored.
  key_hash   char(64)     NOT NULL UNIQUE,
  created_at timestamptz  NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
