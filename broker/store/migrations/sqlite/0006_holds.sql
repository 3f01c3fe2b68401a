-- Actions held for approval inside live sessions, as the brokers sharing a store see them: the
-- broker serving the session (`node`) files and ends them, any broker's approver may decide
-- them. A single SQLite broker keeps them in memory only; the table exists so both databases
-- have the same versions.
--
-- Released migrations are never edited (see 0001_grants.sql). Times are seconds since the Unix
-- epoch; `hold` is the wire shape of sluice_shared::grants::StatementHold as JSON.

CREATE TABLE holds (
    id         TEXT    NOT NULL PRIMARY KEY,
    node       TEXT    NOT NULL,
    hold       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    decided_by TEXT,
    reason     TEXT,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
) STRICT;
