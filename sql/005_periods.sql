-- 005: closed periods of named boards, in the control-plane database (the
-- topology's first shard's). A period is closed once: the row in
-- period_closes, its final standings in period_archive and its webhook
-- delivery are written in one transaction (worker-service, periods/).
CREATE TABLE IF NOT EXISTS period_closes (
  board      text         NOT NULL,
  period     varchar(32)  NOT NULL,
  starts_at  timestamptz,
  ends_at    timestamptz,
  players    integer      NOT NULL,
  closed_at  timestamptz  NOT NULL DEFAULT now(),
  PRIMARY KEY (board, period)
);

-- One row per player and view (GLOBAL, and the player's region): the place
-- (position, and the stored score and member that ordered it in Redis) and
-- the rank the live board gave at the close, so archived reads answer
-- exactly what the live ones did.
CREATE TABLE IF NOT EXISTS period_archive (
  board     text         NOT NULL,
  period    varchar(32)  NOT NULL,
  view      varchar(32)  NOT NULL,
  position  integer      NOT NULL,
  rank      integer      NOT NULL,
  user_id   text         NOT NULL,
  name      varchar(200) NOT NULL,
  score     bigint       NOT NULL,
  stored    text         NOT NULL,
  member    text         NOT NULL,
  metadata  jsonb,
  PRIMARY KEY (board, period, view, position)
);
CREATE UNIQUE INDEX IF NOT EXISTS period_archive_user_idx ON period_archive (board, period, view, user_id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id           text         PRIMARY KEY,
  board        text         NOT NULL,
  period       varchar(32)  NOT NULL,
  url          text         NOT NULL,
  payload      jsonb        NOT NULL,
  status       varchar(16)  NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts     integer      NOT NULL DEFAULT 0,
  last_error   text,
  created_at   timestamptz  NOT NULL DEFAULT now(),
  delivered_at timestamptz
);

-- The key webhooks are signed with (HMAC-SHA256), per board, shown once to
-- the admin who creates the board.
ALTER TABLE boards ADD COLUMN IF NOT EXISTS webhook_secret text;
