use super::*;
use sluice_shared::Secret;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A target nothing listens on: only `resolve_with`'s supplied lookups run.
fn nowhere() -> Target {
    Target {
        address: "127.0.0.1:1".into(),
        database: "appdb".into(),
        user: "app".into(),
        password: Secret::new("unused".to_owned()),
        tls: crate::TargetTls::Disable,
        settings: Vec::new(),
    }
}

fn people(oid: u32) -> Tables {
    let table = Table {
        name: "public.people".into(),
        columns: [(1, "id".to_owned()), (2, "email".to_owned())].into(),
        kind: 'r',
        ..Table::default()
    };
    [(oid, table)].into()
}

#[tokio::test]
async fn sessions_hitting_the_same_new_table_share_one_lookup() {
    let columns = Arc::new(Columns::new(nowhere()));
    let queries = Arc::new(AtomicUsize::new(0));
    assert!(columns.missing([(4242, 2)]));
    let sessions: Vec<_> = (0..8)
        .map(|_| {
            let columns = Arc::clone(&columns);
            let queries = Arc::clone(&queries);
            tokio::spawn(async move {
                columns
                    .resolve_with(&[(4242, 1), (4242, 2)], |oids| async move {
                        assert_eq!(oids, vec![4242]);
                        queries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(people(4242))
                    })
                    .await;
            })
        })
        .collect();
    for session in sessions {
        session.await.expect("session task");
    }
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    assert_eq!(
        columns.known().get(4242, 2),
        Some(("public.people", "email"))
    );
    assert!(!columns.missing([(4242, 1), (4242, 2), (0, 0)]));
}

#[tokio::test]
async fn a_table_the_lookup_cannot_name_is_not_asked_again_at_once() {
    let columns = Columns::new(nowhere());
    let queries = AtomicUsize::new(0);
    for _ in 0..3 {
        columns
            .resolve_with(&[(77, 1)], |_| async {
                queries.fetch_add(1, Ordering::SeqCst);
                Ok(Tables::new())
            })
            .await;
    }
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    assert!(columns.known().get(77, 1).is_none());
    // Known as missed: the relay plans at once, and the column rules mask it.
    assert!(!columns.missing([(77, 1)]));
    // A failed query counts as a miss too.
    columns
        .resolve_with(&[(78, 1)], |_| async {
            queries.fetch_add(1, Ordering::SeqCst);
            Err(CatalogError::Io("down".into()))
        })
        .await;
    assert_eq!(queries.load(Ordering::SeqCst), 2);
    assert!(!columns.missing([(78, 1)]));
}

#[tokio::test]
async fn a_lookup_replaces_what_was_known_of_the_table() {
    let columns = Columns::fixed([(9, 1, "public.old".into(), "id".into())]);
    // No server to ask: nothing is missing, whatever the OID.
    assert!(!columns.missing([(9, 2), (10, 1)]));
    assert_eq!(columns.len(), 1);
    columns
        .resolve_with(&[(9, 2)], |oids| async move {
            assert_eq!(oids, vec![9]);
            Ok(people(9))
        })
        .await;
    assert_eq!(columns.known().get(9, 1), Some(("public.people", "id")));
    assert_eq!(columns.known().get(9, 2), Some(("public.people", "email")));
    assert_eq!(columns.len(), 2);
}

#[test]
fn computed_columns_and_known_ones_need_no_lookup() {
    let columns = Columns::fixed([(9, 1, "public.t".into(), "id".into())]);
    columns.write().target = Some(nowhere());
    assert!(!columns.missing([(0, 0), (9, 1)]));
    assert!(columns.missing([(9, 1), (9, 3)]));
}
