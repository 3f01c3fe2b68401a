-- Sessions through the broker; see ../sqlite. `ended_at` is NULL while the session runs.

CREATE TABLE sessions (
    id          TEXT   NOT NULL PRIMARY KEY,
    subject     TEXT   NOT NULL,
    auth_method TEXT   NOT NULL,
    ci          TEXT   NOT NULL,
    resource    TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    grant_id    TEXT   NOT NULL,
    client      TEXT   NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    bytes_up    BIGINT NOT NULL DEFAULT 0,
    bytes_down  BIGINT NOT NULL DEFAULT 0,
    statements  BIGINT NOT NULL DEFAULT 0,
    end_reason  TEXT,
    recording   TEXT   NOT NULL
);

CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_subject ON sessions (subject, started_at);
CREATE INDEX sessions_resource ON sessions (resource, started_at);
