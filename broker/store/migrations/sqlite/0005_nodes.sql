-- Brokers sharing the store (one, for SQLite) and which one serves each session, so a broker
-- that starts again marks only its own open sessions interrupted.
--
-- Released migrations are never edited (see 0001_grants.sql). Times are seconds since the Unix
-- epoch. `node` is NULL on sessions from before this migration.

ALTER TABLE sessions ADD COLUMN node TEXT;

CREATE TABLE nodes (
    id           TEXT    NOT NULL PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;
