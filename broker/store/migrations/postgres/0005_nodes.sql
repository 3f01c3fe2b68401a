-- Brokers sharing the store and which one serves each session: a broker that starts again
-- marks only its own open sessions interrupted, and the sessions of a broker that stopped
-- heart-beating are marked by the others. See ../sqlite.

ALTER TABLE sessions ADD COLUMN node TEXT;

CREATE TABLE nodes (
    id           TEXT   NOT NULL PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Open sessions by broker (the heartbeat sweep).
CREATE INDEX sessions_open_node ON sessions (node) WHERE ended_at IS NULL;
