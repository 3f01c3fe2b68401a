//! Moves a broker's state from one store to another (`sluiced store copy`): the step from one
//! broker on SQLite to several on PostgreSQL. Grants with their votes, logout revocations, the
//! session index and the audit trail with its checkpoints are copied as they are (the hash
//! chain does not change, so `sluice audit verify` passes on the copy); held actions and the
//! brokers' heartbeats belong to running brokers and are not copied.

use crate::{GrantFilter, Store, StoreError};
use sqlx::Row;

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Grants (with their votes).
    pub grants: u64,
    /// Logout revocations.
    pub revocations: u64,
    /// Sessions in the index.
    pub sessions: u64,
    /// Audit records.
    pub audit_records: u64,
    /// Signed audit checkpoints.
    pub checkpoints: u64,
}

/// How many audit records one read and one append carry.
const AUDIT_PAGE: u32 = 1000;

/// The session columns, in the order they are read and written.
const SESSION_COLUMNS: &str = "id, subject, auth_method, ci, resource, kind, role, grant_id, \
     client, started_at, ended_at, bytes_up, bytes_down, statements, end_reason, recording, node";

impl Store {
    /// Copies everything this store keeps into `to`, which must be empty (no grant, session or
    /// audit record): a copy never merges two brokers' histories.
    pub async fn copy_to(&self, to: &Store) -> Result<Copied, StoreError> {
        if !to.is_empty().await? {
            return Err(StoreError::Invalid {
                what: "a copy into a store that already has grants, sessions or audit records \
                       (copy into a new, empty database)"
                    .into(),
            });
        }
        let mut copied = Copied::default();
        let mut grants = self.list(&GrantFilter::default()).await?;
        // Oldest first, so the copy lists them in the same order.
        grants.reverse();
        for grant in &grants {
            to.insert(grant).await?;
            copied.grants += 1;
        }
        let revoked: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT token_id, subject, expires_at, revoked_at FROM revoked_tokens ORDER BY token_id",
        )
        .fetch_all(self.pool())
        .await?;
        for (token_id, subject, expires_at, revoked_at) in revoked {
            sqlx::query(
                "INSERT INTO revoked_tokens (token_id, subject, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_id)
            .bind(subject)
            .bind(expires_at)
            .bind(revoked_at)
            .execute(to.pool())
            .await?;
            copied.revocations += 1;
        }
        copied.sessions = self.copy_sessions(to).await?;
        let mut after = 0;
        loop {
            let page = self.audit_records(after, None, AUDIT_PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            to.append_audit(&page).await?;
            copied.audit_records += page.len() as u64;
        }
        for checkpoint in self.audit_checkpoints(0, None).await? {
            to.insert_audit_checkpoint(&checkpoint).await?;
            copied.checkpoints += 1;
        }
        Ok(copied)
    }

    async fn copy_sessions(&self, to: &Store) -> Result<u64, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_at, id"
        )))
        .fetch_all(self.pool())
        .await?;
        let placeholders = (1..=17)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({placeholders})");
        for row in &rows {
            let text = |i: usize| row.try_get::<String, _>(i);
            let opt_text = |i: usize| row.try_get::<Option<String>, _>(i);
            let int = |i: usize| row.try_get::<i64, _>(i);
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(text(0)?)
                .bind(text(1)?)
                .bind(text(2)?)
                .bind(text(3)?)
                .bind(text(4)?)
                .bind(text(5)?)
                .bind(text(6)?)
                .bind(text(7)?)
                .bind(text(8)?)
                .bind(int(9)?)
                .bind(row.try_get::<Option<i64>, _>(10)?)
                .bind(int(11)?)
                .bind(int(12)?)
                .bind(int(13)?)
                .bind(opt_text(14)?)
                .bind(text(15)?)
                .bind(opt_text(16)?)
                .execute(to.pool())
                .await?;
        }
        Ok(rows.len() as u64)
    }

    /// True when the store holds no grant, session or audit record.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM grants) + (SELECT COUNT(*) FROM sessions) \
             + (SELECT COUNT(*) FROM audit_records)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(count == 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::SessionFilter;
    use serde_json::Map;
    use sluice_shared::audit::{AuditRecord, Checkpoint, Head};
    use sluice_shared::grants::{Grant, Vote};
    use sluice_shared::sessions::SessionInfo;

    /// A pending grant with one vote.
    fn grant(id: &str, created_at: u64) -> Grant {
        let mut grant = crate::tests::grant(id, "alice", created_at);
        grant.votes.push(Vote {
            approver: "bob".into(),
            approve: true,
            reason: None,
            at: created_at + 1,
        });
        grant
    }

    fn session(id: &str, started_at: u64) -> SessionInfo {
        crate::sessions::tests::session(id, "alice", "pg", started_at)
    }

    async fn a_copy_keeps_every_grant_session_and_the_audit_chain(to: Store) {
        let (_dir, from) = crate::test_support::sqlite_store().await;
        for (id, at) in [("g_1", 10), ("g_2", 10), ("g_3", 20)] {
            from.insert(&grant(id, at)).await.unwrap();
        }
        from.revoke_token("t_1", "alice", 500, 100).await.unwrap();
        from.session_started(&session("ses_1", 100)).await.unwrap();
        from.session_started(&session("ses_2", 200)).await.unwrap();
        let end = crate::SessionEnd {
            ended_at: 150,
            bytes_up: 1,
            bytes_down: 2,
            statements: 3,
            end: "closed".into(),
            recording: "recorded".into(),
        };
        from.session_ended("ses_1", &end).await.unwrap();
        from.interrupt_open_sessions().await.unwrap();
        let mut head = Head::genesis();
        let records: Vec<AuditRecord> = (0..2500)
            .map(|_| {
                let record = AuditRecord::next(&head, 1, "test.event.v1".into(), Map::new());
                head = record.head();
                record
            })
            .collect();
        from.append_audit(&records).await.unwrap();
        let checkpoint = Checkpoint {
            seq: 2500,
            hash: head.hash.clone(),
            at: 2,
            signature: "sig".into(),
            key_id: "key".into(),
        };
        from.insert_audit_checkpoint(&checkpoint).await.unwrap();

        let copied = from.copy_to(&to).await.unwrap();
        assert_eq!(
            copied,
            Copied {
                grants: 3,
                revocations: 1,
                sessions: 2,
                audit_records: 2500,
                checkpoints: 1,
            }
        );
        let all = GrantFilter::default();
        assert_eq!(to.list(&all).await.unwrap(), from.list(&all).await.unwrap());
        assert_eq!(
            to.revoked_tokens(0).await.unwrap(),
            from.revoked_tokens(0).await.unwrap()
        );
        let sessions = SessionFilter::default();
        assert_eq!(
            to.sessions(&sessions).await.unwrap(),
            from.sessions(&sessions).await.unwrap()
        );
        assert_eq!(to.audit_records(0, None, 3000).await.unwrap(), records);
        assert_eq!(to.audit_checkpoints(0, None).await.unwrap(), [checkpoint]);
        assert_eq!(to.audit_head().await.unwrap(), Some(head));

        // Never into a store that has a history of its own.
        let err = from.copy_to(&to).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    }

    crate::test_support::on_both_databases!(a_copy_keeps_every_grant_session_and_the_audit_chain);
}
