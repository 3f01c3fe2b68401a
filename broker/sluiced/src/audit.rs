//! The durable audit trail: a tracing layer that captures every `target: "audit"` event, and
//! the writer task that chains, stores and checkpoints them.
//!
//! ```text
//! info!(target: "audit", event = "grant.requested.v1", ...)      (anywhere in the broker)
//!   └─ AuditLayer::on_event: fields → JSON, try_send ──► bounded queue (QUEUE_CAPACITY)
//!                                      (full: count a drop, never block the emitter)
//! writer task: recv_many ─► chain onto the head (sluice_shared::audit) ─► Store::append_audit
//!              every CHECKPOINT_EVERY records or CHECKPOINT_INTERVAL ─► signed Checkpoint
//! ```
//!
//! The layer is the single capture point: call sites only emit tracing events, and the layer
//! is installed with its own per-layer filter, so `SLUICED_LOG` can hide audit events from the
//! log without keeping them from the trail. Events emitted before the writer starts wait in the
//! queue. Drops (a full queue, a store that stays down) are counted and written as one
//! `audit.dropped.v1` record as soon as the writer has room, so a gap in what was captured is
//! itself on the record. Checkpoints are signed with the session-token key (Ed25519).

use anyhow::{Context as _, Result};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sluice_shared::audit::{AuditRecord, Checkpoint, Head, key_id};
use sluice_store::{Store, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber, debug, warn};
use tracing_subscriber::filter::{FilterFn, filter_fn};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Target of the tracing events that are audit events.
pub const TARGET: &str = "audit";
/// Events the queue holds while the writer is busy or not started yet; beyond it, drops.
pub const QUEUE_CAPACITY: usize = 8192;
/// Most records appended in one transaction.
const BATCH: usize = 256;
/// A checkpoint is signed once this many records were appended since the last one.
const CHECKPOINT_EVERY: u64 = 100;
/// ... or after this long, if any record was appended since the last one.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// How long the writer waits before trying a failed append again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long shutdown waits for the queue to drain and the last checkpoint.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// One captured event, before it has a place in the chain.
#[derive(Debug, Clone)]
struct Captured {
    /// When it was emitted, ms since the epoch.
    at: u64,
    /// The `event` field.
    event: String,
    /// Every other field, and the fields of the spans it happened in.
    data: Map<String, Value>,
}

impl Captured {
    /// A record the writer itself adds (drops, a detected gap).
    fn own(event: &str, data: Map<String, Value>) -> Self {
        Self {
            at: now_ms(),
            event: event.to_string(),
            data,
        }
    }
}

/// The tracing layer; install it with [`interest`] as its per-layer filter.
#[derive(Debug)]
pub struct AuditLayer {
    /// Into the writer's queue; `try_send` only, so emitting never waits.
    queue: mpsc::Sender<Captured>,
    /// Events refused because the queue was full (or closed), not yet reported.
    dropped: Arc<AtomicU64>,
}

/// The receiving end of the queue, until [`AuditQueue::start`] hands it to the writer.
#[derive(Debug)]
pub struct AuditQueue {
    /// What the layer captured, in emission order.
    queue: mpsc::Receiver<Captured>,
    /// Shared with the layer: drops to report.
    dropped: Arc<AtomicU64>,
    /// How full the queue is, for the metrics.
    depth: AuditDepth,
}

/// How many captured audit events wait for the writer.
#[derive(Debug, Clone)]
pub struct AuditDepth(mpsc::WeakSender<Captured>);

impl AuditDepth {
    /// Events in the queue now (0 once the layer is gone).
    pub fn now(&self) -> usize {
        self.0
            .upgrade()
            .map_or(0, |queue| queue.max_capacity() - queue.capacity())
    }
}

impl AuditQueue {
    /// A probe of the queue's depth that outlives handing the queue to the writer.
    pub fn depth(&self) -> AuditDepth {
        self.depth.clone()
    }
}

/// The layer and its queue. The queue buffers from this moment on, before any writer runs.
pub fn capture() -> (AuditLayer, AuditQueue) {
    capture_with(QUEUE_CAPACITY)
}

fn capture_with(capacity: usize) -> (AuditLayer, AuditQueue) {
    let (tx, rx) = mpsc::channel(capacity);
    let dropped = Arc::new(AtomicU64::new(0));
    let depth = AuditDepth(tx.downgrade());
    (
        AuditLayer {
            queue: tx,
            dropped: dropped.clone(),
        },
        AuditQueue {
            depth,
            queue: rx,
            dropped,
        },
    )
}

