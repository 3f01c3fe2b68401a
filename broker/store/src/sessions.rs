//! The session index: one row per tunnel, written when it starts and when it ends, read by
//! `sluice sessions list/show/replay`.

use crate::backend::Sql;
use crate::codec::to_db;
use crate::{Store, StoreError};
use sluice_shared::sessions::SessionInfo;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// Which sessions a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this subject's.
    pub subject: Option<String>,
    /// Only on this resource.
    pub resource: Option<String>,
    /// Only started at or after this time (seconds since the epoch).
    pub since: Option<u64>,
    /// At most this many, newest first; 0 for no limit.
    pub limit: u32,
}

/// How a session ended, written when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Seconds since the epoch.
    pub ended_at: u64,
    /// Bytes from the client.
    pub bytes_up: u64,
    /// Bytes to the client.
    pub bytes_down: u64,
    /// SQL texts sent.
    pub statements: u64,
    /// `closed`, `revoked: ...`, `error: ...`.
    pub end: String,
    /// `recorded`, `failed: ...`, `none`.
    pub recording: String,
}

/// The columns every read selects, in `session_from_row`'s terms.
macro_rules! columns {
    () => {
        "id, subject, auth_method, ci, resource, kind, role, grant_id, client, started_at, \
         ended_at, bytes_up, bytes_down, statements, end_reason, recording"
    };
}

/// What the broker writes for sessions it finds open at start: it stopped before they ended.
pub const INTERRUPTED: &str = "interrupted: the broker stopped before the session ended";

/// What a broker writes for the open sessions of another broker sharing the store that
/// stopped heart-beating.
pub const SILENT: &str =
    "interrupted: the broker serving the session stopped (no heartbeat from it)";

