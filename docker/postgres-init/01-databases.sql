-- Run once by the postgres image on an empty data volume
-- (/docker-entrypoint-initdb.d). Creates one database per shard of
-- docker/topology.compose.json; the tables come from sql/ via the one-shot
-- `migrate` service (which would also create missing databases, so this
-- only makes the databases exist as soon as Postgres reports healthy).
CREATE DATABASE leaderboard_na;
CREATE DATABASE leaderboard_eu;
CREATE DATABASE leaderboard_asia;
