-- The audit trail: hash-chained records and the broker's signed checkpoints over them
-- (docs/audit.md, sluice_shared::audit).
--
-- Released migrations are never edited (see 0001_grants.sql). Times are milliseconds since the
-- Unix epoch. `data` is the record's fields as canonical JSON (sorted keys, no whitespace), the
-- same text its hash covers; hashes are lowercase hex SHA-256, signatures base64url Ed25519.

CREATE TABLE audit_records (
    seq       INTEGER NOT NULL PRIMARY KEY,
    at        INTEGER NOT NULL,
    event     TEXT    NOT NULL,
    data      TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;

-- `sluice audit export --since`.
CREATE INDEX audit_records_at ON audit_records (at);

CREATE TABLE audit_checkpoints (
    seq       INTEGER NOT NULL PRIMARY KEY,
    hash      TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    signature TEXT    NOT NULL,
    key_id    TEXT    NOT NULL
) STRICT;

-- Append-only: the broker never changes or removes a record or checkpoint, so SQLite refuses
-- to. Whoever can write the file can drop these triggers; the hash chain and the checkpoints
-- are what make that visible.
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