impl Store {
    /// Records a session that just started.
    pub async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError> {
        let ci = serde_json::to_string(&session.ci).map_err(|e| StoreError::Invalid {
            what: format!("the CI claims of session {}: {e}", session.id),
        })?;
        sqlx::query(
            "INSERT INTO sessions (id, subject, auth_method, ci, resource, kind, role, grant_id, \
             client, started_at, recording, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&session.id)
        .bind(&session.subject)
        .bind(&session.auth_method)
        .bind(ci)
        .bind(&session.resource)
        .bind(&session.kind)
        .bind(&session.role)
        .bind(&session.grant)
        .bind(&session.client)
        .bind(to_db("started_at", session.started_at)?)
        .bind(&session.recording)
        .bind(self.node())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records how a session ended.
    pub async fn session_ended(&self, id: &str, end: &SessionEnd) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = $1, bytes_up = $2, bytes_down = $3, statements = $4, \
             end_reason = $5, recording = $6 WHERE id = $7",
        )
        .bind(to_db("ended_at", end.ended_at)?)
        .bind(to_db("bytes_up", end.bytes_up)?)
        .bind(to_db("bytes_down", end.bytes_down)?)
        .bind(to_db("statements", end.statements)?)
        .bind(&end.end)
        .bind(&end.recording)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the sessions this broker left open as interrupted (at start: it stopped while they
    /// ran): on SQLite every open session (one broker), on PostgreSQL those of this node and
    /// those from before nodes were recorded. Returns how many.
    pub async fn interrupt_open_sessions(&self) -> Result<u64, StoreError> {
        let done = match (self.dialect(), self.node()) {
            (crate::Dialect::Postgres, Some(node)) => {
                sqlx::query(
                    "UPDATE sessions SET end_reason = $1 WHERE ended_at IS NULL \
                     AND end_reason IS NULL AND (node = $2 OR node IS NULL)",
                )
                .bind(INTERRUPTED)
                .bind(node)
                .execute(self.pool())
                .await?
            }
            _ => {
                sqlx::query(
                    "UPDATE sessions SET end_reason = $1 WHERE ended_at IS NULL \
                     AND end_reason IS NULL",
                )
                .bind(INTERRUPTED)
                .execute(self.pool())
                .await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Records that this broker is alive at `now` (the first call also when it started).
    pub async fn heartbeat(&self, now: u64) -> Result<(), StoreError> {
        let Some(node) = self.node() else {
            return Ok(());
        };
        let now = to_db("heartbeat_at", now)?;
        sqlx::query(
            "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(node)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks as interrupted the open sessions of every other broker whose last heartbeat is
    /// older than `silent_since` (it stopped, or lost the database). Returns how many.
    pub async fn interrupt_sessions_of_silent_nodes(
        &self,
        silent_since: u64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET end_reason = $1 WHERE ended_at IS NULL AND end_reason IS NULL \
             AND node IN (SELECT id FROM nodes WHERE heartbeat_at < $2 AND id <> $3)",
        )
        .bind(SILENT)
        .bind(to_db("silent_since", silent_since)?)
        .bind(self.node().unwrap_or_default())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// One session.
    pub async fn session(&self, id: &str) -> Result<Option<SessionInfo>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Sessions matching `filter`, newest first.
    pub async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionInfo>, StoreError> {
        let mut query = Sql::new(concat!("SELECT ", columns!(), " FROM sessions WHERE 1 = 1"));
        if let Some(subject) = &filter.subject {
            query.push(" AND subject = ").bind(subject.as_str());
        }
        if let Some(resource) = &filter.resource {
            query.push(" AND resource = ").bind(resource.as_str());
        }
        if let Some(since) = filter.since {
            query
                .push(" AND started_at >= ")
                .bind(to_db("since", since)?);
        }
        query.push(" ORDER BY started_at DESC, id DESC");
        if filter.limit > 0 {
            query.push(" LIMIT ").bind(i64::from(filter.limit));
        }
        let rows = query.build()?.fetch_all(self.pool()).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Deletes sessions started before `before` (retention). Returns how many.
    pub async fn prune_sessions(&self, before: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE started_at < $1")
            .bind(to_db("before", before)?)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

fn session_from_row(row: &AnyRow) -> Result<SessionInfo, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: String| StoreError::CorruptSession {
        id: id.clone(),
        what,
    };
    let ci: String = row.try_get("ci")?;
    let ci: BTreeMap<String, String> =
        serde_json::from_str(&ci).map_err(|e| corrupt(format!("CI claims: {e}")))?;
    let count = |name: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(name)?;
        u64::try_from(value).map_err(|_| corrupt(format!("negative {name} ({value})")))
    };
    let ended_at: Option<i64> = row.try_get("ended_at")?;
    let ended_at = ended_at
        .map(|at| u64::try_from(at).map_err(|_| corrupt(format!("negative ended_at ({at})"))))
        .transpose()?;
    Ok(SessionInfo {
        subject: row.try_get("subject")?,
        auth_method: row.try_get("auth_method")?,
        ci,
        resource: row.try_get("resource")?,
        kind: row.try_get("kind")?,
        role: row.try_get("role")?,
        grant: row.try_get("grant_id")?,
        client: row.try_get("client")?,
        started_at: count("started_at")?,
        ended_at,
        bytes_up: count("bytes_up")?,
        bytes_down: count("bytes_down")?,
        statements: count("statements")?,
        end: row.try_get("end_reason")?,
        recording: row.try_get("recording")?,
        id,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn session(id: &str, subject: &str, resource: &str, started_at: u64) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            subject: subject.into(),
            auth_method: "workload".into(),
            ci: BTreeMap::from([("repository".into(), "acme/api".into())]),
            resource: resource.into(),
            kind: "postgres".into(),
            role: "read".into(),
            grant: "g_1".into(),
            client: "127.0.0.1:5000".into(),
            started_at,
            ended_at: None,
            bytes_up: 0,
            bytes_down: 0,
            statements: 0,
            end: None,
            recording: "recorded".into(),
        }
    }

    async fn sessions_are_listed_filtered_ended_interrupted_and_pruned(store: Store) {
        for s in [
            session("ses_a", "alice", "pg", 100),
            session("ses_b", "bob", "pg", 200),
            session("ses_c", "alice", "cache", 300),
        ] {
            store
                .session_started(&s)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let ids = |list: Vec<SessionInfo>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
        let all = store
            .sessions(&SessionFilter::default())
            .await
            .unwrap_or_default();
        assert_eq!(ids(all), ["ses_c", "ses_b", "ses_a"]);
        let alice = SessionFilter {
            subject: Some("alice".into()),
            ..SessionFilter::default()
        };
        assert_eq!(
            ids(store.sessions(&alice).await.unwrap_or_default()),
            ["ses_c", "ses_a"]
        );
        let recent_pg = SessionFilter {
            resource: Some("pg".into()),
            since: Some(150),
            ..SessionFilter::default()
        };
        assert_eq!(
            ids(store.sessions(&recent_pg).await.unwrap_or_default()),
            ["ses_b"]
        );

        let end = SessionEnd {
            ended_at: 250,
            bytes_up: 10,
            bytes_down: 20,
            statements: 3,
            end: "closed".into(),
            recording: "recorded".into(),
        };
        store
            .session_ended("ses_b", &end)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.interrupt_open_sessions().await.unwrap_or_default(), 2);
        let b = store.session("ses_b").await.unwrap_or_default();
        let b = b.unwrap_or_else(|| panic!("ses_b is gone"));
        assert_eq!(
            (b.ended_at, b.statements, b.end.as_deref()),
            (Some(250), 3, Some("closed"))
        );
        assert_eq!(b.ci.get("repository").map(String::as_str), Some("acme/api"));
        let a = store.session("ses_a").await.unwrap_or_default();
        assert_eq!(a.and_then(|a| a.end).as_deref(), Some(INTERRUPTED));
        assert!(store.session("ses_x").await.unwrap_or_default().is_none());

        assert_eq!(store.prune_sessions(250).await.unwrap_or_default(), 2);
        let left = store
            .sessions(&SessionFilter::default())
            .await
            .unwrap_or_default();
        assert_eq!(ids(left), ["ses_c"]);
    }

    async fn each_broker_interrupts_its_own_sessions_and_those_of_silent_ones(store: Store) {
        let a = store.clone().on_node("a");
        let b = store.clone().on_node("b");
        a.heartbeat(100).await.unwrap_or_else(|e| panic!("{e}"));
        b.heartbeat(100).await.unwrap_or_else(|e| panic!("{e}"));
        for (node, id) in [(&a, "ses_a"), (&b, "ses_b")] {
            node.session_started(&session(id, "alice", "pg", 100))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let end = |id: &str| {
            let store = store.clone();
            let id = id.to_owned();
            async move {
                store
                    .session(&id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .and_then(|s| s.end)
            }
        };
        // B is alive: nothing of its is touched; A too, until it falls silent.
        b.heartbeat(200).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.interrupt_sessions_of_silent_nodes(100).await.ok(),
            Some(0)
        );
        assert_eq!(
            b.interrupt_sessions_of_silent_nodes(150).await.ok(),
            Some(1)
        );
        assert_eq!(end("ses_a").await.as_deref(), Some(SILENT));
        assert_eq!(end("ses_b").await, None);
        // A broker never marks its own sessions as a silent node's.
        assert_eq!(
            b.interrupt_sessions_of_silent_nodes(300).await.ok(),
            Some(0)
        );
        match store.dialect() {
            // Shared: A starting again leaves B's session alone.
            crate::Dialect::Postgres => {
                assert_eq!(a.interrupt_open_sessions().await.ok(), Some(0));
                assert_eq!(end("ses_b").await, None);
            }
            // One broker: everything open was its own.
            crate::Dialect::Sqlite => {
                assert_eq!(a.interrupt_open_sessions().await.ok(), Some(1));
                assert_eq!(end("ses_b").await.as_deref(), Some(INTERRUPTED));
            }
        }
    }

    crate::test_support::on_both_databases!(
        sessions_are_listed_filtered_ended_interrupted_and_pruned,
        each_broker_interrupts_its_own_sessions_and_those_of_silent_ones,
    );
}
