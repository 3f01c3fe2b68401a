//! [`Lease`]: a session's live authorization, pushed by the broker through a `watch` channel.

use tokio::sync::watch;

/// Whether a session may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// The session may continue.
    Active,
    /// The session must end now; the reason is shown to the client where the protocol allows.
    Ended(String),
}

/// The broker's side of a lease: ending it ends every session holding a [`Lease`] from it.
#[derive(Debug)]
pub struct LeaseHandle {
    tx: watch::Sender<LeaseState>,
}

impl LeaseHandle {
    /// A new active lease.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(LeaseState::Active);
        Self { tx }
    }

    /// A receiver for one session.
    pub fn lease(&self) -> Lease {
        Lease {
            rx: self.tx.subscribe(),
        }
    }

    /// Ends the lease for every session holding it.
    pub fn end(&self, reason: impl Into<String>) {
        self.tx.send_replace(LeaseState::Ended(reason.into()));
    }
}

impl Default for LeaseHandle {
    fn default() -> Self {
        Self::new()
    }
}

/// A session's view of its authorization.
#[derive(Debug, Clone)]
pub struct Lease {
    rx: watch::Receiver<LeaseState>,
}

impl Lease {
    /// A lease that never ends (for tests and tools).
    pub fn unbounded() -> Self {
        let (tx, rx) = watch::channel(LeaseState::Active);
        // Leak nothing: a receiver whose sender is gone keeps its last value and `changed()`
        // errors, which `revoked` treats as "never ends".
        drop(tx);
        Self { rx }
    }

    /// The reason the lease ended, if it has.
    pub fn ended(&self) -> Option<String> {
        match &*self.rx.borrow() {
            LeaseState::Active => None,
            LeaseState::Ended(reason) => Some(reason.clone()),
        }
    }

    /// Resolves with the reason when the lease ends. Never resolves if the sending side is
    /// dropped while the lease is active (the broker dropping a handle is not a revocation).
    pub async fn revoked(&mut self) -> String {
        loop {
            if let Some(reason) = self.ended() {
                return reason;
            }
            if self.rx.changed().await.is_err() {
                if let Some(reason) = self.ended() {
                    return reason;
                }
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn ending_the_handle_wakes_every_session() {
        let handle = LeaseHandle::new();
        let mut a = handle.lease();
        let mut b = handle.lease();
        assert_eq!(a.ended(), None);
        handle.end("grant revoked");
        assert_eq!(a.revoked().await, "grant revoked");
        assert_eq!(b.revoked().await, "grant revoked");
    }

    #[tokio::test]
    async fn an_unbounded_lease_never_ends() {
        let mut lease = Lease::unbounded();
        let waited = tokio::time::timeout(Duration::from_millis(50), lease.revoked()).await;
        assert!(waited.is_err());
    }
}
