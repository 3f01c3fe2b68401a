//! Several brokers, one truth: hears what the other brokers sharing a PostgreSQL store
//! changed and applies it here — a grant revoked or expired on another broker ends this
//! broker's tunnels on it, an approval there wakes the long-polls here, a logout there is
//! refused here.
//!
//! ```text
//!  broker A: store change ──(pg_notify in its transaction)──▶ PostgreSQL
//!                                                               │ LISTEN sluice_changes
//!  broker B: Fanout ◀───────────────────────────────────────────┘
//!              ├─ grant:ID  → Grants::refresh (end leases, arm timers, wake long-polls)
//!              ├─ token:ID  → Revocations::refresh
//!              ├─ hold:ID   → Holds::refresh (a held statement decided there resumes here)
//!              ├─ cancel:PID:DIGEST → CancelRegistry::cancel_remote (psql's Ctrl-C that
//!              │                      reached another broker)
//!              └─ every RECHECK, after a lost connection, at start → both, for everything,
//!                 and this broker's heartbeat (the open sessions of a broker silent for
//!                 SILENT_AFTER are marked interrupted)
//! ```
//!
//! A notification names what changed, never how: the receiver reads the store, so a late,
//! repeated or lost notification cannot undo or skip anything, and the periodic re-check
//! repairs whatever a lost one would have done within [`RECHECK`]. On SQLite (one broker)
//! there is nothing to hear and this does nothing.

use crate::grants::Grants;
use crate::holds::Holds;
use crate::tokens::{Revocations, now_secs};
use sluice_engine_postgres::{CancelRegistry, Elsewhere, RemoteCancel};
use sluice_store::{Change, Heard, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, warn};

/// How often everything is read again, whatever was heard.
pub const RECHECK: Duration = Duration::from_secs(2);

/// How long to wait before listening again after the server could not be reached.
const RETRY: Duration = Duration::from_secs(1);

/// A broker whose heartbeat is older than this stopped: its open sessions are marked
/// interrupted by the others (heartbeats come every [`RECHECK`]).
pub const SILENT_AFTER: Duration = Duration::from_secs(10);

/// Whether this broker hears the others, for `GET /v1/health`.
#[derive(Debug, Default)]
pub struct FanoutStatus {
    /// `None`: not a shared store (nothing to hear). `Some(Ok)`: listening.
    state: Mutex<Option<Result<(), String>>>,
}

impl FanoutStatus {
    /// The health check's answer: `None` when there is nothing to check.
    pub fn check(&self) -> Option<Result<(), String>> {
        self.lock().clone()
    }

    fn set(&self, state: Result<(), String>) {
        *self.lock() = Some(state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Result<(), String>>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts hearing the other brokers of `store` for the broker's life (nothing on SQLite).
pub fn start(here: Here) -> Arc<FanoutStatus> {
    let status = Arc::new(FanoutStatus::default());
    if here.store.dialect() == sluice_store::Dialect::Postgres {
        status.set(Err("not listening yet".into()));
        // psql's Ctrl-C for a session another broker serves: pass it on.
        let store = here.store.clone();
        here.cancels.hand_on(Elsewhere::new(move |remote| {
            let store = store.clone();
            tokio::spawn(async move {
                let change = Change::Cancel {
                    pid: remote.pid,
                    digest: remote.digest,
                };
                if let Err(e) = store.announce(&change).await {
                    warn!(error = %e, "cannot pass a cancel request on to the other brokers");
                }
            });
            true
        }));
        tokio::spawn(run(here, Arc::clone(&status)));
    }
    status
}

/// What the fan-out keeps up to date.
pub struct Here {
    /// The shared store.
    pub store: Store,
    /// Grants and their leases.
    pub grants: Arc<Grants>,
    /// Logged-out tokens.
    pub revocations: Arc<Revocations>,
    /// Held statements.
    pub holds: Arc<Holds>,
    /// The PostgreSQL sessions' cancel keys.
    pub cancels: CancelRegistry,
}

async fn run(here: Here, status: Arc<FanoutStatus>) {
    let Here {
        store,
        grants,
        revocations,
        holds,
        cancels,
    } = &here;
    let mut every = tokio::time::interval(RECHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut listener = match store.listen().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot listen for the other brokers' changes; reading the store every {}s instead", RECHECK.as_secs());
                status.set(Err(format!(
                    "cannot listen for the other brokers' changes: {e}"
                )));
                recheck(&here, true).await;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        info!("listening for the other brokers' changes");
        status.set(Ok(()));
        // Whatever changed while nobody listened.
        recheck(&here, true).await;
        loop {
            tokio::select! {
                heard = listener.next() => match heard {
                    Ok(Heard::Change(Change::Grant(id))) => {
                        debug!(grant = %id, "another broker changed a grant");
                        grants.refresh(&id).await;
                    }
                    Ok(Heard::Change(Change::Token(_))) => refresh_revocations(revocations).await,
                    Ok(Heard::Change(Change::Hold(id))) => holds.refresh(&id).await,
                    Ok(Heard::Change(Change::Cancel { pid, digest })) => {
                        let remote = RemoteCancel { pid, digest };
                        match cancels.cancel_remote(&remote).await {
                            Ok(true) => info!("cancelled a query for a Ctrl-C another broker received"),
                            Ok(false) => {}
                            Err(e) => warn!(error = %e, "cannot forward a cancel request another broker received"),
                        }
                    }
                    Ok(Heard::Gap) => {
                        warn!("the connection that listens for the other brokers' changes was lost; reading everything again");
                        recheck(&here, true).await;
                    }
                    Err(e) => {
                        warn!(error = %e, "stopped hearing the other brokers' changes; listening again");
                        status.set(Err(format!("stopped hearing the other brokers' changes: {e}")));
                        break;
                    }
                },
                _ = every.tick() => recheck(&here, false).await,
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Reads again everything another broker may have changed, and beats this broker's heart;
/// `after_gap`: notifications were lost, so long-polls wake to read for themselves.
async fn recheck(here: &Here, after_gap: bool) {
    let Here {
        store,
        grants,
        revocations,
        holds,
        ..
    } = here;
    grants.recheck(after_gap).await;
    refresh_revocations(revocations).await;
    holds.recheck().await;
    let now = now_secs();
    if let Err(e) = store.heartbeat(now).await {
        warn!(error = %e, "cannot record this broker's heartbeat");
    }
    let silent_since = now.saturating_sub(SILENT_AFTER.as_secs());
    match store.interrupt_sessions_of_silent_nodes(silent_since).await {
        Ok(0) => {}
        Ok(n) => warn!(
            sessions = n,
            "marked the open sessions of a broker that stopped heart-beating as interrupted"
        ),
        Err(e) => warn!(error = %e, "cannot check the other brokers' heartbeats"),
    }
}

async fn refresh_revocations(revocations: &Revocations) {
    if let Err(e) = revocations.refresh(now_secs()).await {
        warn!(error = %e, "cannot read the logout revocations from the store");
    }
}
