//! A masker that cannot name a result's table yet gets to look it up before the result is
//! planned (decision 28): the relay awaits [`Masker::resolve`] at the RowDescription, in the
//! simple and the extended protocol, asks once per result, and never loops when the lookup
//! cannot help. Against a real PostgreSQL 15, through `serve`.

#![allow(clippy::unwrap_used)]

mod support;

use sluice_engine::LeaseHandle;
use sluice_engine_postgres::CancelRegistry;
use sluice_engine_postgres::hooks::{ColumnInfo, Enforcement, Masked, Masker, RowMask};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{self, TUNNEL_SECRET, TestClient};
use support::cluster::{Cluster, DATABASE};
use support::{app_target, within};

/// Knows no table until it resolves it; then masks attribute 2 (`email`) of any table,
/// whatever the alias. Columns of tables it cannot name are masked too (fail closed).
#[derive(Default)]
struct LookingMasker {
    /// Table OIDs it can name.
    known: Mutex<HashSet<u32>>,
    /// Resolutions asked for.
    lookups: Mutex<usize>,
    /// Plans made while some table was still unknown.
    blind_plans: Mutex<usize>,
    /// Resolving never helps (the table cannot be named).
    stubborn: bool,
}

struct Redact(Vec<bool>);

impl RowMask for Redact {
    fn mask(&mut self, index: usize, _value: &[u8]) -> Masked {
        if self.0.get(index).copied().unwrap_or(false) {
            Masked::Replace(b"****".to_vec())
        } else {
            Masked::Unchanged
        }
    }
}

impl LookingMasker {
    fn unknown(&self, c: &ColumnInfo) -> bool {
        c.table_oid != 0 && !self.known.lock().unwrap().contains(&c.table_oid)
    }
}

impl Masker for LookingMasker {
    fn plan(&self, columns: &[ColumnInfo]) -> Option<Box<dyn RowMask>> {
        if columns.iter().any(|c| self.unknown(c)) {
            *self.blind_plans.lock().unwrap() += 1;
        }
        let plan: Vec<bool> = columns
            .iter()
            .map(|c| self.unknown(c) || (c.table_oid != 0 && c.column == 2))
            .collect();
        plan.contains(&true)
            .then(|| Box::new(Redact(plan)) as Box<dyn RowMask>)
    }

    fn unresolved(&self, columns: &[ColumnInfo]) -> bool {
        columns.iter().any(|c| self.unknown(c))
    }

    fn resolve<'a>(
        &'a self,
        columns: &'a [ColumnInfo],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            *self.lookups.lock().unwrap() += 1;
            // A catalog query takes a while; the result waits for it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !self.stubborn {
                let mut known = self.known.lock().unwrap();
                known.extend(columns.iter().map(|c| c.table_oid).filter(|o| *o != 0));
            }
        })
    }

    fn mask_text(&self, _text: &str) -> Option<String> {
        None
    }
}

async fn session(
    pg: &Cluster,
    masker: Arc<LookingMasker>,
) -> (
    TestClient,
    tokio::task::JoinHandle<
        Result<sluice_engine_postgres::SessionSummary, sluice_engine_postgres::SessionError>,
    >,
    Arc<LeaseHandle>,
) {
    let handle = Arc::new(LeaseHandle::new());
    let enforcement = Enforcement {
        masker: Some(masker),
        ..Enforcement::default()
    };
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

fn frame(buf: &mut bytes::BytesMut, tag: u8, body: &[u8]) {
    buf.extend_from_slice(&[tag]);
    buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    buf.extend_from_slice(body);
}

fn text(rows: &[Vec<Option<String>>]) -> Vec<Vec<Option<&str>>> {
    rows.iter()
        .map(|r| r.iter().map(Option::as_deref).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_from_an_unknown_table_waits_for_the_lookup_then_is_masked_by_real_column() {
    within(async {
        let pg = Cluster::start();
        let masker = Arc::new(LookingMasker::default());
        let (mut c, task, _lease) = session(&pg, Arc::clone(&masker)).await;
        c.query(
            "create table people (id int, email text); \
                 insert into people values (1, 'ada@example.com')",
        )
        .await
        .unwrap();
        // Simple protocol, two results in one text: each RowDescription is looked at.
        let rows = c
            .query("select 'first' as n; select id as i, email as e, 7 as k from people")
            .await
            .unwrap();
        assert_eq!(
            text(&rows),
            [
                vec![Some("first")],
                vec![Some("1"), Some("****"), Some("7")]
            ]
        );
        assert_eq!(*masker.lookups.lock().unwrap(), 1);
        // Known now: no second lookup.
        let rows = c.query("select email as x from people").await.unwrap();
        assert_eq!(text(&rows), [vec![Some("****")]]);
        assert_eq!(*masker.lookups.lock().unwrap(), 1);
        assert_eq!(*masker.blind_plans.lock().unwrap(), 0);

        // Extended protocol: the portal's Describe is resolved, its rows planned after.
        c.query(
            "create table other (id int, email text); \
                 insert into other values (2, 'bob@example.com')",
        )
        .await
        .unwrap();
        let mut buf = bytes::BytesMut::new();
        sluice_engine_postgres::codec::query::Parse::encode(
            "s",
            "select email as e, id from other",
            &mut buf,
        )
        .unwrap();
        frame(&mut buf, b'B', b"p\0s\0\0\0\0\0\0\0");
        frame(&mut buf, b'D', b"Pp\0");
        frame(&mut buf, b'E', b"p\0\0\0\0\0");
        frame(&mut buf, b'S', b"");
        c.send_raw(&buf).await;
        let rows = c.read_result().await.unwrap();
        assert_eq!(text(&rows), [vec![Some("****"), Some("2")]]);
        assert_eq!(*masker.lookups.lock().unwrap(), 2);
        assert_eq!(*masker.blind_plans.lock().unwrap(), 0);

        c.terminate().await;
        task.await.unwrap().unwrap();
        let received = String::from_utf8_lossy(&c.received).to_string();
        assert!(!received.contains("@example.com"), "{received}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lookup_that_cannot_help_is_asked_once_per_result_and_the_result_fails_closed() {
    within(async {
        let pg = Cluster::start();
        let masker = Arc::new(LookingMasker {
            stubborn: true,
            ..LookingMasker::default()
        });
        let (mut c, task, _lease) = session(&pg, Arc::clone(&masker)).await;
        c.query(
            "create table people (id int, email text); \
                 insert into people values (1, 'ada@example.com'), (2, 'bob@example.com')",
        )
        .await
        .unwrap();
        let rows = c
            .query("select email as e, 5 as k from people order by id")
            .await
            .unwrap();
        assert_eq!(
            text(&rows),
            [vec![Some("****"), Some("5")], vec![Some("****"), Some("5")]]
        );
        assert_eq!(*masker.lookups.lock().unwrap(), 1);
        assert_eq!(*masker.blind_plans.lock().unwrap(), 1);
        // The session goes on.
        assert_eq!(
            text(&c.query("select 41 + 1").await.unwrap()),
            [vec![Some("42")]]
        );
        c.terminate().await;
        task.await.unwrap().unwrap();
    })
    .await;
}
