-- Grants and the approvers' votes on them (PostgreSQL; the SQLite schema is in ../sqlite).
--
-- The migrator stores a checksum of this text: once released, never edit it (not even
-- whitespace); change the schema in a new file and list it in src/migrations.rs.
--
-- Times are seconds since the Unix epoch. JSON columns hold the wire shapes of
-- sluice_shared::grants as text, exactly as the SQLite store keeps them. `seq` orders grants
-- created in the same second (SQLite's rowid does that there).

CREATE TABLE grants (
    seq                BIGSERIAL NOT NULL UNIQUE,
    id                 TEXT      NOT NULL PRIMARY KEY,
    state              TEXT      NOT NULL,
    subject            TEXT      NOT NULL,
    groups             TEXT      NOT NULL,
    auth_method        TEXT      NOT NULL,
    provider           TEXT,
    ci                 TEXT      NOT NULL,
    resource           TEXT      NOT NULL,
    role               TEXT      NOT NULL,
    rule               TEXT      NOT NULL,
    reason             TEXT      NOT NULL,
    ttl_secs           BIGINT    NOT NULL,
    requested_ttl_secs BIGINT,
    approval           TEXT,
    created_at         BIGINT    NOT NULL,
    activated_at       BIGINT,
    expires_at         BIGINT,
    ended_at           BIGINT,
    ended_by           TEXT,
    end_reason         TEXT
);

CREATE INDEX grants_subject_created ON grants (subject, created_at);
CREATE INDEX grants_state ON grants (state);

CREATE TABLE grant_votes (
    seq      BIGSERIAL NOT NULL,
    grant_id TEXT      NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    approver TEXT      NOT NULL,
    approve  BOOLEAN   NOT NULL,
    reason   TEXT,
    at       BIGINT    NOT NULL,
    PRIMARY KEY (grant_id, approver)
);
