-- 002: the durable copy of the boards (latest state per player) and the
-- append-only log of score events, written by worker-service.
CREATE TABLE IF NOT EXISTS leaderboard (
  user_id    text         PRIMARY KEY,
  name       varchar(200) NOT NULL,
  region     varchar(32)  NOT NULL,
  score      bigint       NOT NULL CHECK (score >= 0),
  version    bigint       NOT NULL,
  updated_at timestamptz  NOT NULL
);
CREATE INDEX IF NOT EXISTS leaderboard_region_score_idx ON leaderboard (region, score DESC);
CREATE INDEX IF NOT EXISTS leaderboard_score_idx ON leaderboard (score DESC);

CREATE TABLE IF NOT EXISTS score_events (
  user_id    text        NOT NULL,
  version    bigint      NOT NULL,
  region     varchar(32) NOT NULL,
  op         varchar(16) NOT NULL,
  delta      bigint      NOT NULL,
  score      bigint      NOT NULL,
  ts         timestamptz NOT NULL,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, version)
);
-- History reads page by (user_id, version DESC); the primary key serves them.
CREATE INDEX IF NOT EXISTS score_events_ts_idx ON score_events (ts);
