//! [`Store`]: the grant and token-revocation operations, each one SQL round trip or one short
//! transaction.
//!
//! Every change is a compare-and-set in SQL (`UPDATE .. WHERE id = ? AND state IN (..)`,
//! `INSERT .. SELECT .. WHERE state = 'pending'`) inside a `BEGIN IMMEDIATE` transaction, so the
//! database orders racing writers (two approvers, approve vs. expiry, revoke vs. expiry): the
//! first one changes the row, every later one finds another state and gets
//! [`StoreError::NotInState`]. `IMMEDIATE` takes SQLite's write lock before the first read, so a
//! waiting writer queues on the busy timeout instead of failing with `SQLITE_BUSY` when it
//! upgrades a read snapshot.

use crate::codec::{self, GRANT_COLUMNS, GrantRow, VoteRow};
use crate::error::{OpenError, StoreError};
use crate::migrations;
use sluice_shared::grants::{Grant, GrantState, Vote};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Row, Sqlite, SqliteConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to the file. SQLite runs one writer at a time whatever this is; the others
/// serve reads (long-polls, lists) alongside it in WAL mode.
const MAX_CONNECTIONS: u32 = 4;

/// Which grants a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Only this requester's grants (`Requester::subject`); `None` for everyone's.
    pub subject: Option<String>,
    /// Only grants in one of these states; empty for all states.
    pub states: Vec<GrantState>,
    /// At most this many grants (the newest); 0 for no limit.
    pub limit: u32,
}

/// The grant store. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections to the database; the only way in.
    pool: SqlitePool,
}

