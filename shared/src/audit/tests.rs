//! The chain and the verifier: a clean trail verifies, and each kind of tampering is reported
//! at the right record.

use super::*;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;

/// A key pair and its raw public key.
fn key() -> (Ed25519KeyPair, Vec<u8>) {
    let pair = Ed25519KeyPair::generate().expect("generate an Ed25519 key");
    let public = pair.public_key().as_ref().to_vec();
    (pair, public)
}

fn data(value: serde_json::Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `n` chained records, event `test.N.v1`, at = 1000 * seq.
fn chain(n: u64) -> Vec<AuditRecord> {
    let mut head = Head::genesis();
    (1..=n)
        .map(|i| {
            let record = AuditRecord::next(
                &head,
                1000 * i,
                format!("test.{i}.v1"),
                data(json!({
                    "subject": format!("user{i}"),
                    "n": i,
                    "nested": {"b": 1, "a": [true, null]},
                })),
            );
            head = record.head();
            record
        })
        .collect()
}

fn checkpoint(pair: &Ed25519KeyPair, record: &AuditRecord, at: u64) -> Checkpoint {
    let signature = pair.sign(&Checkpoint::message(record.seq, &record.hash, at));
    Checkpoint {
        seq: record.seq,
        hash: record.hash.clone(),
        at,
        signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
        key_id: key_id(pair.public_key().as_ref()),
    }
}

fn broken(records: &[AuditRecord], checkpoints: &[Checkpoint], public: &[u8]) -> Break {
    let report = verify(records, checkpoints, public);
    report.broken.expect("the verifier should find a break")
}

#[test]
fn hashes_are_sha256_of_the_previous_hash_and_the_canonical_content() {
    let record = AuditRecord::next(
        &Head::genesis(),
        1_700_000_000_000,
        "grant.requested.v1".into(),
        data(json!({"subject": "alice", "role": "read"})),
    );
    let doc = r#"{"at":1700000000000,"data":{"role":"read","subject":"alice"},"event":"grant.requested.v1","seq":1}"#;
    let mut input = vec![0u8; 32];
    input.extend_from_slice(doc.as_bytes());
    assert_eq!(record.hash, hex(digest(&SHA256, &input).as_ref()));
    assert_eq!(record.prev_hash, GENESIS_HASH);
    assert_eq!(record.seq, 1);
    assert_eq!(record.hash.len(), 64);
    assert!(record.content_matches());
}

#[test]
fn canonical_json_sorts_keys_at_every_depth_whatever_the_insertion_order() {
    let mut a = Map::new();
    a.insert("z".into(), json!({"y": 1, "x": [{"b": 2, "a": 1}]}));
    a.insert("a".into(), json!("é\"\n"));
    let mut b = Map::new();
    b.insert("a".into(), json!("é\"\n"));
    b.insert("z".into(), json!({"x": [{"a": 1, "b": 2}], "y": 1}));
    let (mut ca, mut cb) = (String::new(), String::new());
    canonical_json(&Value::Object(a), &mut ca);
    canonical_json(&Value::Object(b), &mut cb);
    assert_eq!(ca, cb);
    assert_eq!(ca, r#"{"a":"é\"\n","z":{"x":[{"a":1,"b":2}],"y":1}}"#);
}

#[test]
fn hashes_survive_a_round_trip_through_json() {
    let records = chain(5);
    let text = serde_json::to_string(&records).expect("serialize");
    let back: Vec<AuditRecord> = serde_json::from_str(&text).expect("deserialize");
    assert!(back.iter().all(AuditRecord::content_matches));
    assert_eq!(back, records);
}

#[test]
fn an_untouched_trail_with_checkpoints_verifies() {
    let (pair, public) = key();
    let records = chain(10);
    let checkpoints = vec![
        checkpoint(&pair, &records[4], 5_500),
        checkpoint(&pair, &records[7], 8_500),
    ];
    let report = verify(&records, &checkpoints, &public);
    assert!(report.intact(), "{:?}", report.broken);
    assert_eq!(report.records, 10);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.last_seq, 10);
    assert_eq!(report.last_checkpoint, Some(SignedAt { seq: 8, at: 8_500 }));
    assert_eq!(report.unsigned(), 2);
    assert!(verify(&[], &[], &public).intact());
}

#[test]
fn edited_data_is_caught_at_the_edited_record() {
    let (_, public) = key();
    let mut records = chain(10);
    records[6].data.insert("subject".into(), json!("mallory"));
    let found = broken(&records, &[], &public);
    assert_eq!(found, Break::Edited { seq: 7 });
    assert_eq!(
        found.to_string(),
        "record 7 was edited: its hash does not match its content"
    );
}

#[test]
fn an_edited_event_name_or_time_is_caught() {
    let (_, public) = key();
    let mut records = chain(10);
    records[2].event = "grant.approval.v1".into();
    assert_eq!(broken(&records, &[], &public), Break::Edited { seq: 3 });

    let mut records = chain(10);
    records[3].at += 1;
    assert_eq!(broken(&records, &[], &public), Break::Edited { seq: 4 });
}

#[test]
fn a_deleted_middle_record_is_named() {
    let (_, public) = key();
    let mut records = chain(20);
    records.remove(17);
    let found = broken(&records, &[], &public);
    assert_eq!(found, Break::Missing { from: 18, to: 18 });
    assert_eq!(
        found.to_string(),
        "record 18 is missing (seq jumps from 17 to 19)"
    );

    let mut records = chain(20);
    records.drain(4..7);
    assert_eq!(
        broken(&records, &[], &public).to_string(),
        "records 5..7 are missing (seq jumps from 4 to 8)"
    );

    let mut records = chain(5);
    records.remove(0);
    assert_eq!(
        broken(&records, &[], &public).to_string(),
        "record 1 is missing (the trail starts at 2)"
    );
}

#[test]
fn a_deleted_record_with_renumbered_successors_breaks_the_link() {
    let (_, public) = key();
    let mut records = chain(10);
    records.remove(4);
    for r in records.iter_mut().skip(4) {
        r.seq -= 1;
    }
    // Renumbering changes the hashed content too, but the missing link is found first.
    assert_eq!(broken(&records, &[], &public), Break::Relinked { seq: 5 });
}

#[test]
fn deleted_last_records_are_caught_by_a_checkpoint() {
    let (pair, public) = key();
    let mut records = chain(30);
    let checkpoints = vec![
        checkpoint(&pair, &records[9], 1),
        checkpoint(&pair, &records[29], 2),
    ];
    records.truncate(24);
    let found = broken(&records, &checkpoints, &public);
    assert_eq!(found, Break::Truncated { from: 25, to: 30 });
    assert_eq!(
        found.to_string(),
        "records 25..30 were deleted from the end of the trail: the checkpoint at 30 signed \
         them, but the trail stops at 24"
    );

    // Without a checkpoint beyond them, the newest records can go unnoticed (docs/audit.md).
    let report = verify(&records, &checkpoints[..1], &public);
    assert!(report.intact());
    assert_eq!(report.unsigned(), 14);
}

#[test]
fn two_swapped_records_break_the_link_at_the_first_of_them() {
    let (_, public) = key();
    let mut records = chain(10);
    records.swap(3, 4);
    // Rows swapped wholesale: the verifier orders by seq, so this is the same trail.
    assert!(verify(&records, &[], &public).intact());

    // Contents swapped, seqs kept: what reordering rows in a table looks like.
    let mut records = chain(10);
    let (a, b) = (records[3].clone(), records[4].clone());
    records[3] = AuditRecord { seq: 4, ..b };
    records[4] = AuditRecord { seq: 5, ..a };
    assert_eq!(broken(&records, &[], &public), Break::Relinked { seq: 4 });
}

#[test]
fn a_rewritten_chain_is_caught_by_the_checkpoint_it_no_longer_matches() {
    let (pair, public) = key();
    let records = chain(12);
    let checkpoints = vec![checkpoint(&pair, &records[9], 1)];
    // Rewrite from record 3 on, with fresh hashes: every link holds.
    let mut head = records[1].head();
    let mut forged: Vec<AuditRecord> = records[..2].to_vec();
    for r in &records[2..] {
        let mut d = r.data.clone();
        d.insert("subject".into(), json!("nobody"));
        let record = AuditRecord::next(&head, r.at, r.event.clone(), d);
        head = record.head();
        forged.push(record);
    }
    let found = broken(&forged, &checkpoints, &public);
    assert_eq!(found, Break::CheckpointMismatch { seq: 10 });
    assert!(
        found
            .to_string()
            .contains("records up to 10 were rewritten")
    );
}

#[test]
fn a_forged_checkpoint_signature_is_refused() {
    let (pair, public) = key();
    let records = chain(10);
    let mut forged = checkpoint(&pair, &records[5], 1);
    forged.at += 1;
    assert_eq!(
        broken(&records, &[forged], &public),
        Break::CheckpointForged { seq: 6 }
    );

    // Signed by another key that claims to be the broker's.
    let (other, _) = key();
    let mut foreign = checkpoint(&other, &records[5], 1);
    foreign.key_id = key_id(&public);
    assert_eq!(
        broken(&records, &[foreign], &public),
        Break::CheckpointForged { seq: 6 }
    );

    let mut garbage = checkpoint(&pair, &records[5], 1);
    garbage.signature = "not base64!".into();
    assert_eq!(
        broken(&records, &[garbage], &public),
        Break::CheckpointForged { seq: 6 }
    );

    let other_key = checkpoint(&other, &records[7], 1);
    assert!(matches!(
        broken(&records, &[other_key], &public),
        Break::CheckpointOtherKey { seq: 8, .. }
    ));
}

#[test]
fn the_first_break_along_the_trail_is_the_one_reported() {
    let (pair, public) = key();
    let mut records = chain(20);
    let mut forged = checkpoint(&pair, &records[14], 1);
    forged.signature = checkpoint(&pair, &records[13], 1).signature;
    records[16].data.insert("x".into(), json!(1));
    records[3].event = "edited".into();
    assert_eq!(
        broken(&records, &[forged.clone()], &public),
        Break::Edited { seq: 4 }
    );
    let records = {
        let mut r = chain(20);
        r[16].data.insert("x".into(), json!(1));
        r
    };
    assert_eq!(
        broken(&records, &[forged], &public),
        Break::CheckpointForged { seq: 15 }
    );
}

#[test]
fn a_malformed_prev_hash_never_verifies() {
    let (_, public) = key();
    let mut records = chain(3);
    records[0].prev_hash = "zz".into();
    assert_eq!(broken(&records, &[], &public), Break::Relinked { seq: 1 });
    assert!(record_hash("abc", 1, 1, "e", &Map::new()).is_none());
    assert!(!records[0].content_matches());
}

#[test]
fn key_ids_are_short_and_stable() {
    let (_, public) = key();
    assert_eq!(key_id(&public), key_id(&public));
    assert_eq!(key_id(&public).len(), 16);
    assert_ne!(key_id(&public), key_id(&key().1));
}

#[test]
fn reports_serialize_with_a_kind_tag() {
    let (_, public) = key();
    let mut records = chain(3);
    records[1].data.clear();
    let report = verify(&records, &[], &public);
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["broken"], json!({"kind": "edited", "seq": 2}));
    assert_eq!(json["records"], 3);
}

