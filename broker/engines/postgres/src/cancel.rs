//! Query cancellation across the broker.
//!
//! The client must never learn the target's real BackendKeyData: with it, anyone who can reach
//! the target could cancel the session's queries without going through Sluice. So each session
//! gets a broker-issued `(pid, key)` from the [`CancelRegistry`], the client sees only that,
//! and a CancelRequest arriving through a tunnel is translated back:
//!
//! ```text
//! client ── CancelRequest(broker pid, broker key) ──▶ broker
//!   registry: known pid? key matches (constant time)? same subject?
//!   yes ──▶ new connection to the target [SSLRequest, TLS] ── CancelRequest(real pid, key)
//!   no  ──▶ nothing (PostgreSQL never answers a CancelRequest either)
//! ```
//!
//! The subject check keeps one user's tunnel from cancelling another user's queries even if
//! a key leaked.
//!
//! Several brokers may share one store behind a load balancer, and psql's cancel connection
//! can land on another broker than its session. A registry that does not know the pid hands
//! the request on ([`CancelRegistry::hand_on`]) as a [`RemoteCancel`]: the pid and a digest
//! of (subject, pid, key), never the key itself; the broker that serves the session checks the
//! digest against its own entry (constant time) and cancels ([`CancelRegistry::cancel_remote`]).
//!
//! A statement the broker holds for approval has not reached the target, so cancelling it
//! there would do nothing. While a session holds one it arms its [`CancelSignal`]; a matching
//! cancel request then goes to the session instead, which withdraws the held statement (as
//! PostgreSQL cancels a running one), and nothing is sent to the target.

use crate::codec::StartupPacket;
use crate::upstream::{self, TargetTls, UpstreamError};
use crate::wire;
use bytes::BytesMut;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// How long forwarding one cancel request may take, connect and TLS included.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Maps broker-issued cancel keys to live sessions. Cheap to clone; clones share the map.
#[derive(Debug, Clone, Default)]
pub struct CancelRegistry {
    /// Keyed by broker pid, unique among live sessions.
    entries: Arc<Mutex<HashMap<i32, Entry>>>,
    /// Where requests for pids not here go (other brokers sharing the store), if anywhere.
    elsewhere: Arc<Mutex<Option<Elsewhere>>>,
}

/// Hands a cancel request this broker cannot match to the other brokers; true when it did.
#[derive(Clone)]
pub struct Elsewhere(Arc<dyn Fn(RemoteCancel) -> bool + Send + Sync>);

impl Elsewhere {
    /// Wraps the function that passes a request on.
    pub fn new(hand_on: impl Fn(RemoteCancel) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(hand_on))
    }
}

impl std::fmt::Debug for Elsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Elsewhere")
    }
}

/// A cancel request as another broker passes it on: the pid and a digest that proves the
/// sender knew the session's subject and key, without carrying the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCancel {
    /// The broker-issued pid.
    pub pid: i32,
    /// Lowercase hex SHA-256 of `sluice-cancel`, the subject, the pid and the key.
    pub digest: String,
}

impl RemoteCancel {
    /// The request of `subject` for broker `(pid, key)`.
    pub fn of(subject: &str, pid: i32, key: i32) -> Self {
        Self {
            pid,
            digest: cancel_digest(subject, pid, key),
        }
    }
}

fn cancel_digest(subject: &str, pid: i32, key: i32) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(b"sluice-cancel\0");
    context.update(&(subject.len() as u64).to_be_bytes());
    context.update(subject.as_bytes());
    context.update(&pid.to_be_bytes());
    context.update(&key.to_be_bytes());
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One live session's cancel target.
#[derive(Debug)]
struct Entry {
    /// The key the client was given with `pid`.
    broker_key: i32,
    /// Who owns the session; only they may cancel it.
    subject: String,
    /// The target's real `(pid, key)`.
    real: (i32, i32),
    /// Where to send the cancel.
    address: String,
    /// How to connect there.
    tls: TargetTls,
    /// Reaches the session itself while it holds a statement.
    signal: CancelSignal,
}

