//! The audit tables against real SQLite and PostgreSQL: batches, the head, paging with checkpoints in one
//! snapshot, and the append-only triggers.

use crate::{Store, StoreError};
use serde_json::{Map, json};
use sluice_shared::audit::{AuditRecord, Checkpoint, Head, verify};

/// `n` records chained after `head`, at = 1000 * seq.
fn chained(head: &Head, n: u64) -> Vec<AuditRecord> {
    let mut head = head.clone();
    (0..n)
        .map(|_| {
            let seq = head.seq + 1;
            let mut data = Map::new();
            data.insert("subject".into(), json!(format!("user{seq}")));
            data.insert("z".into(), json!({"b": [1, 2.5, null], "a": true}));
            let record = AuditRecord::next(&head, 1000 * seq, "test.event.v1".into(), data);
            head = record.head();
            record
        })
        .collect()
}

/// A checkpoint whose signature nothing checks here.
fn checkpoint(record: &AuditRecord) -> Checkpoint {
    Checkpoint {
        seq: record.seq,
        hash: record.hash.clone(),
        at: record.at + 1,
        signature: "sig".into(),
        key_id: "key".into(),
    }
}

async fn batches_append_and_read_back_byte_for_byte(store: Store) {
    assert_eq!(store.audit_head().await.unwrap(), None);
    let first = chained(&Head::genesis(), 3);
    store.append_audit(&first).await.unwrap();
    let second = chained(&first[2].head(), 2);
    store.append_audit(&second).await.unwrap();
    store.append_audit(&[]).await.unwrap();

    assert_eq!(store.audit_head().await.unwrap(), Some(second[1].head()));
    let all = store.audit_records(0, None, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[..3], first[..]);
    assert_eq!(all[3..], second[..]);
    assert!(all.iter().all(AuditRecord::content_matches));
    assert_eq!(store.audit_records(3, None, 1).await.unwrap(), second[..1]);
    // `since` filters on `at`.
    let recent = store.audit_records(0, Some(4000), 100).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);

    // Stored as canonical JSON: the very text the hash covers.
    let data: String = sqlx::query_scalar("SELECT data FROM audit_records WHERE seq = 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        data,
        r#"{"subject":"user1","z":{"a":true,"b":[1,2.5,null]}}"#
    );
}

async fn a_batch_with_a_taken_seq_is_refused_whole(store: Store) {
    let records = chained(&Head::genesis(), 3);
    store.append_audit(&records[..2]).await.unwrap();
    // Seq 2 is taken: neither 2 nor 3 goes in, and the error says where the trail ends.
    let err = store.append_audit(&records[1..]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AuditHeadMoved { ref head } if *head == records[1].head()),
        "{err:?}"
    );
    assert_eq!(store.audit_head().await.unwrap(), Some(records[1].head()));
    // A fork: seq 3 chained onto a seq 2 that is not the stored one.
    let fork = chained(
        &Head {
            seq: 2,
            hash: "0".repeat(64),
        },
        1,
    );
    let err = store.append_audit(&fork).await.unwrap_err();
    assert!(matches!(err, StoreError::AuditHeadMoved { .. }), "{err:?}");
    assert_eq!(store.audit_head().await.unwrap(), Some(records[1].head()));
}