/// Feeds `records` and `checkpoints` page by page, cut as `GET /v1/audit` cuts them.
fn paged(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    public: &[u8],
    size: usize,
) -> Report {
    let mut verifier = Verifier::new(public);
    let mut after = 0;
    let mut pages = records.chunks(size).peekable();
    if pages.peek().is_none() {
        verifier.checkpoints(checkpoints);
    }
    while let Some(page) = pages.next() {
        let last = page.last().map_or(after, |r| r.seq);
        let end = if pages.peek().is_some() {
            last
        } else {
            u64::MAX
        };
        verifier.checkpoints(checkpoints.iter().filter(|c| c.seq > after && c.seq <= end));
        verifier.records(page);
        after = last;
    }
    verifier.finish()
}

#[test]
fn page_by_page_gives_the_verdict_of_the_whole() {
    let (pair, public) = key();
    let records = chain(25);
    let checkpoints: Vec<Checkpoint> = [4, 9, 14, 19, 24]
        .iter()
        .map(|&i| checkpoint(&pair, &records[i], 1))
        .collect();
    let mut edited = records.clone();
    edited[11].event = "x".into();
    let mut rewritten = records.clone();
    rewritten[14].hash = "0".repeat(64);
    let cases: Vec<(&str, Vec<AuditRecord>)> = vec![
        ("untouched", records.clone()),
        ("edited", edited),
        ("rewritten", rewritten),
        ("truncated", records[..22].to_vec()),
        ("gap", [&records[..5], &records[9..]].concat()),
        ("empty", Vec::new()),
    ];
    for (name, case) in cases {
        let whole = verify(&case, &checkpoints, &public);
        for size in [1, 3, 7, 100] {
            assert_eq!(
                paged(&case, &checkpoints, &public, size),
                whole,
                "{name}, pages of {size}"
            );
        }
    }
    assert!(verify(&records, &checkpoints, &public).intact());
    assert_eq!(
        verify(&records[..22], &checkpoints, &public).broken,
        Some(Break::Truncated { from: 23, to: 25 })
    );
    assert_eq!(
        verify(&[], &checkpoints, &public).broken,
        Some(Break::Truncated { from: 1, to: 25 })
    );
}