/// The audit layer's own filter, independent of `SLUICED_LOG`: audit events, and the broker's
/// own spans (whose fields, such as a session's subject and resource, give the events inside
/// them their context).
pub fn interest() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(wanted as fn(&Metadata<'_>) -> bool)
}

fn wanted(meta: &Metadata<'_>) -> bool {
    meta.target() == TARGET || (meta.is_span() && meta.target().starts_with("sluiced"))
}

/// The fields of a span, kept in its extensions for the events inside it.
#[derive(Debug)]
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.data));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(SpanFields(data)) => data.extend(fields.data),
            None => extensions.insert(SpanFields(fields.data)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut data = fields.data;
        // The spans the event happened in, outermost first, under `context` (an event field of
        // that name wins).
        let mut context = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_data)) = span.extensions().get::<SpanFields>()
                    && !span_data.is_empty()
                {
                    context.insert(span.name().to_string(), Value::Object(span_data.clone()));
                }
            }
        }
        if !context.is_empty() {
            data.entry("context").or_insert(Value::Object(context));
        }
        let event_name = fields.event.unwrap_or_else(|| {
            // Every call site names its event; one that does not is still kept, and says
            // where it came from.
            let meta = event.metadata();
            data.insert(
                "callsite".into(),
                Value::String(format!(
                    "{}:{}",
                    meta.file().unwrap_or("?"),
                    meta.line().unwrap_or(0)
                )),
            );
            "unnamed".to_string()
        });
        let captured = Captured {
            at: now_ms(),
            event: event_name,
            data,
        };
        if self.queue.try_send(captured).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Collects tracing fields as JSON: numbers and booleans as such, everything else (`%` and
/// `?` values, errors) as its text. The `event` field is taken out as the record's name.
#[derive(Debug, Default)]
struct Fields {
    /// The `event` field.
    event: Option<String>,
    /// The other fields.
    data: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.data.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.event = Some(value.to_string());
        } else {
            self.put(field, Value::String(value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        let json = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, json);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(error_chain(value)));
    }
}

/// Signs checkpoints with the session-token key (Ed25519).
pub struct Signer {
    /// The private key.
    pair: Ed25519KeyPair,
    /// The raw public key, base64url: what auditors verify with.
    public_key: String,
    /// [`key_id`] of the public key.
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the Ed25519 PKCS#8 PEM key at `path` (`tokens.signing_key`).
    pub fn load(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| {
            format!(
                "the signing key {} is not an Ed25519 PKCS#8 PEM private key (generate one with \
                 `sluiced init`)",
                path.display()
            )
        })
    }

    /// From a PEM string; `None` if it is not an Ed25519 PKCS#8 key.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let key = rcgen::KeyPair::from_pem(pem).ok()?;
        if key.algorithm() != &rcgen::PKCS_ED25519 {
            return None;
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.serialize_der()).ok()?;
        let raw = pair.public_key().as_ref().to_vec();
        Some(Self {
            public_key: URL_SAFE_NO_PAD.encode(&raw),
            key_id: key_id(&raw),
            pair,
        })
    }

    /// The public key, raw 32 bytes in base64url.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The public key's short id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A checkpoint over `head`, signed now.
    pub fn sign(&self, head: &Head, at: u64) -> Checkpoint {
        let signature = self
            .pair
            .sign(&Checkpoint::message(head.seq, &head.hash, at));
        Checkpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
            key_id: self.key_id.clone(),
        }
    }

    /// Whether `checkpoint` carries this key's valid signature.
    fn signed(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint.key_id == self.key_id
            && checkpoint.signature_valid(self.pair.public_key().as_ref())
    }
}

impl AuditQueue {
    /// Starts the writer on `store`, continuing the chain where it ends.
    ///
    /// If the newest checkpoint (with a valid signature) is beyond the newest record, records
    /// that checkpoint vouches for were deleted; the chain then continues after the checkpoint
    /// rather than reusing their seqs, and says so in an `audit.truncated.v1` record.
    pub async fn start(self, store: Store, signer: Arc<Signer>) -> Result<AuditWriter, StoreError> {
        let mut head = store.audit_head().await?.unwrap_or_else(Head::genesis);
        let last = store.last_audit_checkpoint().await?;
        let mut first = Vec::new();
        if let Some(checkpoint) = &last
            && checkpoint.seq > head.seq
        {
            if signer.signed(checkpoint) {
                warn!(
                    last_record = head.seq,
                    checkpoint = checkpoint.seq,
                    "audit records signed by a checkpoint are missing from the store; the trail \
                     continues after the checkpoint (`sluice audit verify` names the gap)"
                );
                let mut data = Map::new();
                data.insert("last_record".into(), Value::from(head.seq));
                data.insert("checkpoint".into(), Value::from(checkpoint.seq));
                first.push(Captured::own("audit.truncated.v1", data));
                head = Head {
                    seq: checkpoint.seq,
                    hash: checkpoint.hash.clone(),
                };
            } else {
                warn!(
                    last_record = head.seq,
                    checkpoint = checkpoint.seq,
                    "the newest audit checkpoint is beyond the newest record and its signature \
                     does not verify; ignoring it (`sluice audit verify` reports it)"
                );
            }
        }
        let signed = last.map_or(0, |c| c.seq).min(head.seq);
        debug!(seq = head.seq, signed, "audit trail continues");
        let (stop, stopped) = oneshot::channel();
        let writer = Writer {
            store,
            signer,
            queue: self.queue,
            dropped: self.dropped,
            head,
            signed,
        };
        Ok(AuditWriter {
            stop: Some(stop),
            task: tokio::spawn(writer.run(stopped, first)),
        })
    }
}

