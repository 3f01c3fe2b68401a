-- Grants and the approvers' votes on them.
--
-- The migrator stores a checksum of this text: once released, never edit it (not even
-- whitespace); change the schema in a new file and list it in src/migrations.rs.
--
-- Times are seconds since the Unix epoch. JSON columns hold the wire shapes of
-- sluice_shared::grants (groups: array of strings; ci: object of strings; approval:
-- {groups, count, self_approve, expires_at} or NULL). STRICT makes SQLite refuse a value of
-- the wrong type instead of storing it anyway.

CREATE TABLE grants (
    id                 TEXT    NOT NULL PRIMARY KEY,
    state              TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    groups             TEXT    NOT NULL,
    auth_method        TEXT    NOT NULL,
    provider           TEXT,
    ci                 TEXT    NOT NULL,
    resource           TEXT    NOT NULL,
    role               TEXT    NOT NULL,
    rule               TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    ttl_secs           INTEGER NOT NULL,
    requested_ttl_secs INTEGER,
    approval           TEXT,
    created_at         INTEGER NOT NULL,
    activated_at       INTEGER,
    expires_at         INTEGER,
    ended_at           INTEGER,
    ended_by           TEXT,
    end_reason         TEXT
) STRICT;

-- `sluice grant list` (one subject, newest first) and `find_reusable`.
CREATE INDEX grants_subject_created ON grants (subject, created_at);
-- `live()` after a restart, and the approval queue.
CREATE INDEX grants_state ON grants (state);

CREATE TABLE grant_votes (
    grant_id TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    approver TEXT    NOT NULL,
    approve  INTEGER NOT NULL,
    reason   TEXT,
    at       INTEGER NOT NULL,
    -- One vote per approver and grant: a second one is refused by the database, so two
    -- requests from the same approver cannot both count.
    PRIMARY KEY (grant_id, approver)
) STRICT;
