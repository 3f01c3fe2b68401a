-- Session tokens revoked before their expiry (`sluice logout`), so a logout survives a broker
-- restart.
--
-- Released migrations are never edited (see 0001_grants.sql). Times are seconds since the Unix
-- epoch. A row is only needed until `expires_at`: after that the token is refused as expired
-- anyway, and the broker deletes the row.

CREATE TABLE revoked_tokens (
    token_id   TEXT    NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

-- Loading the unexpired revocations at start, and pruning the expired ones.
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
