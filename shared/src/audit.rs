//! The audit trail as it crosses the wire: hash-chained records, signed checkpoints, and the
//! verifier that `sluice audit verify` runs against them.
//!
//! ```text
//! GET /v1/audit?after=SEQ&since=UNIX_MS&limit=N -> AuditPage    auditors only (policy.auditors)
//! ```
//!
//! Every record carries the hash of the one before it:
//!
//! ```text
//! hash = hex(SHA-256(prev_hash as 32 raw bytes || canonical JSON of {at, data, event, seq}))
//! ```
//!
//! where the canonical JSON has no whitespace and every object's keys sorted by their UTF-8
//! bytes, at every depth ([`canonical_json`]); the first record's `prev_hash` is
//! [`GENESIS_HASH`]. Editing a record breaks its own hash; deleting or reordering records breaks
//! the next record's `prev_hash` or leaves a gap in `seq`. Rewriting the whole chain from some
//! record on is caught by [`Checkpoint`]s: the broker signs `(seq, hash, at)` with its Ed25519
//! token key every so often, and a rewritten chain no longer matches them. Records after the
//! last checkpoint can be cut off without a trace: see `docs/audit.md`.
//!
//! Times are milliseconds since the Unix epoch. Paging: `after` is the last `seq` the caller
//! has (0 for the start); a page holds the checkpoints with `seq` in `(after, last record of
//! the page]`, or every checkpoint after `after` once the page is the last one, so a
//! checkpoint beyond the last record (a cut-off tail) always reaches the verifier.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Path of the audit trail.
pub const AUDIT_PATH: &str = "/v1/audit";
/// Records per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 1000;
/// The most records one page holds; larger limits are cut to this.
pub const MAX_PAGE: u32 = 5000;
/// `prev_hash` of the first record: 32 zero bytes.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// What a checkpoint signature covers starts with this, so a signature made for a session
/// token (the same key) can never pass as a checkpoint's.
const CHECKPOINT_DOMAIN: &str = "sluice-audit-checkpoint-v1";

/// One audit event, chained to the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// When the event happened, milliseconds since the epoch.
    pub at: u64,
    /// The event's stable, versioned name (`grant.requested.v1`).
    pub event: String,
    /// The event's fields (never a credential).
    pub data: Map<String, Value>,
    /// `hash` of record `seq - 1`, or [`GENESIS_HASH`] for the first record.
    pub prev_hash: String,
    /// This record's hash (see the module documentation), lowercase hex.
    pub hash: String,
}

impl AuditRecord {
    /// The record that follows `prev` (a record's head, or [`Head::genesis`]).
    pub fn next(prev: &Head, at: u64, event: String, data: Map<String, Value>) -> Self {
        let seq = prev.seq + 1;
        // `Head`s come from records this module hashed, so their hash is always 64 hex
        // digits; if one is not, the record gets an empty hash and fails verification rather
        // than carrying a made-up one.
        let hash = record_hash(&prev.hash, seq, at, &event, &data).unwrap_or_default();
        Self {
            seq,
            at,
            event,
            data,
            prev_hash: prev.hash.clone(),
            hash,
        }
    }

    /// This record as the head the next one chains to.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Whether `hash` is the hash of this record's content and `prev_hash`.
    pub fn content_matches(&self) -> bool {
        record_hash(&self.prev_hash, self.seq, self.at, &self.event, &self.data)
            .is_some_and(|h| h == self.hash)
    }
}

/// The end of a chain: the last record's `seq` and `hash`, what the next record links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last record's seq (0 for an empty trail).
    pub seq: u64,
    /// The last record's hash ([`GENESIS_HASH`] for an empty trail).
    pub hash: String,
}