/// A session's line from its cancel key to the statement it holds for approval, if any.
/// Cheap to clone; clones share the line. One that was never registered never fires.
#[derive(Debug, Clone, Default)]
pub struct CancelSignal {
    /// The waiting hold's wake-up, present only while one is armed.
    slot: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

/// A hold's end of the [`CancelSignal`]; dropping it disarms, so a cancel request that comes
/// later goes to the target as usual.
#[derive(Debug)]
pub struct ArmedCancel {
    /// Shared with the registry's entry.
    slot: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// Completes when a cancel request arrives.
    fired: oneshot::Receiver<()>,
}

impl CancelSignal {
    /// A signal not yet reachable from any registry (see [`CancelGuard::signal`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms the signal for one held statement: until the returned value is dropped, a cancel
    /// request for this session wakes [`ArmedCancel::cancelled`] instead of reaching the
    /// target.
    pub fn arm(&self) -> ArmedCancel {
        let (tx, fired) = oneshot::channel();
        *lock_slot(&self.slot) = Some(tx);
        ArmedCancel {
            slot: Arc::clone(&self.slot),
            fired,
        }
    }

    /// Wakes the armed hold; false when none is armed.
    fn fire(&self) -> bool {
        lock_slot(&self.slot)
            .take()
            .is_some_and(|tx| tx.send(()).is_ok())
    }
}

impl ArmedCancel {
    /// Completes when a cancel request for the session arrives; never otherwise.
    pub async fn cancelled(&mut self) {
        if (&mut self.fired).await.is_err() {
            // Cannot happen while armed (only `fire` takes the sender, and it sends); wait on.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ArmedCancel {
    fn drop(&mut self) {
        lock_slot(&self.slot).take();
    }
}

fn lock_slot(
    slot: &Mutex<Option<oneshot::Sender<()>>>,
) -> MutexGuard<'_, Option<oneshot::Sender<()>>> {
    // Each operation is a single store or take: a poisoned lock is still consistent.
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session's registration; dropping it removes the entry, so a key stops working when
/// its session ends.
#[derive(Debug)]
pub struct CancelGuard {
    registry: CancelRegistry,
    pid: i32,
    key: i32,
    /// Shared with the entry.
    signal: CancelSignal,
}

impl CancelGuard {
    /// The broker pid to put in the client's BackendKeyData.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The broker key to put in the client's BackendKeyData.
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The session's end of its cancel key, for withdrawing a held statement.
    pub fn signal(&self) -> CancelSignal {
        self.signal.clone()
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a session whose target connection has BackendKeyData `real_key`, and returns
    /// the guard holding the random broker `(pid, key)` to give the client.
    pub fn register(
        &self,
        subject: &str,
        real_key: (i32, i32),
        target_address: &str,
        tls: &TargetTls,
    ) -> CancelGuard {
        let mut rng = rand::rng();
        let key: i32 = rng.random();
        let signal = CancelSignal::new();
        let mut entries = self.lock();
        // Positive like a real pid; retry on the rare collision so a pid names one session.
        let pid = loop {
            let pid = rng.random_range(1..=i32::MAX);
            if !entries.contains_key(&pid) {
                break pid;
            }
        };
        entries.insert(
            pid,
            Entry {
                broker_key: key,
                subject: subject.to_owned(),
                real: real_key,
                address: target_address.to_owned(),
                tls: tls.clone(),
                signal: signal.clone(),
            },
        );
        drop(entries);
        CancelGuard {
            registry: self.clone(),
            pid,
            key,
            signal,
        }
    }

    /// Number of live registrations.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels what a live session of `subject` named by `(pid, key)` is doing: withdraws the
    /// statement it holds for approval, or else forwards the request to the target.
    ///
    /// Returns `Ok(true)` when a held statement was withdrawn or a CancelRequest with the real
    /// key was delivered to the target, `Ok(false)` when nothing matched (and nothing was
    /// sent). Errors are for the broker's log only: the client of a cancel request never gets
    /// an answer.
    pub async fn cancel(&self, subject: &str, pid: i32, key: i32) -> Result<bool, UpstreamError> {
        let known = self.lock().contains_key(&pid);
        if !known {
            // Maybe another broker's session: pass it on, if there are others.
            let elsewhere = self
                .elsewhere
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            return Ok(
                elsewhere.is_some_and(|hand_on| (hand_on.0)(RemoteCancel::of(subject, pid, key)))
            );
        }
        self.cancel_matching(pid, |e| {
            let key_ok: bool = e.broker_key.to_be_bytes().ct_eq(&key.to_be_bytes()).into();
            key_ok && e.subject == subject
        })
        .await
    }

    /// Passes requests for pids this registry does not know to `elsewhere` (the other brokers
    /// sharing the store).
    pub fn hand_on(&self, elsewhere: Elsewhere) {
        *self.elsewhere.lock().unwrap_or_else(|p| p.into_inner()) = Some(elsewhere);
    }

    /// Cancels for a request another broker passed on, if it names a live session here and its
    /// digest matches the session's subject and key; as [`Self::cancel`] otherwise.
    pub async fn cancel_remote(&self, remote: &RemoteCancel) -> Result<bool, UpstreamError> {
        self.cancel_matching(remote.pid, |e| {
            let expected = cancel_digest(&e.subject, remote.pid, e.broker_key);
            expected.as_bytes().ct_eq(remote.digest.as_bytes()).into()
        })
        .await
    }

    async fn cancel_matching(
        &self,
        pid: i32,
        matches: impl Fn(&Entry) -> bool,
    ) -> Result<bool, UpstreamError> {
        let found = {
            let entries = self.lock();
            entries.get(&pid).and_then(|e| {
                matches(e).then(|| (e.real, e.address.clone(), e.tls.clone(), e.signal.clone()))
            })
        };
        let Some((real, address, tls, signal)) = found else {
            return Ok(false);
        };
        // The held statement never reached the target: nothing to cancel there, and a
        // forwarded request could hit the statement the client sends next.
        if signal.fire() {
            return Ok(true);
        }
        match tokio::time::timeout(CANCEL_TIMEOUT, send_cancel(&address, &tls, real)).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Err(UpstreamError::Timeout(CANCEL_TIMEOUT.as_secs())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation
        // is a single insert, remove or lookup), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens a connection like a session's and sends the CancelRequest with the real key.
async fn send_cancel(
    address: &str,
    tls: &TargetTls,
    (pid, key): (i32, i32),
) -> Result<(), UpstreamError> {
    let mut stream = upstream::open(address, tls).await?;
    let mut buf = BytesMut::new();
    StartupPacket::CancelRequest { pid, key }
        .encode(&mut buf)
        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    wire::send(&mut stream, &buf)
        .await
        .map_err(UpstreamError::Io)?;
    // Like libpq, wait for the server to close: then it has read and acted on the request.
    let mut sink = [0u8; 64];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    upstream::close(&mut stream).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::startup::check_startup;
    use tokio::net::TcpListener;

    #[test]
    fn keys_are_unique_and_guards_deregister() {
        let reg = CancelRegistry::new();
        let guards: Vec<_> = (0..100)
            .map(|i| reg.register("alice", (i, i), "127.0.0.1:1", &TargetTls::Disable))
            .collect();
        assert_eq!(reg.len(), 100);
        let mut pids: Vec<_> = guards.iter().map(CancelGuard::pid).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 100);
        assert!(pids.iter().all(|&p| p > 0));
        drop(guards);
        assert!(reg.is_empty());
    }

    /// A fake target that records the first packet of each connection.
    async fn fake_target() -> (String, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 64];
                loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if n == 0 || check_startup(&buf).unwrap().is_some() {
                        break;
                    }
                }
                tx.send(buf).await.unwrap();
                // Dropping `s` closes, as PostgreSQL does after a CancelRequest.
            }
        });
        (address, rx)
    }

