-- 006: the place an entry of an earliest-tie board had (its member: the
-- time the score was reached, then the user id), so that rebuilding Redis
-- from Postgres keeps the order of equal scores.
ALTER TABLE board_scores ADD COLUMN IF NOT EXISTS member text;
