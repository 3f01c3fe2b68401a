//! Held actions as the brokers sharing a PostgreSQL store see them: the broker serving the
//! session files each one and ends it (withdrawn, timed out, decided by its own approver), an
//! approver on any broker may decide it with a compare-and-set from `pending`, and every change
//! is announced so the serving broker resumes the waiting session at once.

use crate::changes::{self, Change};
use crate::codec::to_db;
use crate::{Store, StoreError};
use sluice_shared::grants::StatementHold;

/// A held action as stored, with how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHold {
    /// The action and its session.
    pub hold: StatementHold,
    /// The broker serving its session.
    pub node: String,
    /// `pending`, `approved`, `denied`, or `ended` (withdrawn or timed out on its broker).
    pub state: String,
    /// Who decided it.
    pub decided_by: Option<String>,
    /// Why (a denial's reason, or how it ended).
    pub reason: Option<String>,
}

/// The columns every read selects, in `from_row`'s order.
macro_rules! columns {
    () => {
        "hold, node, state, decided_by, reason"
    };
}

type Row = (String, String, String, Option<String>, Option<String>);

impl Store {
    /// Files `hold` as pending, served by this node.
    pub async fn insert_hold(&self, hold: &StatementHold) -> Result<(), StoreError> {
        let json = serde_json::to_string(hold).map_err(|e| StoreError::Invalid {
            what: format!("held action {}: {e}", hold.id),
        })?;
        let mut tx = self.dialect().begin_write(self.pool()).await?;
        sqlx::query(
            "INSERT INTO holds (id, node, hold, state, expires_at) VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(&hold.id)
        .bind(self.node().unwrap_or_default())
        .bind(json)
        .bind(to_db("expires_at", hold.expires_at)?)
        .execute(&mut *tx)
        .await?;
        changes::announce(&mut tx, self.dialect(), &Change::Hold(hold.id.clone())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Compare-and-set `pending` → `state` (`approved`, `denied`, `ended`), recording by whom
    /// and why. False when it was no longer pending (someone else ended it first).
    pub async fn end_hold(
        &self,
        id: &str,
        state: &str,
        by: Option<&str>,
        reason: Option<&str>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.dialect().begin_write(self.pool()).await?;
        let done = sqlx::query(
            "UPDATE holds SET state = $1, decided_by = $2, reason = $3, ended_at = $4 \
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(state)
        .bind(by)
        .bind(reason)
        .bind(to_db("ended_at", now)?)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let changed = done.rows_affected() == 1;
        if changed {
            changes::announce(&mut tx, self.dialect(), &Change::Hold(id.to_owned())).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// One held action, however it ended.
    pub async fn hold(&self, id: &str) -> Result<Option<StoredHold>, StoreError> {
        let row: Option<Row> =
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM holds WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(from_row).transpose()
    }

    /// The pending held actions of every broker heard from since `alive_since` that have not
    /// timed out at `now`, oldest first.
    pub async fn pending_holds(
        &self,
        alive_since: u64,
        now: u64,
    ) -> Result<Vec<StoredHold>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM holds WHERE state = 'pending' AND expires_at >= $1 \
             AND node IN (SELECT id FROM nodes WHERE heartbeat_at >= $2) ORDER BY id"
        ))
        .bind(to_db("now", now)?)
        .bind(to_db("alive_since", alive_since)?)
        .fetch_all(self.pool())
        .await?;
        let mut holds = rows
            .into_iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;
        holds.sort_by_key(|h| h.hold.created_at);
        Ok(holds)
    }
}

fn from_row((hold, node, state, decided_by, reason): Row) -> Result<StoredHold, StoreError> {
    let hold: StatementHold = serde_json::from_str(&hold).map_err(|e| StoreError::Invalid {
        what: format!("a stored held action is not valid JSON ({e})"),
    })?;
    Ok(StoredHold {
        hold,
        node,
        state,
        decided_by,
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sluice_shared::grants::Requester;

    fn held(id: &str, created_at: u64) -> StatementHold {
        StatementHold {
            id: id.into(),
            requester: Requester {
                subject: "alice".into(),
                groups: vec!["eng".into()],
                auth_method: "oidc".into(),
                provider: None,
                ci: Default::default(),
            },
            resource: "pg".into(),
            role: "careful".into(),
            grant: "g_1".into(),
            kind: "sql".into(),
            sql: "delete from customers where id = 7".into(),
            rule: "deletes-need-a-dba".into(),
            reason: "deletes need a dba".into(),
            approvers: vec!["dba".into()],
            created_at,
            expires_at: created_at + 600,
        }
    }

    async fn one_decision_wins_and_dead_brokers_holds_are_not_listed(store: Store) {
        let a = store.clone().on_node("a");
        let b = store.clone().on_node("b");
        a.heartbeat(100).await.unwrap();
        b.heartbeat(100).await.unwrap();
        a.insert_hold(&held("s_1", 100)).await.unwrap();
        b.insert_hold(&held("s_2", 101)).await.unwrap();
        let ids = |list: Vec<StoredHold>| list.into_iter().map(|h| h.hold.id).collect::<Vec<_>>();
        assert_eq!(ids(b.pending_holds(50, 150).await.unwrap()), ["s_1", "s_2"]);
        // B decides A's hold; A's own timeout then loses.
        assert!(
            b.end_hold("s_1", "approved", Some("bob"), None, 120)
                .await
                .unwrap()
        );
        assert!(
            !a.end_hold("s_1", "ended", None, Some("timed out"), 121)
                .await
                .unwrap()
        );
        let stored = a.hold("s_1").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.state.as_str(),
                stored.decided_by.as_deref(),
                stored.node.as_str()
            ),
            ("approved", Some("bob"), "a")
        );
        assert_eq!(stored.hold, held("s_1", 100));
        // B falls silent: its hold leaves the queue; past its expiry, any hold does.
        a.heartbeat(200).await.unwrap();
        assert!(a.pending_holds(150, 200).await.unwrap().is_empty());
        assert_eq!(ids(a.pending_holds(50, 200).await.unwrap()), ["s_2"]);
        assert!(a.pending_holds(50, 702).await.unwrap().is_empty());
        assert_eq!(a.hold("s_9").await.unwrap(), None);
    }

    crate::test_support::on_both_databases!(
        one_decision_wins_and_dead_brokers_holds_are_not_listed
    );
}
