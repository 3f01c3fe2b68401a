-- Sessions through the broker: who, what, when, how they ended, and whether they were recorded.
-- The recording itself (statements, decisions, rows) lives in the recording sink; this is the
-- index `sluice sessions list` reads and the owner check `show`/`replay` make.
--
-- Released migrations are never edited (see 0001_grants.sql). Times are seconds since the Unix
-- epoch; `ended_at` is NULL while the session runs (or when the broker stopped first).

CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    subject     TEXT    NOT NULL,
    auth_method TEXT    NOT NULL,
    ci          TEXT    NOT NULL,  -- JSON object of CI claims
    resource    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    grant_id    TEXT    NOT NULL,
    client      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    bytes_up    INTEGER NOT NULL DEFAULT 0,
    bytes_down  INTEGER NOT NULL DEFAULT 0,
    statements  INTEGER NOT NULL DEFAULT 0,
    end_reason  TEXT,
    recording   TEXT    NOT NULL
) STRICT;

-- Listings: newest first, by subject or resource.
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_subject ON sessions (subject, started_at);
CREATE INDEX sessions_resource ON sessions (resource, started_at);