    #[tokio::test]
    async fn a_matching_cancel_is_forwarded_with_the_real_key() {
        let (address, mut seen) = fake_target().await;
        let reg = CancelRegistry::new();
        let guard = reg.register("alice", (4242, -99), &address, &TargetTls::Disable);
        assert!(reg.cancel("alice", guard.pid(), guard.key()).await.unwrap());
        let packet = seen.recv().await.unwrap();
        assert_eq!(
            StartupPacket::decode(&packet).unwrap(),
            StartupPacket::CancelRequest {
                pid: 4242,
                key: -99
            }
        );
    }

    #[tokio::test]
    async fn a_cancel_while_a_statement_is_held_wakes_the_session_instead() {
        let (address, mut seen) = fake_target().await;
        let reg = CancelRegistry::new();
        let guard = reg.register("alice", (4242, -99), &address, &TargetTls::Disable);
        let signal = guard.signal();
        let mut armed = signal.arm();
        // Someone else's key does not reach the hold.
        assert!(
            !reg.cancel("mallory", guard.pid(), guard.key())
                .await
                .unwrap()
        );
        assert!(reg.cancel("alice", guard.pid(), guard.key()).await.unwrap());
        tokio::time::timeout(Duration::from_secs(5), armed.cancelled())
            .await
            .expect("the armed hold hears the cancel");
        assert!(seen.try_recv().is_err(), "nothing may reach the target");
        // Disarmed, the next cancel goes to the target again.
        drop(armed);
        assert!(reg.cancel("alice", guard.pid(), guard.key()).await.unwrap());
        assert!(matches!(
            StartupPacket::decode(&seen.recv().await.unwrap()).unwrap(),
            StartupPacket::CancelRequest { pid: 4242, .. }
        ));
        // A cancel that came while nothing was held does not withdraw a later hold.
        let mut later = signal.arm();
        let waited = tokio::time::timeout(Duration::from_millis(50), later.cancelled()).await;
        assert!(waited.is_err(), "a stale cancel fired a new hold");
    }

