//! The enforcing relay against a real PostgreSQL 15: blocked statements leave the session
//! usable (also inside a transaction block), held statements run once approved, masked values
//! never reach the client, and a revoked lease ends the session with a FATAL the client reads.

#![allow(clippy::unwrap_used)]

mod support;

use sluice_engine::{LeaseHandle, RelayEnd};
use sluice_engine_postgres::CancelRegistry;
use sluice_engine_postgres::hooks::{
    Approvals, Check, ColumnInfo, Decided, Enforcement, Guard, Hold, HoldOutcome, HoldRequest,
    Journal, Masked, Masker, RowMask,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{self, TUNNEL_SECRET, TestClient};
use support::cluster::{Cluster, DATABASE};
use support::{app_target, within};

/// Blocks any text mentioning `forbidden`, holds any mentioning `held`.
struct WordGuard;

impl Guard for WordGuard {
    fn check_sql(&self, sql: &str) -> Check {
        if sql.contains("forbidden") {
            Check::Block {
                rule: "no-forbidden".into(),
                message: "statements about forbidden things are refused".into(),
            }
        } else if sql.contains("held") {
            Check::Hold {
                rule: "hold-held".into(),
                reason: "held statements need a second pair of eyes".into(),
            }
        } else {
            Check::Allow
        }
    }

    fn check_function_call(&self, _oid: u32) -> Check {
        Check::Block {
            rule: "no-fastpath".into(),
            message: "function calls by OID are refused".into(),
        }
    }
}

/// Approves or denies every request as told, and records them.
struct Answer {
    approve: bool,
    seen: Mutex<Vec<HoldRequest>>,
}

impl Approvals for Answer {
    fn request(&self, hold: HoldRequest) -> Result<Hold, String> {
        self.seen.lock().unwrap().push(hold);
        let approve = self.approve;
        Ok(Hold {
            id: "s_1".into(),
            approvers: "dba-leads".into(),
            decision: Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if approve {
                    HoldOutcome::Approved { by: "bob".into() }
                } else {
                    HoldOutcome::Denied {
                        message: "denied by bob: not now".into(),
                    }
                }
            }),
        })
    }
}

/// Masks every column named `email` as `***`, and binary ones as NULL.
struct EmailMasker;

struct EmailRows(Vec<Option<bool>>);

impl RowMask for EmailRows {
    fn mask(&mut self, index: usize, _value: &[u8]) -> Masked {
        match self.0.get(index).copied().flatten() {
            Some(false) => Masked::Replace(b"***".to_vec()),
            Some(true) => Masked::Null,
            None => Masked::Unchanged,
        }
    }
}

impl Masker for EmailMasker {
    fn plan(&self, columns: &[ColumnInfo]) -> Option<Box<dyn RowMask>> {
        let plan: Vec<Option<bool>> = columns
            .iter()
            .map(|c| (c.name == "email").then_some(c.binary))
            .collect();
        plan.iter()
            .any(Option::is_some)
            .then(|| Box::new(EmailRows(plan)) as Box<dyn RowMask>)
    }

    fn mask_text(&self, text: &str) -> Option<String> {
        text.contains("@example.com")
            .then(|| text.replace("ada@example.com", "***"))
    }
}

async fn session(
    pg: &Cluster,
    enforcement: Enforcement,
) -> (
    TestClient,
    tokio::task::JoinHandle<
        Result<sluice_engine_postgres::SessionSummary, sluice_engine_postgres::SessionError>,
    >,
    Arc<LeaseHandle>,
) {
    let handle = Arc::new(LeaseHandle::new());
    let (mut c, task) = client::open_with(
        "alice",
        app_target(pg),
        &CancelRegistry::new(),
        enforcement,
        handle.lease(),
    );
    c.login(TUNNEL_SECRET, DATABASE).await.unwrap();
    (c, task, handle)
}