async fn concurrent_writers_make_one_chain(store: Store) {
    // Four writers, each chaining onto the head it last knew and re-chaining when told the
    // trail moved: what several brokers sharing a store do.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut head = Head::genesis();
                for _ in 0..10 {
                    loop {
                        let mut data = Map::new();
                        data.insert("writer".into(), json!(w));
                        let record = AuditRecord::next(&head, 1, "test.event.v1".into(), data);
                        match store.append_audit(std::slice::from_ref(&record)).await {
                            Ok(()) => {
                                head = record.head();
                                break;
                            }
                            Err(StoreError::AuditHeadMoved { head: moved }) => head = moved,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let all = store.audit_records(0, None, 100).await.unwrap();
    assert_eq!(all.len(), 40);
    let report = verify(&all, &[], &[0u8; 32]);
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.last_seq, 40);
}

async fn checkpoints_are_kept_once_per_seq(store: Store) {
    let records = chained(&Head::genesis(), 10);
    store.append_audit(&records).await.unwrap();
    assert_eq!(store.last_audit_checkpoint().await.unwrap(), None);
    let c4 = checkpoint(&records[3]);
    let c8 = checkpoint(&records[7]);
    store.insert_audit_checkpoint(&c4).await.unwrap();
    store.insert_audit_checkpoint(&c8).await.unwrap();
    let mut again = c8.clone();
    again.signature = "other".into();
    store.insert_audit_checkpoint(&again).await.unwrap();
    assert_eq!(
        store.last_audit_checkpoint().await.unwrap(),
        Some(c8.clone())
    );
    assert_eq!(
        store.audit_checkpoints(0, None).await.unwrap(),
        [c4.clone(), c8.clone()]
    );
    assert_eq!(store.audit_checkpoints(4, None).await.unwrap(), [c8]);
    assert_eq!(store.audit_checkpoints(0, Some(7)).await.unwrap(), [c4]);
}

async fn pages_carry_their_checkpoints_and_the_last_page_all_later_ones(store: Store) {
    let records = chained(&Head::genesis(), 10);
    store.append_audit(&records).await.unwrap();
    for i in [2, 5, 9] {
        store
            .insert_audit_checkpoint(&checkpoint(&records[i]))
            .await
            .unwrap();
    }
    // A checkpoint past the last record: what a cut-off tail leaves behind.
    let mut beyond = checkpoint(&records[9]);
    beyond.seq = 12;
    store.insert_audit_checkpoint(&beyond).await.unwrap();

    let page = store.audit_slice(0, None, 4).await.unwrap();
    assert_eq!(page.head_seq, 10);
    assert_eq!(page.records.len(), 4);
    assert_eq!(
        page.checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [3]
    );
    let page = store.audit_slice(4, None, 4).await.unwrap();
    assert_eq!(
        page.checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [6]
    );
    let last = store.audit_slice(8, None, 4).await.unwrap();
    assert_eq!(last.records.len(), 2);
    assert_eq!(
        last.checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [10, 12]
    );
    let empty = Store::open_in_memory().await.unwrap();
    let page = empty.audit_slice(0, None, 10).await.unwrap();
    assert_eq!((page.records.len(), page.head_seq), (0, 0));
}

async fn the_tables_are_append_only_until_someone_drops_the_triggers(store: Store) {
    let records = chained(&Head::genesis(), 3);
    store.append_audit(&records).await.unwrap();
    store
        .insert_audit_checkpoint(&checkpoint(&records[2]))
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_records SET event = 'x' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 3",
        "UPDATE audit_checkpoints SET hash = 'x'",
        "DELETE FROM audit_checkpoints",
    ] {
        let err = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // What an intruder with the file (or a database superuser) does; the verifier is what
    // notices.
    let drop = match store.dialect() {
        crate::Dialect::Sqlite => "DROP TRIGGER audit_records_no_update",
        crate::Dialect::Postgres => "DROP TRIGGER audit_records_append_only ON audit_records",
    };
    sqlx::query(drop).execute(store.pool()).await.unwrap();
    sqlx::query("UPDATE audit_records SET data = '{\"subject\":\"mallory\"}' WHERE seq = 2")
        .execute(store.pool())
        .await
        .unwrap();
    let read = store.audit_records(0, None, 10).await.unwrap();
    let report = verify(&read, &[], &[0u8; 32]);
    assert_eq!(
        report.broken.map(|b| b.to_string()).unwrap_or_default(),
        "record 2 was edited: its hash does not match its content"
    );

    sqlx::query("UPDATE audit_records SET data = '[1]' WHERE seq = 3")
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.audit_records(0, None, 10).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stored audit record 3 is corrupt: data is not a JSON object"
    );
}

async fn numbers_beyond_the_store_are_refused(store: Store) {
    let mut record = chained(&Head::genesis(), 1).remove(0);
    record.at = u64::MAX;
    let err = store.append_audit(&[record]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
}

crate::test_support::on_both_databases!(
    batches_append_and_read_back_byte_for_byte,
    a_batch_with_a_taken_seq_is_refused_whole,
    concurrent_writers_make_one_chain,
    checkpoints_are_kept_once_per_seq,
    pages_carry_their_checkpoints_and_the_last_page_all_later_ones,
    the_tables_are_append_only_until_someone_drops_the_triggers,
    numbers_beyond_the_store_are_refused,
);
