//! The audit trail's tables: hash-chained records appended in batches, and the broker's signed
//! checkpoints over them.
//!
//! The store keeps what the broker hands it and computes nothing: records arrive already
//! chained and hashed (`sluice_shared::audit`), and `data` is stored as the canonical JSON the
//! hash covers. Both tables are append-only (triggers refuse `UPDATE` and `DELETE`);
//! whether the rows are still what was appended is for the verifier to say, so reads return
//! rows as they are and only refuse what cannot be represented at all
//! ([`StoreError::CorruptAudit`]).

use crate::backend::Sql;
use crate::codec;
use crate::error::StoreError;
use crate::store::Store;
use sluice_shared::audit::{AuditRecord, Checkpoint, Head, canonical_json};
use sqlx::AnyConnection;

/// One consistent read of the trail: what `GET /v1/audit` pages through.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSlice {
    /// Records after the requested seq, oldest first.
    pub records: Vec<AuditRecord>,
    /// The checkpoints that go with them (see [`Store::audit_slice`]).
    pub checkpoints: Vec<Checkpoint>,
    /// The newest record's seq at the time of the read (0: the trail is empty).
    pub head_seq: u64,
}

/// The PostgreSQL advisory lock that serialises appends to the trail (an arbitrary constant,
/// "sluice audit" in ASCII).
const AUDIT_LOCK: i64 = 0x736c_7569_6365_6175;

/// A record row as the database returns it.
type RecordRow = (i64, i64, String, String, String, String);
/// A checkpoint row as the database returns it.
type CheckpointRow = (i64, String, i64, String, String);

impl Store {
    /// Appends `records` in one transaction: all of them or none.
    ///
    /// The caller chains them (consecutive seqs after the head it knows). Appends are
    /// serialised in the database (SQLite's write lock, a PostgreSQL advisory lock), and the
    /// head is read inside: when another writer (another broker sharing the store) appended
    /// first — the stored head is at or beyond the first record's seq, or is its predecessor
    /// with another hash — nothing is written and [`StoreError::AuditHeadMoved`] says where
    /// the trail now ends, so the caller chains its records onto that and tries again. One
    /// chain, never a fork. A stored head below the first record's predecessor (records a
    /// signed checkpoint vouches for were deleted) is the caller's to know about.
    pub async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let mut data = String::new();
            canonical_json(&serde_json::Value::Object(record.data.clone()), &mut data);
            rows.push((
                codec::to_db("seq", record.seq)?,
                codec::to_db("at", record.at)?,
                data,
            ));
        }
        let mut tx = self.dialect().begin_write(self.pool()).await?;
        if self.dialect() == crate::Dialect::Postgres {
            // `pg_advisory_xact_lock` returns `void`, which `Any` cannot read.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(AUDIT_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let stored: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let first = &records[0];
        if let Some((seq, hash)) = stored {
            let seq = from_db("record", seq, "seq", seq)?;
            let moved = seq >= first.seq || (seq + 1 == first.seq && hash != first.prev_hash);
            if moved {
                return Err(StoreError::AuditHeadMoved {
                    head: Head { seq, hash },
                });
            }
        }
        // SQLite allows 32766 bound parameters per statement, PostgreSQL 65535: 6 per row, in
        // chunks well below.
        for (chunk_records, chunk_rows) in records.chunks(500).zip(rows.chunks(500)) {
            let mut insert = Sql::new(
                "INSERT INTO audit_records (seq, at, event, data, prev_hash, hash) VALUES ",
            );
            for (i, (record, (seq, at, data))) in chunk_records.iter().zip(chunk_rows).enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert
                    .push("(")
                    .bind(*seq)
                    .push(", ")
                    .bind(*at)
                    .push(", ")
                    .bind(record.event.as_str())
                    .push(", ")
                    .bind(data.as_str())
                    .push(", ")
                    .bind(record.prev_hash.as_str())
                    .push(", ")
                    .bind(record.hash.as_str())
                    .push(")");
            }
            insert.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest record's seq and hash, where the next record chains on; `None` for an empty
    /// trail.
    pub async fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
        row.map(|(seq, hash)| {
            Ok(Head {
                seq: from_db("record", seq, "seq", seq)?,
                hash,
            })
        })
        .transpose()
    }

    /// Up to `limit` records with `seq > after` and, with `since`, `at >= since`, oldest first.
    pub async fn audit_records(
        &self,
        after: u64,
        since: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        records(&mut conn, after, since, limit).await
    }

    /// Checkpoints with `seq > after` and, with `up_to`, `seq <= up_to`, oldest first.
    pub async fn audit_checkpoints(
        &self,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        checkpoints(&mut conn, after, up_to).await
    }

    /// The newest checkpoint, if any.
    pub async fn last_audit_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<CheckpointRow> = sqlx::query_as(
            "SELECT seq, hash, at, signature, key_id FROM audit_checkpoints \
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(decode_checkpoint).transpose()
    }

    /// Stores a checkpoint. Idempotent: a second checkpoint at the same seq keeps the first.
    pub async fn insert_audit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, signature, key_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(codec::to_db("seq", checkpoint.seq)?)
        .bind(&checkpoint.hash)
        .bind(codec::to_db("at", checkpoint.at)?)
        .bind(&checkpoint.signature)
        .bind(&checkpoint.key_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One page of the trail, read in a single snapshot: up to `limit` records after `after`
    /// (with `at >= since` if given), the checkpoints with seq in `(after, last record]`, or
    /// every checkpoint after `after` when the page is not full (the end of the trail), and the
    /// newest seq.
    ///
    /// One snapshot matters: read apart, a checkpoint written between the two reads could name
    /// a record the page does not have yet, which would look like a cut-off tail.
    pub async fn audit_slice(
        &self,
        after: u64,
        since: Option<u64>,
        limit: u32,
    ) -> Result<AuditSlice, StoreError> {
        let mut tx = self.dialect().begin_snapshot(self.pool()).await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_records")
            .fetch_one(&mut *tx)
            .await?;
        let head_seq = match head {
            Some(seq) => from_db("record", seq, "seq", seq)?,
            None => 0,
        };
        let records = records(&mut tx, after, since, limit).await?;
        let full = limit > 0 && records.len() >= limit as usize;
        // A page filtered by `since` ends where the trail ends only if it is not full; the
        // seq the page reached is the head's when it is the last page.
        let up_to = if full {
            records.last().map(|r| r.seq)
        } else {
            None
        };
        let checkpoints = checkpoints(&mut tx, after, up_to).await?;
        tx.commit().await?;
        Ok(AuditSlice {
            records,
            checkpoints,
            head_seq,
        })
    }
}