/// The grants one read selects (the `WHERE` of [`fetch`]).
enum Select<'a> {
    /// One grant.
    Id(&'a str),
    /// A listing.
    Filter(&'a GrantFilter),
    /// Pending and active.
    Live,
    /// Still usable (or about to be) for `subject` on `resource` as `role` at `now`.
    Reusable {
        subject: &'a str,
        resource: &'a str,
        role: &'a str,
        now: i64,
    },
}

impl Store {
    /// Opens the store at `path`, creating the file (not its directory) if missing, and brings
    /// the schema up to date.
    ///
    /// Connections use WAL (readers do not wait for the writer), a busy timeout of 5 s,
    /// enforced foreign keys and `synchronous = FULL`: a revoke or a vote is on disk when the
    /// call returns, power loss included.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(fail(OpenError::MissingDirectory {
                dir: dir.to_owned(),
            }));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        Self::migrate(pool).await.map_err(fail)
    }

    /// A private in-memory store (tests, throw-away brokers). It lives as long as its single
    /// connection: everything is lost when the last clone is dropped.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let fail = |source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        };
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // One connection that never retires: each SQLite connection to `:memory:` is its own
        // database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        Self::migrate(pool).await.map_err(fail)
    }

    async fn migrate(pool: SqlitePool) -> Result<Store, OpenError> {
        migrations::migrator()
            .run(&pool)
            .await
            .map_err(OpenError::Migrate)?;
        Ok(Store { pool })
    }

    /// Answers when the database does (`SELECT 1`), for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// Waits for running queries and closes every connection (checkpointing the WAL). Later
    /// calls on any clone fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a new grant, with any votes it already carries.
    ///
    /// [`StoreError::Duplicate`] if the id is taken; [`StoreError::Invalid`] for the `unknown`
    /// state or a time beyond `i64::MAX`.
    pub async fn insert(&self, grant: &Grant) -> Result<(), StoreError> {
        let row = GrantRow::encode(grant)?;
        let votes = grant
            .votes
            .iter()
            .map(VoteRow::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO grants (");
        insert.push(GRANT_COLUMNS).push(") VALUES (");
        let mut values = insert.separated(", ");
        values
            .push_bind(row.id)
            .push_bind(row.state)
            .push_bind(row.subject)
            .push_bind(row.groups)
            .push_bind(row.auth_method)
            .push_bind(row.provider)
            .push_bind(row.ci)
            .push_bind(row.resource)
            .push_bind(row.role)
            .push_bind(row.rule)
            .push_bind(row.reason)
            .push_bind(row.ttl_secs)
            .push_bind(row.requested_ttl_secs)
            .push_bind(row.approval)
            .push_bind(row.created_at)
            .push_bind(row.activated_at)
            .push_bind(row.expires_at)
            .push_bind(row.ended_at)
            .push_bind(row.ended_by)
            .push_bind(row.end_reason);
        insert.push(")");
        insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(|e| match unique_violation(e) {
                Ok(()) => StoreError::Duplicate {
                    id: grant.id.clone(),
                },
                Err(e) => e.into(),
            })?;
        for vote in votes {
            sqlx::query(
                "INSERT INTO grant_votes (grant_id, approver, approve, reason, at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&grant.id)
            .bind(vote.approver)
            .bind(vote.approve)
            .bind(vote.reason)
            .bind(vote.at)
            .execute(&mut *tx)
            .await
            .map_err(already_voted)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The grant with this id and its votes (oldest first), if any.
    pub async fn get(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(fetch(&self.pool, Select::Id(id), 1).await?.pop())
    }

    /// Grants matching `filter`, newest first (ties in `created_at` by insertion order).
    pub async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, StoreError> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            i64::from(filter.limit)
        };
        fetch(&self.pool, Select::Filter(filter), limit).await
    }

    /// Records one approver's vote on a pending grant.
    ///
    /// [`StoreError::AlreadyVoted`] on a second vote by the same approver;
    /// [`StoreError::NotInState`] once the grant is no longer pending (decided, expired,
    /// revoked); [`StoreError::NotFound`] for an unknown id. Counting votes and activating or
    /// denying is the caller's decision.
    pub async fn add_vote(&self, grant_id: &str, vote: &Vote) -> Result<(), StoreError> {
        let vote = VoteRow::encode(vote)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One statement checks the state and inserts, so no transition can slip in between.
        let inserted = sqlx::query(
            "INSERT INTO grant_votes (grant_id, approver, approve, reason, at) \
             SELECT id, ?, ?, ?, ? FROM grants WHERE id = ? AND state = 'pending'",
        )
        .bind(vote.approver)
        .bind(vote.approve)
        .bind(vote.reason)
        .bind(vote.at)
        .bind(grant_id)
        .execute(&mut *tx)
        .await
        .map_err(already_voted)?;
        if inserted.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, grant_id).await);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Compare-and-set `pending` → `active`, setting `activated_at = now` and `expires_at`.
    ///
    /// Returns the grant as it now is, or [`StoreError::NotInState`] with its actual state
    /// (someone denied, expired or activated it first), or [`StoreError::NotFound`].
    pub async fn activate(&self, id: &str, now: u64, expires_at: u64) -> Result<Grant, StoreError> {
        let now = codec::to_db("activated_at", now)?;
        let expires_at = codec::to_db("expires_at", expires_at)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(
            "UPDATE grants SET state = 'active', activated_at = ?, expires_at = ? \
             WHERE id = ? AND state = 'pending'",
        )
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, id).await);
        }
        let grant = fetch_one(&mut tx, id).await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Compare-and-set from any state in `from` to the final state `to` (`denied`, `expired`
    /// or `revoked`), recording when, by whom (an approver, the revoker, `sluiced` for
    /// expiry) and why (an empty reason is stored as none).
    ///
    /// Returns the grant as it now is, or [`StoreError::NotInState`] with its actual state,
    /// or [`StoreError::NotFound`]; [`StoreError::Invalid`] if `to` is not final.
    pub async fn finish(
        &self,
        id: &str,
        from: &[GrantState],
        to: GrantState,
        now: u64,
        by: &str,
        reason: &str,
    ) -> Result<Grant, StoreError> {
        if !to.is_final() {
            return Err(StoreError::Invalid {
                what: format!("a finish into {to} (not a final state)"),
            });
        }
        let to = codec::state_name(to)?;
        let now = codec::to_db("ended_at", now)?;
        let reason = (!reason.is_empty()).then_some(reason);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut update = QueryBuilder::<Sqlite>::new("UPDATE grants SET state = ");
        update
            .push_bind(to)
            .push(", ended_at = ")
            .push_bind(now)
            .push(", ended_by = ")
            .push_bind(by)
            .push(", end_reason = ")
            .push_bind(reason)
            .push(" WHERE id = ")
            .push_bind(id);
        push_state_in(&mut update, from);
        let updated = update.build().execute(&mut *tx).await?;
        if updated.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, id).await);
        }
        let grant = fetch_one(&mut tx, id).await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Every pending or active grant, newest first: what the broker re-arms approval and
    /// expiry timers for after a restart.
    pub async fn live(&self) -> Result<Vec<Grant>, StoreError> {
        fetch(&self.pool, Select::Live, -1).await
    }

    /// The newest grant `subject` could reuse for `role` on `resource` at `now` (what
    /// `sluice connect` asks for): an active one with `expires_at > now`, or a pending one
    /// whose approval window has not closed. Others' grants and ended ones never match.
    pub async fn find_reusable(
        &self,
        subject: &str,
        resource: &str,
        role: &str,
        now: u64,
    ) -> Result<Option<Grant>, StoreError> {
        let now = codec::to_db("now", now)?;
        let select = Select::Reusable {
            subject,
            resource,
            role,
            now,
        };
        Ok(fetch(&self.pool, select, 1).await?.pop())
    }

    /// Records that the session token `token_id` of `subject`, valid until `expires_at`, was
    /// revoked at `now` (logout). Idempotent: revoking a token again keeps the first record.
    ///
    /// On disk when this returns (`synchronous = FULL`), so a broker killed right after its
    /// answer still refuses the token when it starts again.
    pub async fn revoke_token(
        &self,
        token_id: &str,
        subject: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let expires_at = codec::to_db("expires_at", expires_at)?;
        let now = codec::to_db("revoked_at", now)?;
        sqlx::query(
            "INSERT INTO revoked_tokens (token_id, subject, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(token_id)
        .bind(subject)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The revoked tokens still valid at `now` (`expires_at >= now`: a token is accepted up to
    /// and including its `exp` second), as (token id, expires_at), in no particular order.
    pub async fn revoked_tokens(&self, now: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let now = codec::to_db("now", now)?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT token_id, expires_at FROM revoked_tokens WHERE expires_at >= ?")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(token_id, expires_at)| {
                // `expires_at >= now >= 0` in SQL, so this fails only if that invariant breaks.
                match u64::try_from(expires_at) {
                    Ok(expires_at) => Ok((token_id, expires_at)),
                    Err(_) => Err(StoreError::CorruptRevocation {
                        what: format!("negative expires_at ({expires_at})"),
                        token_id,
                    }),
                }
            })
            .collect()
    }

    /// Deletes the revocations of tokens expired at `now` (`expires_at < now`), which the
    /// broker refuses as expired anyway. Returns how many rows went.
    pub async fn prune_revoked_tokens(&self, now: u64) -> Result<u64, StoreError> {
        let now = codec::to_db("now", now)?;
        let deleted = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// The pool, for this crate's other modules (`audit.rs`) and for tests that need to look
    /// under the API.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// ` AND state IN (..)`; an empty list matches nothing.
fn push_state_in(query: &mut QueryBuilder<Sqlite>, states: &[GrantState]) {
    query.push(" AND state IN (");
    let mut list = query.separated(", ");
    for state in states {
        list.push_bind(state.as_str());
    }
    query.push(")");
}

/// Reads the selected grants with their votes in one statement (so one consistent snapshot):
/// the newest `limit` grants (-1: all) joined with their votes, ordered grant by grant.
async fn fetch<'c, E>(executor: E, select: Select<'_>, limit: i64) -> Result<Vec<Grant>, StoreError>
where
    E: Executor<'c, Database = Sqlite>,
{
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT g.*, v.approver AS v_approver, v.approve AS v_approve, \
         v.reason AS v_reason, v.at AS v_at \
         FROM (SELECT rowid AS seq, ",
    );
    query.push(GRANT_COLUMNS).push(" FROM grants WHERE ");
    match select {
        Select::Id(id) => {
            query.push("id = ").push_bind(id);
        }
        Select::Filter(filter) => {
            query.push("TRUE");
            if let Some(subject) = &filter.subject {
                query.push(" AND subject = ").push_bind(subject);
            }
            if !filter.states.is_empty() {
                push_state_in(&mut query, &filter.states);
            }
        }
        Select::Live => {
            query.push("state IN ('pending', 'active')");
        }
        Select::Reusable {
            subject,
            resource,
            role,
            now,
        } => {
            query
                .push("subject = ")
                .push_bind(subject)
                .push(" AND resource = ")
                .push_bind(resource)
                .push(" AND role = ")
                .push_bind(role)
                .push(" AND ((state = 'active' AND expires_at > ")
                .push_bind(now)
                .push(") OR (state = 'pending' AND (approval IS NULL")
                .push(" OR json_extract(approval, '$.expires_at') > ")
                .push_bind(now)
                .push(")))");
        }
    }
    query
        .push(" ORDER BY created_at DESC, rowid DESC LIMIT ")
        .push_bind(limit)
        .push(
            ") AS g LEFT JOIN grant_votes AS v ON v.grant_id = g.id \
             ORDER BY g.created_at DESC, g.seq DESC, v.at, v.rowid",
        );
    let rows = query.build().fetch_all(executor).await?;
    collect(&rows)
}

/// Folds grant-joined-with-votes rows (consecutive per grant) into grants.
fn collect(rows: &[SqliteRow]) -> Result<Vec<Grant>, StoreError> {
    let mut grants: Vec<Grant> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if grants.last().is_none_or(|last| last.id != id) {
            grants.push(codec::decode_grant(&id, row)?);
        }
        if let (Some(vote), Some(grant)) = (codec::decode_vote(&id, row)?, grants.last_mut()) {
            grant.votes.push(vote);
        }
    }
    Ok(grants)
}

/// The grant just changed inside `tx`.
async fn fetch_one(tx: &mut SqliteConnection, id: &str) -> Result<Grant, StoreError> {
    fetch(tx, Select::Id(id), 1)
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// Why a compare-and-set changed nothing: the grant's actual state, or that it does not exist.
async fn not_in_state(tx: &mut SqliteConnection, id: &str) -> StoreError {
    let state = sqlx::query_scalar::<_, String>("SELECT state FROM grants WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await;
    match state {
        Ok(None) => StoreError::NotFound,
        Ok(Some(name)) => match codec::parse_state(id, &name) {
            Ok(actual) => StoreError::NotInState { actual },
            Err(corrupt) => corrupt,
        },
        Err(e) => e.into(),
    }
}

/// `Ok(())` when `error` is a unique-key violation, else the error back.
fn unique_violation(error: sqlx::Error) -> Result<(), sqlx::Error> {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Ok(()),
        _ => Err(error),
    }
}

fn already_voted(error: sqlx::Error) -> StoreError {
    match unique_violation(error) {
        Ok(()) => StoreError::AlreadyVoted,
        Err(e) => e.into(),
    }
}
