//! [`Lease`]: a session's live authorization, pushed by the broker through a `watch` channel.
//!
//! Two ways to wait for its end: [`Lease::revoked`], an `async fn` for code that waits once,
//! and [`Lease::watch`], a [`LeaseWatch`] for relay loops that wait on every read. A fresh
//! `revoked()` future per loop iteration registers with (and leaves) the channel's waiter list,
//! a lock taken twice per message in each direction; a watch registers once, and polling it
//! is an atomic load and, while it waits, a lock on its own waker that no one else takes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
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
    watchers: Arc<Watchers>,
}

impl LeaseHandle {
    /// A new active lease.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(LeaseState::Active);
        Self {
            tx,
            watchers: Arc::default(),
        }
    }

    /// A receiver for one session.
    pub fn lease(&self) -> Lease {
        Lease {
            rx: self.tx.subscribe(),
            watchers: Arc::clone(&self.watchers),
        }
    }

    /// Ends the lease for every session holding it.
    pub fn end(&self, reason: impl Into<String>) {
        self.tx.send_replace(LeaseState::Ended(reason.into()));
        // After the state: a watch registered from now on sees it ended when it registers.
        self.watchers.raise_all();
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
    watchers: Arc<Watchers>,
}

impl Lease {
    /// A lease that never ends (for tests and tools).
    pub fn unbounded() -> Self {
        let (tx, rx) = watch::channel(LeaseState::Active);
        // Leak nothing: a receiver whose sender is gone keeps its last value and `changed()`
        // errors, which `revoked` treats as "never ends".
        drop(tx);
        Self {
            rx,
            watchers: Arc::default(),
        }
    }

    /// A [`LeaseWatch`] that resolves once this lease has ended, for a loop that waits on it
    /// with every read. [`LeaseWatch::also`] makes it resolve on another lease's end too.
    pub fn watch(&self) -> LeaseWatch {
        let watch = LeaseWatch {
            flag: Arc::default(),
        };
        watch.also(self)
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

/// Resolves (again and again: polling it after it resolved is fine) once any lease it watches
/// has ended. Ask the lease for the reason. Never resolves for a lease whose handle is dropped
/// while active, like [`Lease::revoked`].
#[derive(Debug)]
pub struct LeaseWatch {
    flag: Arc<Flag>,
}

impl LeaseWatch {
    /// Also resolves when `lease` ends.
    pub fn also(self, lease: &Lease) -> Self {
        // Registered, then checked: an end after the check raises the flag, an end before it
        // is seen here. A lease that has already ended keeps no reference.
        if lease.ended().is_none() {
            lease.watchers.add(&self.flag);
        }
        if lease.ended().is_some() {
            self.flag.raise();
        }
        self
    }

    /// Whether a watched lease has ended.
    pub fn is_ended(&self) -> bool {
        self.flag.raised.load(Ordering::Acquire)
    }
}

impl Future for LeaseWatch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_ended() {
            return Poll::Ready(());
        }
        {
            let mut waker = lock(&self.flag.waker);
            match &mut *waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        // Raised between the first check and the waker's registration: `raise` found no
        // waker (or the old one), so look again.
        if self.is_ended() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// What a [`LeaseWatch`] waits on: raised once, by whichever watched lease ends first.
#[derive(Debug, Default)]
struct Flag {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Flag {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        let waker = lock(&self.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The watches registered with one lease handle, raised when it ends.
#[derive(Debug, Default)]
struct Watchers {
    flags: Mutex<Vec<Weak<Flag>>>,
}

impl Watchers {
    fn add(&self, flag: &Arc<Flag>) {
        let mut flags = lock(&self.flags);
        // Dropped watches (sessions that ended) are swept when the list doubles.
        if flags.len() >= 8 && flags.len().is_power_of_two() {
            flags.retain(|f| f.strong_count() > 0);
        }
        flags.push(Arc::downgrade(flag));
    }

    fn raise_all(&self) {
        let flags = std::mem::take(&mut *lock(&self.flags));
        for flag in flags.iter().filter_map(Weak::upgrade) {
            flag.raise();
        }
    }
}

/// A lock that a panicking holder did not leave unusable: the data is a flag's waker or a
/// list of weak references, valid whatever happened.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
    async fn a_watch_wakes_when_any_watched_lease_ends_and_stays_ended() {
        let first = LeaseHandle::new();
        let second = LeaseHandle::new();
        let mut watch = first.lease().watch().also(&second.lease());
        assert!(!watch.is_ended());
        let waited = tokio::time::timeout(Duration::from_millis(20), &mut watch).await;
        assert!(waited.is_err(), "resolved before either lease ended");
        let ender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            second.end("stopped");
            second
        });
        tokio::time::timeout(Duration::from_secs(5), &mut watch)
            .await
            .expect("the watch wakes when the second lease ends");
        // Polled again after it resolved: still resolved.
        (&mut watch).await;
        assert!(watch.is_ended());
        let _second = ender.await.expect("ender ran");
        assert_eq!(first.lease().ended(), None);
    }

    #[tokio::test]
    async fn a_watch_on_an_ended_lease_is_ended_at_once() {
        let handle = LeaseHandle::new();
        let lease = handle.lease();
        handle.end("grant revoked");
        let watch = lease.watch();
        assert!(watch.is_ended());
        watch.await;
        // The handle kept no reference to a watch it already raised.
        assert!(lock(&handle.watchers.flags).is_empty());
    }

    #[tokio::test]
    async fn dropped_watches_are_swept() {
        let handle = LeaseHandle::new();
        let lease = handle.lease();
        for _ in 0..1000 {
            drop(lease.watch());
        }
        assert!(lock(&handle.watchers.flags).len() <= 16);
        let live = lease.watch();
        handle.end("done");
        assert!(live.is_ended());
    }

    #[tokio::test]
    async fn an_unbounded_lease_never_ends() {
        let mut lease = Lease::unbounded();
        let waited = tokio::time::timeout(Duration::from_millis(50), lease.revoked()).await;
        assert!(waited.is_err());
    }
}