async fn records(
    conn: &mut AnyConnection,
    after: u64,
    since: Option<u64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut query =
        Sql::new("SELECT seq, at, event, data, prev_hash, hash FROM audit_records WHERE seq > ");
    query.bind(codec::to_db("after", after)?);
    if let Some(since) = since {
        query
            .push(" AND at >= ")
            .bind(codec::to_db("since", since)?);
    }
    query.push(" ORDER BY seq LIMIT ").bind(i64::from(limit));
    let rows = query.build()?.fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(<RecordRow as sqlx::FromRow<_>>::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_record).collect()
}

async fn checkpoints(
    conn: &mut AnyConnection,
    after: u64,
    up_to: Option<u64>,
) -> Result<Vec<Checkpoint>, StoreError> {
    let mut query =
        Sql::new("SELECT seq, hash, at, signature, key_id FROM audit_checkpoints WHERE seq > ");
    query.bind(codec::to_db("after", after)?);
    if let Some(up_to) = up_to {
        query
            .push(" AND seq <= ")
            .bind(codec::to_db("up_to", up_to)?);
    }
    query.push(" ORDER BY seq");
    let rows = query.build()?.fetch_all(&mut *conn).await?;
    let rows = rows
        .iter()
        .map(<CheckpointRow as sqlx::FromRow<_>>::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_checkpoint).collect()
}

fn decode_record(row: RecordRow) -> Result<AuditRecord, StoreError> {
    let (seq, at, event, data, prev_hash, hash) = row;
    let data = match serde_json::from_str::<serde_json::Value>(&data) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Err(corrupt("record", seq, "data is not a JSON object".into())),
        Err(e) => return Err(corrupt("record", seq, format!("data is not JSON ({e})"))),
    };
    Ok(AuditRecord {
        seq: from_db("record", seq, "seq", seq)?,
        at: from_db("record", seq, "at", at)?,
        event,
        data,
        prev_hash,
        hash,
    })
}

fn decode_checkpoint(row: CheckpointRow) -> Result<Checkpoint, StoreError> {
    let (seq, hash, at, signature, key_id) = row;
    Ok(Checkpoint {
        seq: from_db("checkpoint", seq, "seq", seq)?,
        hash,
        at: from_db("checkpoint", seq, "at", at)?,
        signature,
        key_id,
    })
}

fn from_db(kind: &str, seq: i64, field: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(kind, seq, format!("negative {field} ({value})")))
}

fn corrupt(kind: &str, seq: i64, what: String) -> StoreError {
    StoreError::CorruptAudit {
        row: format!("{kind} {seq}"),
        what,
    }
}

#[cfg(test)]
mod tests;