impl Head {
    /// The head of an empty trail.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// `hash` of a record, or `None` when `prev_hash` is not 64 hex digits.
pub fn record_hash(
    prev_hash: &str,
    seq: u64,
    at: u64,
    event: &str,
    data: &Map<String, Value>,
) -> Option<String> {
    let prev = hex_decode(prev_hash).filter(|b| b.len() == 32)?;
    let mut doc = String::with_capacity(128);
    doc.push_str("{\"at\":");
    doc.push_str(&at.to_string());
    doc.push_str(",\"data\":");
    canonical_object(data, &mut doc);
    doc.push_str(",\"event\":");
    canonical_json(&Value::String(event.to_string()), &mut doc);
    doc.push_str(",\"seq\":");
    doc.push_str(&seq.to_string());
    doc.push('}');
    let mut input = prev;
    input.extend_from_slice(doc.as_bytes());
    Some(hex(digest(&SHA256, &input).as_ref()))
}

/// Appends `value` as canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes at
/// every depth, strings and numbers as serde_json writes them. Independent of serde_json's
/// `preserve_order` feature, which any crate in a build could switch on.
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => canonical_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's compact form (escaped strings, shortest round-trip floats).
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn canonical_object(map: &Map<String, Value>, out: &mut String) {
    let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    out.push('{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        canonical_json(&Value::String(key.to_string()), out);
        out.push(':');
        canonical_json(value, out);
    }
    out.push('}');
}

/// The broker's signature over a record's `(seq, hash)` at time `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The record signed for.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    /// When it was signed, milliseconds since the epoch.
    pub at: u64,
    /// Ed25519 signature over [`Checkpoint::message`], base64url without padding.
    pub signature: String,
    /// [`key_id`] of the signing key.
    pub key_id: String,
}

impl Checkpoint {
    /// The bytes a checkpoint's signature covers.
    pub fn message(seq: u64, hash: &str, at: u64) -> Vec<u8> {
        format!("{CHECKPOINT_DOMAIN}\n{seq}\n{hash}\n{at}\n").into_bytes()
    }

    /// Whether the signature is `public_key`'s (raw 32-byte Ed25519) over this checkpoint.
    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&Self::message(self.seq, &self.hash, self.at), &signature)
            .is_ok()
    }
}

/// A short, stable name for a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    let mut id = hex(digest(&SHA256, public_key).as_ref());
    id.truncate(16);
    id
}

/// One page of `GET /v1/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Records with `seq > after` (and `at >= since`), oldest first.
    pub records: Vec<AuditRecord>,
    /// The checkpoints for this page (see the module documentation), oldest first.
    pub checkpoints: Vec<Checkpoint>,
    /// The broker's Ed25519 public key (raw 32 bytes, base64url without padding).
    pub public_key: String,
    /// [`key_id`] of `public_key`.
    pub key_id: String,
    /// The newest record's seq when the page was read (0: the trail is empty).
    pub head_seq: u64,
}

/// The first broken link found by [`verify`]. Seqs name records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// The record's hash does not match its content: it was edited.
    Edited {
        /// The record.
        seq: u64,
    },
    /// Records `from..=to` are absent from the middle (or start) of the trail.
    Missing {
        /// The first missing seq.
        from: u64,
        /// The last missing seq.
        to: u64,
    },
    /// The record's `prev_hash` is not the previous record's hash: records were reordered,
    /// replaced, or the previous one was rewritten with a fresh hash.
    Relinked {
        /// The record.
        seq: u64,
    },
    /// Two records claim the same seq.
    Duplicate {
        /// The seq.
        seq: u64,
    },
    /// The checkpoint's signature does not verify with the broker's key: it was forged or
    /// altered.
    CheckpointForged {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The checkpoint names a signing key other than the broker's (rotated or foreign).
    CheckpointOtherKey {
        /// The checkpoint's seq.
        seq: u64,
        /// The key it names.
        key_id: String,
        /// The broker's key.
        expected: String,
    },
    /// The checkpoint's hash is not the hash of the record at its seq: the records up to it
    /// were rewritten after it was signed.
    CheckpointMismatch {
        /// The checkpoint's (and record's) seq.
        seq: u64,
    },
    /// Records `from..=to` after the last one present were deleted: a checkpoint signed `to`.
    Truncated {
        /// The first missing seq.
        from: u64,
        /// The checkpoint's seq.
        to: u64,
    },
}

