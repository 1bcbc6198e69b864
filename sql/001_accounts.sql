-- 001: player accounts and the user-id directory.
-- accounts live on the player's home shard; user_directory lives on the shard
-- chosen by hashing the user id, and makes user ids unique across shards.
CREATE TABLE IF NOT EXISTS accounts (
  user_id       text         PRIMARY KEY CHECK (user_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
  name          varchar(200) NOT NULL,
  region        varchar(32)  NOT NULL,
  password_hash text         NOT NULL,
  created_at    timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_directory (
  user_id    text        PRIMARY KEY CHECK (user_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
  region     varchar(32) NOT NULL,
  shard_id   varchar(32) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
