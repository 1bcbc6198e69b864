-- 007: the board `main` is a board like any other: its durable copy moves
-- into the board tables of 004 as board 'main', period 'all' (it has no
-- reset), keeping every score, version, event, timestamp and request id.
-- `leaderboard` and `score_events` remain as read-only views of those rows,
-- with the columns 002 gave them, for readers written against 002
-- (operators' queries, old tools). Idempotent: the move runs only while
-- the old tables exist, and a row already moved (or written since by a
-- worker) is never moved backwards.
DO $$
BEGIN
  IF to_regclass('leaderboard') IS NOT NULL
     AND (SELECT relkind FROM pg_class WHERE oid = to_regclass('leaderboard')) = 'r' THEN
    INSERT INTO board_scores (board, period, user_id, name, region, score, version, metadata, updated_at, member)
    SELECT 'main', 'all', user_id, name, region, score, version, NULL, updated_at, NULL FROM leaderboard
    ON CONFLICT (board, period, user_id) DO UPDATE
       SET name = EXCLUDED.name, region = EXCLUDED.region, score = EXCLUDED.score,
           version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
     WHERE board_scores.version < EXCLUDED.version;
    DROP TABLE leaderboard;
  END IF;
  IF to_regclass('score_events') IS NOT NULL
     AND (SELECT relkind FROM pg_class WHERE oid = to_regclass('score_events')) = 'r' THEN
    INSERT INTO board_score_events (board, period, user_id, version, region, op, delta, score, metadata, ts, request_id, created_at)
    SELECT 'main', 'all', user_id, version, region, op, delta, score, NULL, ts, request_id, created_at FROM score_events
    ON CONFLICT (board, period, user_id, version) DO NOTHING;
    DROP TABLE score_events;
  END IF;
END $$;

CREATE OR REPLACE VIEW leaderboard AS
  SELECT user_id, name, region, score, version, updated_at
    FROM board_scores WHERE board = 'main' AND period = 'all';

CREATE OR REPLACE VIEW score_events AS
  SELECT user_id, version, region, op, delta, score, ts, request_id, created_at
    FROM board_score_events WHERE board = 'main' AND period = 'all';
