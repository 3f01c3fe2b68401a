//! A held statement does not outlive its client: a cancel request (psql's Ctrl-C) withdraws it
//! with PostgreSQL's 57014 and the session goes on; a client that goes away withdraws it and
//! ends the session. Against a real PostgreSQL 15, through `serve`.

#![allow(clippy::unwrap_used)]

mod support;

use sluice_engine::{LeaseHandle, RelayEnd};
use sluice_engine_postgres::CancelRegistry;
use sluice_engine_postgres::hooks::{
    Approvals, Check, Decided, Enforcement, Guard, Hold, HoldOutcome, HoldRequest, Journal,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{self, TUNNEL_SECRET, TestClient};
use support::cluster::{Cluster, DATABASE};
use support::{app_target, within};

/// Holds any text mentioning `held`.
struct HoldGuard;

impl Guard for HoldGuard {
    fn check_sql(&self, sql: &str) -> Check {
        if sql.contains("held") {
            Check::Hold {
                rule: "hold-held".into(),
                reason: "held statements need a second pair of eyes".into(),
            }
        } else {
            Check::Allow
        }
    }

    fn check_function_call(&self, _oid: u32) -> Check {
        Check::Allow
    }
}

/// Nobody ever decides; records withdrawals and whether the decision was dropped.
#[derive(Default)]
struct Nobody {
    withdrawn: Mutex<Vec<(String, String)>>,
    dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped (with the decision future that owns it).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Approvals for Nobody {
    fn request(&self, _hold: HoldRequest) -> Result<Hold, String> {
        let flag = DropFlag(Arc::clone(&self.dropped));
        Ok(Hold {
            id: "s_1".into(),
            approvers: "dba-leads".into(),
            decision: Box::pin(async move {
                let _flag = flag;
                std::future::pending::<HoldOutcome>().await
            }),
        })
    }

    fn withdraw(&self, id: &str, why: &str) -> bool {
        self.withdrawn
            .lock()
            .unwrap()
            .push((id.to_owned(), why.to_owned()));
        true
    }
}

/// Keeps the decisions the journal hears.
#[derive(Default)]
struct Decisions(Mutex<Vec<String>>);

impl Journal for Decisions {
    fn statement(&self, sql: &str, _extended: bool, decided: Decided<'_>) {
        let decided = match decided {
            Decided::Denied {
                reason, request, ..
            } => format!("denied ({request}): {reason}"),
            other => format!("{other:?}"),
        };
        self.0.lock().unwrap().push(format!("{sql}: {decided}"));
    }
    fn complete(&self, _tag: &str) {}
    fn error(&self, _code: &str, _message: &str) {}
}

struct Session {
    client: TestClient,
    task: tokio::task::JoinHandle<
        Result<sluice_engine_postgres::SessionSummary, sluice_engine_postgres::SessionError>,
    >,
    key: (i32, i32),
    approvals: Arc<Nobody>,
    journal: Arc<Decisions>,
    _lease: LeaseHandle,
}

async fn session(pg: &Cluster, cancels: &CancelRegistry) -> Session {
    let approvals = Arc::new(Nobody::default());
    let journal = Arc::new(Decisions::default());
    let enforcement = Enforcement {
        guard: Some(Arc::new(HoldGuard)),
        approvals: Some(approvals.clone()),
        journal: Some(journal.clone()),
        ..Enforcement::default()
    };
    let lease = LeaseHandle::new();
    let (mut client, task) =
        client::open_with("alice", app_target(pg), cancels, enforcement, lease.lease());
    let key = client.login(TUNNEL_SECRET, DATABASE).await.unwrap();
    Session {
        client,
        task,
        key: (key.pid, key.key),
        approvals,
        journal,
        _lease: lease,
    }
}

/// Sends a held statement and waits for the notice that says it is waiting.
async fn send_held(c: &mut TestClient, sql: &str) {
    c.send_query(sql).await;
    let (tag, body) = c.recv().await.unwrap();
    assert_eq!(tag, b'N');
    assert!(String::from_utf8_lossy(&body).contains("s_1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_request_withdraws_the_held_statement_and_the_session_goes_on() {
    within(async {
        let pg = Cluster::start();
        let cancels = CancelRegistry::new();
        let mut s = session(&pg, &cancels).await;
        s.client.query("create table t (id int)").await.unwrap();
        send_held(&mut s.client, "insert into t values (1) -- held").await;
        // Sent while the first one waits: kept, and answered after it.
        s.client.send_query("select 'after'").await;
        // Someone else's tunnel with the same key withdraws nothing.
        let (mut other, _) = client::open_with(
            "mallory",
            app_target(&pg),
            &cancels,
            Enforcement::default(),
            sluice_engine::Lease::unbounded(),
        );
        other.cancel(s.key.0, s.key.1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(s.approvals.withdrawn.lock().unwrap().is_empty());

        // psql's Ctrl-C: a CancelRequest on a new connection.
        let (mut canceller, _) = client::open("alice", app_target(&pg), &cancels);
        canceller.cancel(s.key.0, s.key.1).await;
        let err = s.client.read_result().await.unwrap_err();
        assert_eq!(err.code(), Some("57014"), "{err:?}");
        assert_eq!(
            err.message(),
            Some("canceling statement due to user request")
        );
        assert!(format!("{err:?}").contains("s_1"), "{err:?}");
        assert_eq!(
            s.client.read_result().await.unwrap(),
            vec![vec![Some("after".into())]]
        );
        assert_eq!(
            *s.approvals.withdrawn.lock().unwrap(),
            vec![("s_1".to_owned(), "the client cancelled it".to_owned())]
        );
        assert!(s.approvals.dropped.load(Ordering::SeqCst));
        assert!(
            s.journal.0.lock().unwrap().contains(
                &"insert into t values (1) -- held: denied (s_1): withdrawn: the client \
                  cancelled it"
                    .to_owned()
            ),
            "{:?}",
            s.journal.0.lock().unwrap()
        );
        // Nothing ran, and the session is usable.
        assert_eq!(
            s.client.query("select count(*) from t").await.unwrap(),
            vec![vec![Some("0".into())]]
        );
        // A cancel while nothing is held goes to the server as before (and finds nothing).
        let (mut canceller, _) = client::open("alice", app_target(&pg), &cancels);
        canceller.cancel(s.key.0, s.key.1).await;
        assert_eq!(s.client.query("select 1").await.unwrap().len(), 1);
        s.client.terminate().await;
        let summary = s.task.await.unwrap().unwrap();
        assert_eq!(summary.relay.unwrap().end, RelayEnd::Closed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_withdraws_the_held_statement_and_ends_the_session() {
    within(async {
        let pg = Cluster::start();
        let cancels = CancelRegistry::new();
        let mut s = session(&pg, &cancels).await;
        s.client.query("create table t (id int)").await.unwrap();
        send_held(&mut s.client, "insert into t values (1) -- held").await;
        assert!(!s.approvals.dropped.load(Ordering::SeqCst));
        // The client vanishes without a Terminate.
        drop(s.client);
        let summary = tokio::time::timeout(Duration::from_secs(10), s.task)
            .await
            .expect("the session ends when its client goes away")
            .unwrap()
            .unwrap();
        assert_eq!(summary.relay.unwrap().end, RelayEnd::Closed);
        assert_eq!(
            *s.approvals.withdrawn.lock().unwrap(),
            vec![("s_1".to_owned(), "the client disconnected".to_owned())]
        );
        assert!(s.approvals.dropped.load(Ordering::SeqCst));
        assert!(cancels.is_empty());

        let (mut c, _) = client::open("alice", app_target(&pg), &cancels);
        c.login(TUNNEL_SECRET, DATABASE).await.unwrap();
        assert_eq!(
            c.query("select count(*) from t").await.unwrap(),
            vec![vec![Some("0".into())]]
        );
        c.terminate().await;
    })
    .await;
}