    #[tokio::test]
    async fn wrong_key_other_subject_or_ended_session_send_nothing() {
        let (address, mut seen) = fake_target().await;
        let reg = CancelRegistry::new();
        let guard = reg.register("alice", (1, 2), &address, &TargetTls::Disable);
        let (pid, key) = (guard.pid(), guard.key());
        assert!(!reg.cancel("alice", pid, key.wrapping_add(1)).await.unwrap());
        assert!(!reg.cancel("mallory", pid, key).await.unwrap());
        assert!(!reg.cancel("alice", pid.wrapping_add(1), key).await.unwrap());
        drop(guard);
        assert!(!reg.cancel("alice", pid, key).await.unwrap());
        assert!(seen.try_recv().is_err(), "nothing may reach the target");
    }

    #[tokio::test]
    async fn an_unreachable_target_is_an_error_for_the_log() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let reg = CancelRegistry::new();
        let guard = reg.register("alice", (1, 2), &address, &TargetTls::Disable);
        let err = reg
            .cancel("alice", guard.pid(), guard.key())
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_cancel_for_another_brokers_session_is_handed_on_without_its_key() {
        let (address, mut seen) = fake_target().await;
        let serving = CancelRegistry::new();
        let guard = serving.register("alice", (4242, -99), &address, &TargetTls::Disable);
        let (pid, key) = (guard.pid(), guard.key());
        let receiving = CancelRegistry::new();
        // Without a way on, an unknown pid is nothing.
        assert!(!receiving.cancel("alice", pid, key).await.unwrap());
        let passed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&passed);
        receiving.hand_on(Elsewhere::new(move |remote| {
            sink.lock().unwrap().push(remote);
            true
        }));
        assert!(receiving.cancel("alice", pid, key).await.unwrap());
        assert!(receiving.cancel("mallory", pid, key).await.unwrap());
        let passed = passed.lock().unwrap().clone();
        assert!(passed.iter().all(|r| !r.digest.contains(&key.to_string())));
        // The serving broker acts on the right digest only.
        assert!(
            !serving.cancel_remote(&passed[1]).await.unwrap(),
            "mallory's"
        );
        assert!(seen.try_recv().is_err());
        assert!(serving.cancel_remote(&passed[0]).await.unwrap());
        assert!(matches!(
            StartupPacket::decode(&seen.recv().await.unwrap()).unwrap(),
            StartupPacket::CancelRequest {
                pid: 4242,
                key: -99
            }
        ));
        let forged = RemoteCancel {
            pid,
            digest: "0".repeat(64),
        };
        assert!(!serving.cancel_remote(&forged).await.unwrap());
    }
}
