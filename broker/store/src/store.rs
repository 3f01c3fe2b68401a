//! [`Store`]: the grant and token-revocation operations, each one SQL round trip or one short
//! transaction, on SQLite or PostgreSQL.
//!
//! Every change is a compare-and-set in SQL (`UPDATE .. WHERE id = $1 AND state IN (..)`,
//! `INSERT .. SELECT .. WHERE state = 'pending'`) inside a write transaction, so the database
//! orders racing writers (two approvers, approve vs. expiry, revoke vs. expiry), on one broker
//! or several sharing a PostgreSQL: the first one changes the row, every later one finds another
//! state and gets [`StoreError::NotInState`].

use crate::backend::{Dialect, Sql};
use crate::changes::{self, Change};
use crate::codec::{self, GRANT_COLUMNS, GrantRow, VoteRow};
use crate::error::{OpenError, StoreError};
use crate::migrations;
use log::LevelFilter;
use sluice_shared::Secret;
use sluice_shared::grants::{Grant, GrantState, Vote};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, ConnectOptions, Connection, Executor, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a statement waits for another connection's write lock before failing (SQLite).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to a SQLite file. SQLite runs one writer at a time whatever this is; the others
/// serve reads (long-polls, lists) alongside it in WAL mode.
const MAX_CONNECTIONS: u32 = 4;

/// Connections to a PostgreSQL server, per broker.
const MAX_PG_CONNECTIONS: u32 = 8;