fn guarded() -> Enforcement {
    Enforcement {
        guard: Some(Arc::new(WordGuard)),
        ..Enforcement::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_statement_errors_with_42501_and_the_session_goes_on() {
    within(async {
        let pg = Cluster::start();
        let (mut c, task, _lease) = session(&pg, guarded()).await;
        c.query("create table t (id int)").await.unwrap();
        let err = c
            .query("insert into t values (1); select 'forbidden'")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("42501"));
        assert!(
            err.message().unwrap().contains("forbidden things"),
            "{err:?}"
        );
        assert!(format!("{err:?}").contains("no-forbidden"));
        // Nothing of the refused text ran: not even its harmless first statement.
        assert_eq!(
            c.query("select count(*) from t").await.unwrap(),
            vec![vec![Some("0".into())]]
        );

        // Inside a transaction block the block fails as a failed statement would.
        c.query("begin").await.unwrap();
        c.query("insert into t values (2)").await.unwrap();
        assert!(c.query("select 'forbidden'").await.is_err());
        let aborted = c.query("select 1").await.unwrap_err();
        assert_eq!(aborted.code(), Some("25P02"), "{aborted:?}");
        c.query("commit").await.unwrap(); // becomes ROLLBACK
        assert_eq!(
            c.query("select count(*) from t").await.unwrap(),
            vec![vec![Some("0".into())]]
        );
        c.terminate().await;
        let summary = task.await.unwrap().unwrap();
        assert_eq!(summary.relay.unwrap().end, RelayEnd::Closed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_statement_runs_once_approved_and_errors_when_denied() {
    within(async {
        let pg = Cluster::start();
        for approve in [true, false] {
            let answer = Arc::new(Answer {
                approve,
                seen: Mutex::new(Vec::new()),
            });
            let enforcement = Enforcement {
                approvals: Some(answer.clone()),
                ..guarded()
            };
            let (mut c, _task, _lease) = session(&pg, enforcement).await;
            c.send_query("select 'held' as x").await;
            // A notice says who must approve, before the answer.
            let (tag, body) = c.recv().await.unwrap();
            assert_eq!(tag, b'N');
            assert!(String::from_utf8_lossy(&body).contains("s_1"));
            let result = c.read_result().await;
            if approve {
                assert_eq!(result.unwrap(), vec![vec![Some("held".into())]]);
            } else {
                let err = result.unwrap_err();
                assert_eq!(err.code(), Some("42501"));
                assert!(err.message().unwrap().contains("not now"), "{err:?}");
            }
            assert_eq!(c.query("select 1").await.unwrap().len(), 1);
            assert_eq!(answer.seen.lock().unwrap()[0].what, "select 'held' as x");
            c.terminate().await;
        }
    })
    .await;
}

/// Keeps what the journal hears, one line per call.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Journal for Lines {
    fn statement(&self, sql: &str, extended: bool, decided: Decided<'_>) {
        let decided = match decided {
            Decided::Allowed => "allowed".to_owned(),
            Decided::Blocked { rule, .. } => format!("blocked by {rule}"),
            Decided::Approved { by, request, .. } => format!("approved by {by} ({request})"),
            Decided::Denied { reason, .. } => format!("denied: {reason}"),
        };
        let protocol = if extended { "extended" } else { "simple" };
        self.0
            .lock()
            .unwrap()
            .push(format!("{protocol} {sql}: {decided}"));
    }
    fn complete(&self, tag: &str) {
        self.0.lock().unwrap().push(format!("complete {tag}"));
    }
    fn error(&self, code: &str, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("error {code} {message}"));
    }
    fn wants_rows(&self) -> bool {
        true
    }
    fn columns(&self, names: &[&str]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("columns {}", names.join(",")));
    }
    fn row(&self, values: &[Option<&[u8]>]) {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.map_or("NULL".into(), |v| String::from_utf8_lossy(v).into_owned()))
            .collect();
        self.0
            .lock()
            .unwrap()
            .push(format!("row {}", values.join(",")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_hears_statements_decisions_outcomes_and_masked_rows() {
    within(async {
        let pg = Cluster::start();
        let lines = Arc::new(Lines::default());
        let enforcement = Enforcement {
            approvals: Some(Arc::new(Answer {
                approve: true,
                seen: Mutex::new(Vec::new()),
            })),
            masker: Some(Arc::new(EmailMasker)),
            journal: Some(lines.clone()),
            ..guarded()
        };
        let (mut c, task, _lease) = session(&pg, enforcement).await;
        c.query("create table people (id int, email text)")
            .await
            .unwrap();
        c.query("insert into people values (1, 'ada@example.com'), (2, NULL)")
            .await
            .unwrap();
        c.query("select id, email from people order by id")
            .await
            .unwrap();
        c.query("select 'forbidden'").await.unwrap_err();
        c.query("select 1/0").await.unwrap_err();
        c.send_query("select 'held' as x").await;
        c.read_result().await.unwrap();
        c.terminate().await;
        task.await.unwrap().unwrap();
        let lines = lines.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            vec![
                "simple create table people (id int, email text): allowed",
                "complete CREATE TABLE",
                "simple insert into people values (1, 'ada@example.com'), (2, NULL): allowed",
                "complete INSERT 0 2",
                "simple select id, email from people order by id: allowed",
                "columns id,email",
                "row 1,***",
                "row 2,NULL",
                "complete SELECT 2",
                "simple select 'forbidden': blocked by no-forbidden",
                "error 42501 sluice: statements about forbidden things are refused",
                "simple select 1/0: allowed",
                "error 22012 division by zero",
                "simple select 'held' as x: approved by bob (s_1)",
                "columns x",
                "row held",
                "complete SELECT 1",
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn masked_values_never_reach_the_client() {
    within(async {
        let pg = Cluster::start();
        let enforcement = Enforcement {
            masker: Some(Arc::new(EmailMasker)),
            ..Enforcement::default()
        };
        let (mut c, task, _lease) = session(&pg, enforcement).await;
        c.query("create table people (id int primary key, email text unique)")
            .await
            .unwrap();
        c.query("insert into people values (1, 'ada@example.com')")
            .await
            .unwrap();
        let rows = c.query("select id, email from people").await.unwrap();
        assert_eq!(rows, vec![vec![Some("1".into()), Some("***".into())]]);
        // The unique violation's DETAIL quotes the value.
        let err = c
            .query("insert into people values (2, 'ada@example.com')")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("23505"));
        c.terminate().await;
        task.await.unwrap().unwrap();
        let received = String::from_utf8_lossy(&c.received).to_string();
        assert!(!received.contains("ada@example.com"), "{received}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_the_lease_mid_query_sends_a_fatal_the_client_can_read() {
    within(async {
        let pg = Cluster::start();
        let (mut c, task, lease) = session(&pg, guarded()).await;
        c.send_query("select pg_sleep(60)").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        lease.end("grant g_1 was revoked by carol: done");
        let (tag, body) = c.recv().await.unwrap();
        assert_eq!(tag, b'E');
        let text = String::from_utf8_lossy(&body).to_string();
        assert!(text.contains("FATAL") && text.contains("57P01"), "{text}");
        assert!(text.contains("revoked by carol"), "{text}");
        let summary = task.await.unwrap().unwrap();
        assert!(matches!(summary.relay.unwrap().end, RelayEnd::Revoked(_)));
    })
    .await;
}

/// Parse, Bind, Execute and Sync of one statement, as libpq's PQexecParams sends them.
fn extended(sql: &str) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    sluice_engine_postgres::codec::query::Parse::encode("", sql, &mut buf).unwrap();
    let frame = |buf: &mut bytes::BytesMut, tag: u8, body: &[u8]| {
        buf.extend_from_slice(&[tag]);
        buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        buf.extend_from_slice(body);
    };
    // Bind: unnamed portal and statement, no parameter formats, no values, no result formats.
    frame(&mut buf, b'B', b"\0\0\0\0\0\0\0\0");
    frame(&mut buf, b'E', b"\0\0\0\0\0");
    frame(&mut buf, b'S', b"");
    buf.to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_parse_fails_its_batch_up_to_sync_and_the_next_batch_runs() {
    within(async {
        let pg = Cluster::start();
        let (mut c, task, _lease) = session(&pg, guarded()).await;
        let mut batch = extended("select 'forbidden'");
        batch.extend(extended("select 41 + 1"));
        c.send_raw(&batch).await;
        // First batch: one error, then ReadyForQuery; nothing of it ran.
        let first = c.read_result().await.unwrap_err();
        assert_eq!(first.code(), Some("42501"), "{first:?}");
        assert!(first.message().unwrap().starts_with("sluice:"), "{first:?}");
        // Second batch runs normally.
        assert_eq!(
            c.read_result().await.unwrap(),
            vec![vec![Some("42".into())]]
        );
        c.terminate().await;
        task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_protocol_rows_are_masked_in_text_and_binary_format() {
    within(async {
        let pg = Cluster::start();
        let enforcement = Enforcement {
            masker: Some(Arc::new(EmailMasker)),
            ..Enforcement::default()
        };
        let (mut c, task, _lease) = session(&pg, enforcement).await;
        c.query("create table people (id int, email text)")
            .await
            .unwrap();
        c.query("insert into people values (1, 'ada@example.com')")
            .await
            .unwrap();
        for binary in [false, true] {
            let mut buf = bytes::BytesMut::new();
            sluice_engine_postgres::codec::query::Parse::encode(
                "s",
                "select id, email from people",
                &mut buf,
            )
            .unwrap();
            let frame = |buf: &mut bytes::BytesMut, tag: u8, body: &[u8]| {
                buf.extend_from_slice(&[tag]);
                buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
                buf.extend_from_slice(body);
            };
            // Bind portal "p" to "s": no params; one result format for all columns.
            let mut bind = b"p\0s\0\0\0\0\0\0\x01".to_vec();
            bind.extend_from_slice(&(i16::from(binary)).to_be_bytes());
            frame(&mut buf, b'B', &bind);
            frame(&mut buf, b'D', b"Pp\0");
            frame(&mut buf, b'E', b"p\0\0\0\0\0");
            frame(&mut buf, b'S', b"");
            c.send_raw(&buf).await;
            let rows = c.read_result().await.unwrap();
            assert_eq!(rows.len(), 1);
            if binary {
                assert_eq!(
                    rows[0][1], None,
                    "a binary value a rule matches becomes NULL"
                );
            } else {
                assert_eq!(rows[0][1], Some("***".into()));
            }
            c.query("deallocate s").await.unwrap();
        }
        c.terminate().await;
        task.await.unwrap().unwrap();
        let received = String::from_utf8_lossy(&c.received).to_string();
        assert!(!received.contains("ada@example.com"), "{received}");
    })
    .await;
}
