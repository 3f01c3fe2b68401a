//! Capture and writer: audit events reach the store whatever the log filter says, in order,
//! chained and signed; drops and cut-off tails are put on the record.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sluice_shared::audit::{Break, verify};
use tracing::info;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;

fn signer() -> Arc<Signer> {
    let pem = crate::tokens::generate_signing_key().expect("generate a key");
    Arc::new(Signer::from_pem(&pem).expect("an Ed25519 key"))
}

fn public_key(signer: &Signer) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(signer.public_key())
        .expect("base64url public key")
}

/// Runs `emit` with `layer` installed as it is in the broker: beside a log layer whose filter
/// shows nothing at all. The layer (and so the queue's sender) is dropped afterwards.
fn with_layer(layer: AuditLayer, emit: impl FnOnce()) {
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(EnvFilter::new("off"));
    let subscriber = tracing_subscriber::registry()
        .with(log)
        .with(layer.with_filter(interest()));
    tracing::subscriber::with_default(subscriber, emit);
}

/// `n` audit events `test.N.v1`.
fn emit_numbered(layer: AuditLayer, n: u64) {
    with_layer(layer, || {
        for i in 1..=n {
            let event = format!("test.{i}.v1");
            info!(target: "audit", event = %event, i);
        }
    });
}

async fn all(store: &Store) -> (Vec<AuditRecord>, Vec<Checkpoint>) {
    let slice = store
        .audit_slice(0, None, 5000)
        .await
        .expect("read the trail");
    (slice.records, slice.checkpoints)
}

#[tokio::test]
async fn events_are_captured_with_their_fields_and_span_even_when_the_log_hides_them() {
    let (layer, mut queue) = capture();
    with_layer(layer, || {
        let span =
            tracing::info_span!(target: "sluiced::tunnel", "session", id = "s1", subject = "alice");
        let _entered = span.enter();
        info!(target: "audit", event = "grant.requested.v1", subject = %"bob", ttl_secs = 60u64,
            approval = false, ratio = 0.5, delta = -3i64, "a message");
        info!("an ordinary log line");
        tracing::warn!(target: "audit", event = "statement.blocked.v1", rule = ?"no-ddl");
        info!(target: "audit", unnamed_field = 1);
    });
    let first = queue.queue.try_recv().expect("the first audit event");
    assert_eq!(first.event, "grant.requested.v1");
    assert_eq!(
        Value::Object(first.data),
        json!({
            "subject": "bob",
            "ttl_secs": 60,
            "approval": false,
            "ratio": 0.5,
            "delta": -3,
            "message": "a message",
            "context": {"session": {"id": "s1", "subject": "alice"}},
        })
    );
    assert!(first.at > 1_600_000_000_000, "ms since the epoch");
    let second = queue.queue.try_recv().expect("the second audit event");
    assert_eq!(second.event, "statement.blocked.v1");
    assert_eq!(second.data["rule"], json!("\"no-ddl\""));
    let third = queue.queue.try_recv().expect("an event without a name");
    assert_eq!(third.event, "unnamed");
    assert!(
        third.data["callsite"]
            .as_str()
            .unwrap_or("")
            .contains("tests.rs")
    );
    assert!(
        queue.queue.try_recv().is_err(),
        "only audit events are captured"
    );
}

#[tokio::test]
async fn a_full_queue_never_blocks_and_the_drops_are_put_on_the_record() {
    let (layer, queue) = capture_with(2);
    emit_numbered(layer, 5);
    let store = Store::open_in_memory().await.expect("store");
    let signer = signer();
    let writer = queue
        .start(store.clone(), signer.clone())
        .await
        .expect("start");
    writer.shutdown().await;
    let (records, checkpoints) = all(&store).await;
    let events: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["test.1.v1", "test.2.v1", "audit.dropped.v1"]);
    assert_eq!(records[2].data["count"], json!(3));
    assert!(verify(&records, &checkpoints, &public_key(&signer)).intact());
}

#[tokio::test]
async fn the_writer_chains_signs_and_continues_after_a_restart() {
    let store = Store::open_in_memory().await.expect("store");
    let signer = signer();
    let key = public_key(&signer);

    // Emitted before the writer starts: buffered, then written in one batch of 150, which
    // crosses CHECKPOINT_EVERY.
    let (layer, queue) = capture();
    emit_numbered(layer, 150);
    let writer = queue
        .start(store.clone(), signer.clone())
        .await
        .expect("start");
    writer.shutdown().await;
    let (records, checkpoints) = all(&store).await;
    assert_eq!(records.len(), 150);
    assert_eq!(records[149].event, "test.150.v1");
    assert_eq!(records[0].data["i"], json!(1));
    assert_eq!(checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(), [150]);
    assert_eq!(checkpoints[0].key_id, signer.key_id());

    // A restart: a new queue on the same store; shutdown signs the new head.
    let (layer, queue) = capture();
    emit_numbered(layer, 3);
    let writer = queue
        .start(store.clone(), signer.clone())
        .await
        .expect("restart");
    writer.shutdown().await;
    let (records, checkpoints) = all(&store).await;
    assert_eq!(records.len(), 153);
    assert_eq!(records[150].prev_hash, records[149].hash);
    assert_eq!(
        checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [150, 153]
    );
    let report = verify(&records, &checkpoints, &key);
    assert!(report.intact(), "{:?}", report.broken);
}

#[tokio::test]
async fn after_a_cut_off_tail_the_chain_continues_past_the_checkpoint() {
    let store = Store::open_in_memory().await.expect("store");
    let signer = signer();
    let (layer, queue) = capture();
    emit_numbered(layer, 7);
    queue
        .start(store.clone(), signer.clone())
        .await
        .expect("start")
        .shutdown()
        .await;
    // What deleting records 8..10 after a checkpoint at 10 leaves: a signed checkpoint beyond
    // the last record.
    let forged_head = Head {
        seq: 10,
        hash: sluice_shared::audit::GENESIS_HASH.replace('0', "a"),
    };
    store
        .insert_audit_checkpoint(&signer.sign(&forged_head, 1))
        .await
        .expect("checkpoint");

    let (layer, queue) = capture();
    emit_numbered(layer, 1);
    queue
        .start(store.clone(), signer.clone())
        .await
        .expect("restart")
        .shutdown()
        .await;
    let (records, checkpoints) = all(&store).await;
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 11, 12]);
    assert_eq!(records[7].event, "audit.truncated.v1");
    assert_eq!(records[7].data["last_record"], json!(7));
    assert_eq!(records[7].data["checkpoint"], json!(10));
    assert_eq!(records[7].prev_hash, forged_head.hash);
    let report = verify(&records, &checkpoints, &public_key(&signer));
    assert_eq!(report.broken, Some(Break::Missing { from: 8, to: 10 }));
}

#[test]
fn the_signer_uses_the_token_key_and_refuses_other_keys() {
    let signer = signer();
    let key = public_key(&signer);
    assert_eq!(key.len(), 32);
    assert_eq!(signer.key_id(), key_id(&key));
    let checkpoint = signer.sign(
        &Head {
            seq: 3,
            hash: "ab".repeat(32),
        },
        42,
    );
    assert!(checkpoint.signature_valid(&key));
    assert!(signer.signed(&checkpoint));
    assert!(!signer.signed(&Checkpoint {
        at: 43,
        ..checkpoint
    }));
    let ecdsa = rcgen::KeyPair::generate().expect("ecdsa").serialize_pem();
    assert!(Signer::from_pem(&ecdsa).is_none());
    assert!(Signer::from_pem("garbage").is_none());
}
