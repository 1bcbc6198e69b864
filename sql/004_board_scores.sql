-- 004: the durable copy of named boards, per period (board `main` keeps
-- `leaderboard` and `score_events` of 002), written by worker-service.
-- Scores may be negative here (a board's min_score decides).
CREATE TABLE IF NOT EXISTS board_scores (
  board      text         NOT NULL,
  period     varchar(32)  NOT NULL,
  user_id    text         NOT NULL,
  name       varchar(200) NOT NULL,
  region     varchar(32)  NOT NULL,
  score      bigint       NOT NULL,
  version    bigint       NOT NULL,
  metadata   jsonb,
  updated_at timestamptz  NOT NULL,
  PRIMARY KEY (board, period, user_id)
);

CREATE TABLE IF NOT EXISTS board_score_events (
  board      text        NOT NULL,
  period     varchar(32) NOT NULL,
  user_id    text        NOT NULL,
  version    bigint      NOT NULL,
  region     varchar(32) NOT NULL,
  op         varchar(16) NOT NULL,
  delta      bigint      NOT NULL,
  score      bigint      NOT NULL,
  metadata   jsonb,
  ts         timestamptz NOT NULL,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (board, period, user_id, version)
);
-- /history?board= pages a player's events of one board, newest first.
CREATE INDEX IF NOT EXISTS board_score_events_user_idx ON board_score_events (user_id, board, ts DESC);