/// How long a broker waits for a connection to its PostgreSQL before the call fails.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every SQLite connection's settings: the busy timeout, enforced foreign keys and
/// `synchronous = FULL` (a revoke or a vote is on disk when the call returns, power loss
/// included); the file itself is in WAL mode (readers do not wait for the writer). Set per
/// connection: `Any` takes options as a URL, which cannot carry them.
const SQLITE_PRAGMAS: &str =
    "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

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
    pool: AnyPool,
    /// Which database that is.
    dialect: Dialect,
    /// PostgreSQL: the URL (with its password) that listeners connect with.
    listen_url: Option<std::sync::Arc<Secret<String>>>,
    /// The broker this handle writes sessions for (see [`Store::on_node`]).
    node: Option<std::sync::Arc<str>>,
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
    /// Opens the SQLite store at `path`, creating the file (not its directory) if missing, and
    /// brings the schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |source| StoreError::Open {
            location: path.display().to_string(),
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
        let typed = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        // One typed connection first: it fails at once on a file that is not a database (the
        // pool would retry until its timeout) and switches the file to WAL, which persists.
        let first = typed
            .connect()
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        first
            .close()
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        let options = AnyConnectOptions::from_url(&typed.to_url_lossy())
            .map_err(|e| fail(OpenError::Connect(e)))?
            .quiet();
        let pool = sqlite_pool(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        Self::migrate(pool, Dialect::Sqlite).await.map_err(fail)
    }

    /// A private in-memory SQLite store (tests, throw-away brokers). It lives as long as its
    /// single connection: everything is lost when the last clone is dropped.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let fail = |source| StoreError::Open {
            location: ":memory:".into(),
            source,
        };
        install_drivers();
        let options = AnyConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| fail(OpenError::Connect(e)))?;
        // One connection that never retires: each SQLite connection to `:memory:` is its own
        // database.
        let pool = sqlite_pool(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        Self::migrate(pool, Dialect::Sqlite).await.map_err(fail)
    }

    /// Opens the PostgreSQL store at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`, with
    /// `sslmode=verify-full&sslrootcert=CA` off-box) and brings the schema up to date. Several
    /// brokers may open the same database at once: migrations take an advisory lock.
    ///
    /// `shown` is how errors name the database (the URL without its password).
    pub async fn open_postgres(url: &str, shown: &str) -> Result<Store, StoreError> {
        let fail = |source| StoreError::Open {
            location: shown.to_owned(),
            source,
        };
        install_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| fail(OpenError::Connect(e)))?
            .quiet();
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_PG_CONNECTIONS)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| fail(OpenError::Connect(e)))?;
        let mut store = Self::migrate(pool, Dialect::Postgres).await.map_err(fail)?;
        store.listen_url = Some(std::sync::Arc::new(Secret::new(url.to_owned())));
        Ok(store)
    }

    async fn migrate(pool: AnyPool, dialect: Dialect) -> Result<Store, OpenError> {
        let migrator = migrations::migrator(dialect);
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        migrator.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(found) if found > known => {
                OpenError::Newer { found, known }
            }
            other => OpenError::Migrate(other),
        })?;
        Ok(Store {
            pool,
            dialect,
            listen_url: None,
            node: None,
        })
    }

    /// This store as broker `node` uses it: sessions it starts name the node, heartbeats are
    /// the node's, and at start it interrupts only the node's own open sessions.
    pub fn on_node(mut self, node: &str) -> Store {
        self.node = Some(node.into());
        self
    }

    /// The node this handle is for.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The URL a PostgreSQL store's listeners connect with.
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        self.listen_url
            .as_ref()
            .map(|secret| secret.expose().as_str())
    }

    /// The newest migration applied (the schema version).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// Which database this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
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
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        let mut insert = Sql::new("INSERT INTO grants (");
        insert.push(GRANT_COLUMNS).push(") VALUES (");
        insert
            .bind(row.id)
            .push(", ")
            .bind(row.state)
            .push(", ")
            .bind(row.subject)
            .push(", ")
            .bind(row.groups)
            .push(", ")
            .bind(row.auth_method)
            .push(", ")
            .bind(row.provider)
            .push(", ")
            .bind(row.ci)
            .push(", ")
            .bind(row.resource)
            .push(", ")
            .bind(row.role)
            .push(", ")
            .bind(row.rule)
            .push(", ")
            .bind(row.reason)
            .push(", ")
            .bind(row.ttl_secs)
            .push(", ")
            .bind(row.requested_ttl_secs)
            .push(", ")
            .bind(row.approval)
            .push(", ")
            .bind(row.created_at)
            .push(", ")
            .bind(row.activated_at)
            .push(", ")
            .bind(row.expires_at)
            .push(", ")
            .bind(row.ended_at)
            .push(", ")
            .bind(row.ended_by)
            .push(", ")
            .bind(row.end_reason)
            .push(")");
        insert
            .build()?
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
                 VALUES ($1, $2, $3, $4, $5)",
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
        changes::announce(&mut tx, self.dialect, &Change::Grant(grant.id.clone())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The grant with this id and its votes (oldest first), if any.
    pub async fn get(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(fetch(&self.pool, self.dialect, Select::Id(id), 1)
            .await?
            .pop())
    }

    /// Grants matching `filter`, newest first (ties in `created_at` by insertion order).
    pub async fn list(&self, filter: &GrantFilter) -> Result<Vec<Grant>, StoreError> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            i64::from(filter.limit)
        };
        fetch(&self.pool, self.dialect, Select::Filter(filter), limit).await
    }

    /// Records one approver's vote on a pending grant.
    ///
    /// [`StoreError::AlreadyVoted`] on a second vote by the same approver;
    /// [`StoreError::NotInState`] once the grant is no longer pending (decided, expired,
    /// revoked); [`StoreError::NotFound`] for an unknown id. Counting votes and activating or
    /// denying is the caller's decision.
    pub async fn add_vote(&self, grant_id: &str, vote: &Vote) -> Result<(), StoreError> {
        let vote = VoteRow::encode(vote)?;
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        // One statement checks the state and inserts, the grant's row locked (PostgreSQL) so
        // no transition can slip in between.
        let insert = format!(
            "INSERT INTO grant_votes (grant_id, approver, approve, reason, at) \
             SELECT id, $1, $2, $3, $4 FROM grants WHERE id = $5 AND state = 'pending'{}",
            self.dialect.for_update()
        );
        let inserted = sqlx::query(AssertSqlSafe(insert))
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
        changes::announce(&mut tx, self.dialect, &Change::Grant(grant_id.to_owned())).await?;
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
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE grants SET state = 'active', activated_at = $1, expires_at = $2 \
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, id).await);
        }
        let grant = fetch_one(&mut tx, self.dialect, id).await?;
        changes::announce(&mut tx, self.dialect, &Change::Grant(id.to_owned())).await?;
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
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        let mut update = Sql::new("UPDATE grants SET state = ");
        update
            .bind(to)
            .push(", ended_at = ")
            .bind(now)
            .push(", ended_by = ")
            .bind(by)
            .push(", end_reason = ")
            .bind(reason)
            .push(" WHERE id = ")
            .bind(id);
        push_state_in(&mut update, from);
        let updated = update.build()?.execute(&mut *tx).await?;
        if updated.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, id).await);
        }
        let grant = fetch_one(&mut tx, self.dialect, id).await?;
        changes::announce(&mut tx, self.dialect, &Change::Grant(id.to_owned())).await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Every pending or active grant, newest first: what the broker re-arms approval and
    /// expiry timers for after a restart.
    pub async fn live(&self) -> Result<Vec<Grant>, StoreError> {
        fetch(&self.pool, self.dialect, Select::Live, -1).await
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
        Ok(fetch(&self.pool, self.dialect, select, 1).await?.pop())
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
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (token_id, subject, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(token_id)
        .bind(subject)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        changes::announce(&mut tx, self.dialect, &Change::Token(token_id.to_owned())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The revoked tokens still valid at `now` (`expires_at >= now`: a token is accepted up to
    /// and including its `exp` second), as (token id, expires_at), in no particular order.
    pub async fn revoked_tokens(&self, now: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let now = codec::to_db("now", now)?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT token_id, expires_at FROM revoked_tokens WHERE expires_at >= $1",
        )
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
        let deleted = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// The pool, for this crate's other modules (`audit.rs`) and for tests that need to look
    /// under the API.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// ` AND state IN (..)`; an empty list matches nothing.
fn push_state_in(query: &mut Sql, states: &[GrantState]) {
    query.push(" AND state IN (");
    if states.is_empty() {
        query.push("NULL");
    }
    query.bind_list(states.iter().map(|state| state.as_str()));
    query.push(")");
}

/// Reads the selected grants with their votes in one statement (so one consistent snapshot):
/// the newest `limit` grants (-1: all) joined with their votes, ordered grant by grant.
async fn fetch<'c, E>(
    executor: E,
    dialect: Dialect,
    select: Select<'_>,
    limit: i64,
) -> Result<Vec<Grant>, StoreError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let order = dialect.insertion_order();
    let mut query = Sql::new(
        "SELECT g.*, v.approver AS v_approver, v.approve AS v_approve, \
         v.reason AS v_reason, v.at AS v_at \
         FROM (SELECT ",
    );
    query
        .push(order)
        .push(" AS seq, ")
        .push(GRANT_COLUMNS)
        .push(" FROM grants WHERE ");
    match select {
        Select::Id(id) => {
            query.push("id = ").bind(id);
        }
        Select::Filter(filter) => {
            query.push("TRUE");
            if let Some(subject) = &filter.subject {
                query.push(" AND subject = ").bind(subject.as_str());
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
                .bind(subject)
                .push(" AND resource = ")
                .bind(resource)
                .push(" AND role = ")
                .bind(role)
                .push(" AND ((state = 'active' AND expires_at > ")
                .bind(now)
                .push(") OR (state = 'pending' AND (approval IS NULL OR ")
                .push(dialect.approval_expires_at())
                .push(" > ")
                .bind(now)
                .push(")))");
        }
    }
    query
        .push(" ORDER BY created_at DESC, ")
        .push(order)
        .push(" DESC");
    if limit >= 0 {
        query.push(" LIMIT ").bind(limit);
    }
    query
        .push(") AS g LEFT JOIN grant_votes AS v ON v.grant_id = g.id ORDER BY g.created_at DESC, g.seq DESC, v.at, v.")
        .push(order);
    let rows = query.build()?.fetch_all(executor).await?;
    collect(&rows)
}

/// Folds grant-joined-with-votes rows (consecutive per grant) into grants.
fn collect(rows: &[AnyRow]) -> Result<Vec<Grant>, StoreError> {
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
async fn fetch_one(
    tx: &mut AnyConnection,
    dialect: Dialect,
    id: &str,
) -> Result<Grant, StoreError> {
    fetch(tx, dialect, Select::Id(id), 1)
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// Why a compare-and-set changed nothing: the grant's actual state, or that it does not exist.
async fn not_in_state(tx: &mut AnyConnection, id: &str) -> StoreError {
    let state = sqlx::query_scalar::<_, String>("SELECT state FROM grants WHERE id = $1")
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

/// Connect options that never log statements.
trait Quiet {
    fn quiet(self) -> Self;
}

impl Quiet for AnyConnectOptions {
    /// sqlx logs each statement (and slow ones) through `log` and `tracing`; its check whether
    /// anyone listens, made without an event following, leaves tracing-subscriber's per-layer
    /// filter state set on the thread, and the broker's next event there (an audit event) was
    /// dropped by every layer. Statements are the broker's own and carry values it must not
    /// log anyway.
    fn quiet(self) -> Self {
        self.log_statements(LevelFilter::Off)
            .log_slow_statements(LevelFilter::Off, Duration::from_secs(u64::from(u32::MAX)))
    }
}

/// Registers sqlx's SQLite and PostgreSQL drivers with `Any` (the first call does).
fn install_drivers() {
    sqlx::any::install_default_drivers();
}

/// A pool of SQLite connections, each set up with [`SQLITE_PRAGMAS`].
fn sqlite_pool(max: u32) -> AnyPoolOptions {
    install_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
}
