-- The audit trail: hash-chained records and the broker's signed checkpoints over them
-- (docs/audit.md); see ../sqlite for the column meanings. Times are milliseconds.

CREATE TABLE audit_records (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT   NOT NULL,
    data      TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);

CREATE INDEX audit_records_at ON audit_records (at);

CREATE TABLE audit_checkpoints (
    seq       BIGINT NOT NULL PRIMARY KEY,
    hash      TEXT   NOT NULL,
    at        BIGINT NOT NULL,
    signature TEXT   NOT NULL,
    key_id    TEXT   NOT NULL
);

-- Append-only: the broker never changes or removes a record or checkpoint, so the database
-- refuses to (row by row, and TRUNCATE). A superuser can drop these triggers; the hash chain
-- and the signed checkpoints are what make that visible.
CREATE FUNCTION sluice_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_ARGV[0];
END
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION sluice_append_only('audit records');
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_append_only('audit records');
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION sluice_append_only('audit checkpoints');
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_append_only('audit checkpoints');
