-- Session tokens revoked before their expiry (`sluice logout`); see ../sqlite.

CREATE TABLE revoked_tokens (
    token_id   TEXT   NOT NULL PRIMARY KEY,
    subject    TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
