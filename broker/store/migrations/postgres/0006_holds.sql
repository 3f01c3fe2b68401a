-- Actions held for approval inside live sessions, shared by the brokers of the store: the
-- broker serving the session (`node`) files and ends them, any broker's approver may decide
-- them (a compare-and-set from `pending`). See ../sqlite.

CREATE TABLE holds (
    id         TEXT   NOT NULL PRIMARY KEY,
    node       TEXT   NOT NULL,
    hold       TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    decided_by TEXT,
    reason     TEXT,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);

-- The approvers' queue.
CREATE INDEX holds_pending ON holds (state) WHERE state = 'pending';
