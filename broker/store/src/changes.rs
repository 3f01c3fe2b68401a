//! Changes one broker tells the others that share its PostgreSQL store: which grant or which
//! logout to look at again. Sent with `pg_notify` inside the transaction that makes the change
//! (delivered only if it commits), heard with `LISTEN` on a connection of its own. A
//! notification carries an id, never a state: the listener reads the store, so a late or
//! repeated notification cannot undo anything. SQLite has one broker and nothing to tell.

use crate::StoreError;
use crate::backend::Dialect;
use crate::store::Store;
use sqlx::AnyConnection;
use sqlx::postgres::PgListener;

/// The channel every broker of a store listens on.
const CHANNEL: &str = "sluice_changes";

/// What another broker changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A grant was created, voted on or changed state: read it again.
    Grant(String),
    /// A session token was revoked (logout): read the revocations again.
    Token(String),
    /// A held action was filed, decided or ended: read it again.
    Hold(String),
    /// psql's Ctrl-C reached a broker that does not serve the session: the broker with
    /// broker-issued `pid` checks `digest` and cancels.
    Cancel {
        /// The broker-issued pid.
        pid: i32,
        /// The digest of subject, pid and key (never the key).
        digest: String,
    },
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Grant(id) => format!("grant:{id}"),
            Change::Token(id) => format!("token:{id}"),
            Change::Hold(id) => format!("hold:{id}"),
            Change::Cancel { pid, digest } => format!("cancel:{pid}:{digest}"),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':')? {
            ("grant", id) => Some(Change::Grant(id.to_owned())),
            ("token", id) => Some(Change::Token(id.to_owned())),
            ("hold", id) => Some(Change::Hold(id.to_owned())),
            ("cancel", rest) => {
                let (pid, digest) = rest.split_once(':')?;
                Some(Change::Cancel {
                    pid: pid.parse().ok()?,
                    digest: digest.to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// Announces `change` to the other brokers when the transaction `conn` is in commits (at
/// once outside one). Nothing on SQLite.
pub(crate) async fn announce(
    conn: &mut AnyConnection,
    dialect: Dialect,
    change: &Change,
) -> Result<(), StoreError> {
    if dialect == Dialect::Postgres {
        // `pg_notify` returns `void`, which the `Any` driver cannot read: select a constant.
        sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS sent")
            .bind(CHANNEL)
            .bind(change.payload())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// What [`Listener::next`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// One change.
    Change(Change),
    /// The connection was lost and made again: notifications sent meanwhile are gone, so
    /// everything the listener keeps must be read again.
    Gap,
}

/// A `LISTEN` connection to a PostgreSQL store.
pub struct Listener {
    inner: PgListener,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// The next change, or a [`Heard::Gap`]; an error when the server cannot be reached (the
    /// caller waits and listens again, then reads everything).
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        loop {
            match self.inner.try_recv().await? {
                None => return Ok(Heard::Gap),
                Some(notification) => {
                    if let Some(change) = Change::parse(notification.payload()) {
                        return Ok(Heard::Change(change));
                    }
                    // A payload from a newer broker: nothing this one knows how to read again.
                }
            }
        }
    }
}

impl Store {
    /// Starts listening for other brokers' changes; `None` on SQLite (one broker, nobody else
    /// changes anything).
    pub async fn listen(&self) -> Result<Option<Listener>, StoreError> {
        let Some(url) = self.postgres_url() else {
            return Ok(None);
        };
        let mut inner = PgListener::connect(url).await?;
        inner.listen(CHANNEL).await?;
        Ok(Some(Listener { inner }))
    }

    /// Announces `change` outside any transaction (tests, and callers that changed nothing in
    /// this store but want the others to look).
    pub async fn announce(&self, change: &Change) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        announce(&mut conn, self.dialect(), change).await
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn payloads_read_back_and_unknown_ones_are_skipped() {
        for change in [
            Change::Grant("g_1".into()),
            Change::Token("t:1".into()),
            Change::Hold("s_1".into()),
            Change::Cancel {
                pid: 77,
                digest: "ab".repeat(32),
            },
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change));
        }
        assert_eq!(Change::parse("session:x"), None);
        assert_eq!(Change::parse("cancel:x:ab"), None);
        assert_eq!(Change::parse("nonsense"), None);
    }
}