impl Break {
    /// The first seq the break concerns, which orders breaks along the trail.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Edited { seq }
            | Self::Relinked { seq }
            | Self::Duplicate { seq }
            | Self::CheckpointForged { seq }
            | Self::CheckpointOtherKey { seq, .. }
            | Self::CheckpointMismatch { seq } => *seq,
            Self::Missing { from, .. } | Self::Truncated { from, .. } => *from,
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { seq } => write!(
                f,
                "record {seq} was edited: its hash does not match its content"
            ),
            Self::Missing { from, to } => {
                let what = if from == to {
                    format!("record {from} is missing")
                } else {
                    format!("records {from}..{to} are missing")
                };
                if *from <= 1 {
                    write!(f, "{what} (the trail starts at {})", to + 1)
                } else {
                    write!(f, "{what} (seq jumps from {} to {})", from - 1, to + 1)
                }
            }
            Self::Relinked { seq } => write!(
                f,
                "record {seq} does not follow record {}: its prev_hash is not that record's hash \
                 (records were reordered or replaced, or record {} was rewritten)",
                seq.saturating_sub(1),
                seq.saturating_sub(1)
            ),
            Self::Duplicate { seq } => write!(f, "record {seq} appears more than once"),
            Self::CheckpointForged { seq } => write!(
                f,
                "the checkpoint at {seq} has an invalid signature: the broker's key did not \
                 sign it"
            ),
            Self::CheckpointOtherKey {
                seq,
                key_id,
                expected,
            } => write!(
                f,
                "the checkpoint at {seq} was signed by key {key_id}, not by the broker's key \
                 {expected}"
            ),
            Self::CheckpointMismatch { seq } => write!(
                f,
                "the checkpoint at {seq} does not match record {seq}: the records up to {seq} \
                 were rewritten after it was signed"
            ),
            Self::Truncated { from, to } => {
                let what = if from == to {
                    format!("record {from} was")
                } else {
                    format!("records {from}..{to} were")
                };
                let end = if *from <= 1 {
                    "the trail is empty".to_string()
                } else {
                    format!("the trail stops at {}", from - 1)
                };
                write!(
                    f,
                    "{what} deleted from the end of the trail: the checkpoint at {to} signed \
                     them, but {end}"
                )
            }
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Records examined.
    pub records: u64,
    /// Checkpoints examined.
    pub checkpoints: u64,
    /// The newest record's seq (0: none).
    pub last_seq: u64,
    /// The newest checkpoint, as `(seq, at)`.
    pub last_checkpoint: Option<SignedAt>,
    /// The first broken link, or `None` when the trail is intact.
    pub broken: Option<Break>,
}

/// Where and when the newest checkpoint was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAt {
    /// The record it signs.
    pub seq: u64,
    /// When, milliseconds since the epoch.
    pub at: u64,
}

impl Report {
    /// True when no link is broken.
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }

    /// Records after the newest checkpoint, which no signature covers yet.
    pub fn unsigned(&self) -> u64 {
        self.last_seq
            .saturating_sub(self.last_checkpoint.map_or(0, |c| c.seq))
    }
}

/// Walks `records` in seq order from the genesis and reports the first broken link, with the
/// checkpoints checked against `public_key` (raw 32-byte Ed25519) and against the records they
/// sign. Pass the whole trail: a trail that does not start at seq 1 is reported as missing its
/// start. [`Verifier`] does the same page by page.
pub fn verify(records: &[AuditRecord], checkpoints: &[Checkpoint], public_key: &[u8]) -> Report {
    let mut sorted: Vec<&AuditRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut signed: Vec<&Checkpoint> = checkpoints.iter().collect();
    signed.sort_by_key(|c| c.seq);
    let mut verifier = Verifier::new(public_key);
    verifier.checkpoints(signed);
    verifier.records(sorted);
    verifier.finish()
}

/// [`verify`] for a trail that arrives in pages, holding only a page at a time.
///
/// Feed each page's checkpoints, then its records, pages in seq order: a checkpoint must
/// arrive no later than the record it signs (the pages of `GET /v1/audit` are cut that way).
#[derive(Debug)]
pub struct Verifier {
    /// The broker's raw Ed25519 public key.
    public_key: Vec<u8>,
    /// Its key id, which every checkpoint must name.
    key_id: String,
    /// The last record the chain walk accepted.
    prev: Head,
    /// Records fed so far.
    records: u64,
    /// The highest seq fed so far.
    last_seq: u64,
    /// Checkpoints fed so far.
    checkpoints: u64,
    /// The newest checkpoint fed so far.
    last_checkpoint: Option<SignedAt>,
    /// Checkpoints with valid signatures whose record has not been seen yet: seq → hash.
    pending: BTreeMap<u64, String>,
    /// The first break of the chain walk; the walk stops there.
    chain_break: Option<Break>,
    /// The checkpoint break with the lowest seq.
    checkpoint_break: Option<Break>,
}