/// The running writer; [`AuditWriter::shutdown`] drains it.
#[derive(Debug)]
pub struct AuditWriter {
    /// Tells the writer to drain and stop.
    stop: Option<oneshot::Sender<()>>,
    /// The writer task.
    task: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Writes what is queued, signs a last checkpoint and stops; gives up after
    /// [`DRAIN_LIMIT`] (a store that does not answer).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(DRAIN_LIMIT, &mut self.task).await {
            Ok(_) => debug!("audit trail drained"),
            Err(_) => {
                warn!(
                    "the audit trail could not be drained within {}s; events still queued are \
                     lost",
                    DRAIN_LIMIT.as_secs()
                );
                self.task.abort();
            }
        }
    }
}

/// The writer task's state.
struct Writer {
    /// Where records and checkpoints go.
    store: Store,
    /// Signs checkpoints.
    signer: Arc<Signer>,
    /// What the layer captured.
    queue: mpsc::Receiver<Captured>,
    /// Drops the layer counted, to report.
    dropped: Arc<AtomicU64>,
    /// The newest stored record: the next one chains onto it.
    head: Head,
    /// The seq of the newest checkpoint.
    signed: u64,
}

impl Writer {
    async fn run(mut self, mut stop: oneshot::Receiver<()>, first: Vec<Captured>) {
        let start = tokio::time::Instant::now() + CHECKPOINT_INTERVAL;
        let mut every = tokio::time::interval_at(start, CHECKPOINT_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = first;
        loop {
            if batch.is_empty() {
                tokio::select! {
                    _ = &mut stop => break,
                    received = self.queue.recv_many(&mut batch, BATCH) => {
                        if received == 0 {
                            break;
                        }
                    }
                    _ = every.tick() => {
                        if self.head.seq > self.signed {
                            self.checkpoint().await;
                        }
                        continue;
                    }
                }
            }
            self.write(std::mem::take(&mut batch)).await;
            if self.head.seq >= self.signed + CHECKPOINT_EVERY {
                self.checkpoint().await;
            }
        }
        // Shutdown: take what is queued (later events count as drops), write it, sign it.
        self.queue.close();
        let mut rest = Vec::new();
        while let Ok(captured) = self.queue.try_recv() {
            rest.push(captured);
            if rest.len() == BATCH {
                self.write(std::mem::take(&mut rest)).await;
            }
        }
        self.write(rest).await;
        if self.head.seq > self.signed {
            self.checkpoint().await;
        }
    }

    /// Chains `captured` (plus a drop report, if any) onto the head and appends it, retrying
    /// until the store takes it.
    async fn write(&mut self, mut captured: Vec<Captured>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let mut data = Map::new();
            data.insert("count".into(), Value::from(dropped));
            captured.push(Captured::own("audit.dropped.v1", data));
        }
        if captured.is_empty() {
            return;
        }
        let (mut records, mut head) = chain(&self.head, &captured);
        loop {
            match self.store.append_audit(&records).await {
                Ok(()) => break,
                // Another broker sharing the store appended first: chain onto its records.
                Err(StoreError::AuditHeadMoved { head: moved }) => {
                    debug!(
                        seq = moved.seq,
                        "the audit trail moved on; chaining after it"
                    );
                    (records, head) = chain(&moved, &captured);
                }
                Err(e) => {
                    warn!(error = %error_chain(&e), records = records.len(),
                        "cannot append to the audit trail; retrying (check the store and its \
                         disk)");
                    tokio::time::sleep(RETRY_DELAY).await;
                    // An error after the commit reached the disk: the batch is in.
                    if let Ok(Some(stored)) = self.store.audit_head().await
                        && stored == head
                    {
                        break;
                    }
                }
            }
        }
        self.head = head;
    }

    /// Signs the head and stores the checkpoint; a failure only delays it to the next one.
    async fn checkpoint(&mut self) {
        let checkpoint = self.signer.sign(&self.head, now_ms());
        match self.store.insert_audit_checkpoint(&checkpoint).await {
            Ok(()) => {
                self.signed = checkpoint.seq;
                debug!(seq = checkpoint.seq, key_id = %checkpoint.key_id,
                    "audit checkpoint signed");
            }
            Err(e) => warn!(error = %error_chain(&e), seq = checkpoint.seq,
                "cannot store an audit checkpoint; the next one will cover these records"),
        }
    }
}

/// `captured` as records chained onto `head`, and the head after the last of them.
fn chain(head: &Head, captured: &[Captured]) -> (Vec<AuditRecord>, Head) {
    let mut head = head.clone();
    let records = captured
        .iter()
        .map(|c| {
            let record = AuditRecord::next(&head, c.at, c.event.clone(), c.data.clone());
            head = record.head();
            record
        })
        .collect();
    (records, head)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