impl Verifier {
    /// A verifier for checkpoints signed with `public_key` (raw 32-byte Ed25519).
    pub fn new(public_key: &[u8]) -> Self {
        Self {
            public_key: public_key.to_vec(),
            key_id: key_id(public_key),
            prev: Head::genesis(),
            records: 0,
            last_seq: 0,
            checkpoints: 0,
            last_checkpoint: None,
            pending: BTreeMap::new(),
            chain_break: None,
            checkpoint_break: None,
        }
    }

    /// Checks the signatures of `checkpoints` and remembers them for the records they sign.
    pub fn checkpoints<'a>(&mut self, checkpoints: impl IntoIterator<Item = &'a Checkpoint>) {
        for checkpoint in checkpoints {
            self.checkpoints += 1;
            if self.last_checkpoint.is_none_or(|c| c.seq <= checkpoint.seq) {
                self.last_checkpoint = Some(SignedAt {
                    seq: checkpoint.seq,
                    at: checkpoint.at,
                });
            }
            let seq = checkpoint.seq;
            if checkpoint.key_id != self.key_id {
                self.checkpoint_broke(Break::CheckpointOtherKey {
                    seq,
                    key_id: checkpoint.key_id.clone(),
                    expected: self.key_id.clone(),
                });
            } else if !checkpoint.signature_valid(&self.public_key) {
                self.checkpoint_broke(Break::CheckpointForged { seq });
            } else {
                self.pending.insert(seq, checkpoint.hash.clone());
            }
        }
    }

    /// Walks `records` (in seq order, continuing the previous ones) along the chain.
    pub fn records<'a>(&mut self, records: impl IntoIterator<Item = &'a AuditRecord>) {
        for record in records {
            self.records += 1;
            self.last_seq = self.last_seq.max(record.seq);
            if self.chain_break.is_some() {
                continue;
            }
            self.chain_break = self.link(record);
            if self.chain_break.is_some() {
                continue;
            }
            if let Some(hash) = self.pending.remove(&record.seq)
                && hash != record.hash
            {
                self.checkpoint_broke(Break::CheckpointMismatch { seq: record.seq });
            }
            self.prev = record.head();
        }
    }

    /// What is wrong with `record` as the successor of `self.prev`, if anything.
    fn link(&self, record: &AuditRecord) -> Option<Break> {
        let prev = &self.prev;
        if record.seq <= prev.seq {
            Some(Break::Duplicate { seq: record.seq })
        } else if record.seq > prev.seq + 1 {
            Some(Break::Missing {
                from: prev.seq + 1,
                to: record.seq - 1,
            })
        } else if record.prev_hash != prev.hash {
            Some(Break::Relinked { seq: record.seq })
        } else if !record.content_matches() {
            Some(Break::Edited { seq: record.seq })
        } else {
            None
        }
    }

    fn checkpoint_broke(&mut self, found: Break) {
        if self
            .checkpoint_break
            .as_ref()
            .is_none_or(|b| found.seq() < b.seq())
        {
            self.checkpoint_break = Some(found);
        }
    }

    /// The report, once every page was fed.
    pub fn finish(mut self) -> Report {
        // Signed checkpoints whose record never came. Below the last record, the chain walk
        // has already reported the gap (or stopped earlier); beyond it, the tail was cut off.
        let beyond: Vec<u64> = self
            .pending
            .range(self.last_seq + 1..)
            .map(|(s, _)| *s)
            .collect();
        if let Some(&to) = beyond.last() {
            self.checkpoint_broke(Break::Truncated {
                from: self.last_seq + 1,
                to,
            });
        }
        // The break nearest the start wins; on a tie, the record's own fault explains more
        // than the checkpoint that merely disagrees with it.
        let broken = match (self.chain_break, self.checkpoint_break) {
            (Some(a), Some(b)) => Some(if b.seq() < a.seq() { b } else { a }),
            (a, b) => a.or(b),
        };
        Report {
            records: self.records,
            checkpoints: self.checkpoints,
            last_seq: self.last_seq,
            last_checkpoint: self.last_checkpoint,
            broken,
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Bytes from lowercase or uppercase hex; `None` for anything else.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests;
