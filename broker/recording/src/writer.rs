//! The background writer: one task that owns every session's unwritten events.
//!
//! Data flow: [`crate::SessionRecording::record`] → bounded queue → [`Writer::receive`], which
//! serializes the event into the session's `pending` JSON lines → [`Writer::flush`], which hands
//! the lines to a blocking thread that gzips them into one member and calls
//! [`Sink::append`] → [`Writer::written`] with the outcome.
//!
//! Invariants:
//! - at most one write per session is in flight, so chunks reach the sink in order;
//! - a failed write's lines go back in front of the session's pending lines and are retried at
//!   the next tick (events are never reordered, and a retried chunk was cut back by the sink);
//! - `total` is the sum over sessions of pending plus in-flight event lines, checked against
//!   the global cap; per-session bytes are checked against the per-session cap. An event over
//!   either cap is dropped and counted. The final event of a session and the drop notes are
//!   exempt (one per session, one per write), so a session can always be closed; they are
//!   written at the end of a chunk, the final event last;
//! - drops are reported (health watch) as soon as the writer sees them, and written as a
//!   [`SessionEvent::Note`] at the end of the next chunk; the count is cleared only when that
//!   chunk is durable.
//!
//! A session is forgotten once its final event is durable. Sessions whose storage keeps failing
//! stay (bounded by the caps) until it works again or the recorder shuts down.

use std::collections::HashMap;
use std::io::{self, Write};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Notify;

use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{self, MissedTickBehavior};

use crate::event::{Event, SessionEvent, write_line};
use crate::recorder::{Options, Shared};
use crate::sink::Sink;

/// An event on its way to the writer.
#[derive(Debug)]
pub(crate) struct Queued {
    /// Whose event it is.
    pub(crate) session: Arc<Shared>,
    /// The event, already stamped.
    pub(crate) event: Event,
}

/// Requests that must not be lost to a full queue.
#[derive(Debug)]
pub(crate) enum Control {
    /// A session was opened: flush it from now on, even if none of its events got through the
    /// queue (its drops must still be noted and reported).
    Register {
        /// The session.
        session: Arc<Shared>,
    },
    /// Close a session with `event` once `expected` of its events have arrived.
    Finish {
        /// The session.
        session: Arc<Shared>,
        /// How many events the session had queued when it was finished.
        expected: u64,
        /// The last event.
        event: Event,
    },
    /// Write everything and stop; reply on `done`.
    Shutdown {
        /// Told when the writer has stopped.
        done: oneshot::Sender<()>,
    },
}

/// Compresses `lines` into one gzip member and appends it for `session`. A panicking sink is
/// reported as an error rather than taking the writer down.
pub(crate) fn write_chunk(
    sink: &dyn Sink,
    session: &str,
    started_at_ms: u64,
    lines: &[u8],
    level: u32,
) -> io::Result<()> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(lines.len() / 4 + 64),
        Compression::new(level.min(9)),
    );
    encoder.write_all(lines)?;
    let chunk = encoder.finish()?;
    panic::catch_unwind(AssertUnwindSafe(|| {
        sink.append(session, started_at_ms, &chunk)
    }))
    .unwrap_or_else(|_| Err(io::Error::other("the storage sink panicked")))
}

/// A note the writer adds about the recording itself. It has no number (`n`): numbers count
/// the events the session recorded, so that a gap shows recorded events that were not written.
fn writer_note(session: &Shared, message: String) -> Event {
    Event {
        t: session.now(),
        n: None,
        body: SessionEvent::Note { message }.into(),
    }
}

/// How often the writer takes in the queued events (sooner when the queue is half full).
const DRAIN: time::Duration = time::Duration::from_millis(20);

/// The writer task. See the [module documentation](self).
pub(crate) async fn run(
    sink: Arc<dyn Sink>,
    options: Options,
    mut events: mpsc::Receiver<Queued>,
    mut control: mpsc::UnboundedReceiver<Control>,
    wake: Arc<Notify>,
    totals: Arc<crate::recorder::Totals>,
) {
    let mut tick = time::interval(options.flush_interval.max(time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drain = time::interval(DRAIN);
    drain.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut writer = Writer::new(sink, options, totals);
    let mut replies = Vec::new();
    loop {
        tokio::select! {
            // Completions first (they free sessions for their next write), the tick before the
            // queue so a busy queue cannot starve the periodic flush.
            biased;
            Some(done) = writer.writes.join_next(), if !writer.writes.is_empty() => {
                writer.written(done);
            }
            request = control.recv() => {
                // A finish counts the session's events: take in what is queued first.
                if !writer.take_in(&mut events) {
                    break;
                }
                match request {
                    Some(Control::Register { session }) => writer.register(session),
                    Some(Control::Finish { session, expected, event }) => {
                        writer.finish(session, expected, event);
                    }
                    Some(Control::Shutdown { done }) => {
                        replies.push(done);
                        break;
                    }
                    None => break,
                }
            }
            _ = tick.tick() => {
                if !writer.take_in(&mut events) {
                    break;
                }
                writer.flush_all();
            }
            // The queue is taken in on a short tick, or when it is half full, never once per
            // event: a session records a few events per statement, and waking this task for
            // each cost the relay more than recording them.
            _ = drain.tick() => {
                if !writer.take_in(&mut events) {
                    break;
                }
            }
            () = wake.notified() => {
                if !writer.take_in(&mut events) {
                    break;
                }
            }
        }
    }
    // Stop accepting, then take in everything already queued.
    events.close();
    control.close();
    loop {
        let mut progressed = false;
        while let Ok(queued) = events.try_recv() {
            writer.receive(queued);
            progressed = true;
        }
        while let Ok(request) = control.try_recv() {
            match request {
                Control::Register { session } => writer.register(session),
                Control::Finish {
                    session,
                    expected,
                    event,
                } => writer.finish(session, expected, event),
                Control::Shutdown { done } => replies.push(done),
            }
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    writer.stop().await;
    for done in replies {
        let _ = done.send(());
    }
}

/// One session's state in the writer.
#[derive(Debug)]
struct SessionState {
    /// Shared with the session's handles.
    shared: Arc<Shared>,
    /// Serialized lines not yet handed to the sink.
    pending: Vec<u8>,
    /// Bytes of pending lines in the write in flight (0 when none). At most one write per
    /// session.
    in_flight: usize,
    /// Whether a write is in flight.
    writing: bool,
    /// Events received from the queue, to match a finish request's `expected`.
    received: u64,
    /// A finish request waiting for the rest of the session's events.
    finish: Option<(u64, Event)>,
    /// The final event's line, kept apart so that it is written after everything else (a drop
    /// note included); cleared once durable.
    last: Option<Vec<u8>>,
    /// The final event has been taken: forget the session once it is written.
    closing: bool,
    /// Events dropped and not yet written in a note that reached the sink.
    dropped: u64,
    /// Whether the last write failed (to log transitions only once).
    failing: bool,
}

impl SessionState {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            pending: Vec::new(),
            in_flight: 0,
            writing: false,
            received: 0,
            finish: None,
            last: None,
            closing: false,
            dropped: 0,
            failing: false,
        }
    }

    /// Takes the final event: nothing after it is accepted.
    fn close_with(&mut self, event: &Event) {
        let mut line = Vec::new();
        match write_line(&mut line, event) {
            Ok(()) => self.last = Some(line),
            Err(err) => {
                tracing::error!(session = %self.shared.session, error = %err, "cannot encode a recording event");
            }
        }
        self.closing = true;
    }

    /// Bytes this session holds.
    fn buffered(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    /// Takes over the drops counted by `record` and reports new ones on the health watch.
    fn collect_drops(&mut self) {
        self.dropped += self.shared.dropped.swap(0, Ordering::AcqRel);
        if self.dropped > 0 {
            let dropped = self.dropped;
            self.shared.fail(|| {
                format!("{dropped} events of the recording were dropped: it could not keep up with the session")
            });
        }
    }
}

/// The result of one write, back from the blocking thread.
#[derive(Debug)]
struct WriteDone {
    /// Which session.
    key: u64,
    /// What the sink said.
    result: io::Result<()>,
    /// The lines written, returned for a retry.
    batch: Vec<u8>,
    /// Where the drop note starts in `batch` (its length if there is none).
    note_at: usize,
    /// Drops the note reported.
    noted: u64,
    /// Whether the batch ended with the session's final event.
    with_last: bool,
}

/// The writer's state; see the [module documentation](self).
struct Writer {
    /// Where chunks go.
    sink: Arc<dyn Sink>,
    /// Limits and intervals.
    options: Options,
    /// Sessions with something pending, in flight, or not yet finished.
    sessions: HashMap<u64, SessionState>,
    /// Writes in flight on blocking threads.
    writes: JoinSet<WriteDone>,
    /// Pending plus in-flight bytes over all sessions.
    total: usize,
    /// Reused buffer for one serialized event.
    line: Vec<u8>,
    /// Shared with the recorder's handles.
    totals: Arc<crate::recorder::Totals>,
}

impl Writer {
    /// Takes in every queued event; `false` once the queue is closed and empty.
    fn take_in(&mut self, events: &mut mpsc::Receiver<Queued>) -> bool {
        loop {
            match events.try_recv() {
                Ok(queued) => self.receive(queued),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn new(sink: Arc<dyn Sink>, options: Options, totals: Arc<crate::recorder::Totals>) -> Self {
        Self {
            sink,
            options,
            sessions: HashMap::new(),
            writes: JoinSet::new(),
            total: 0,
            line: Vec::new(),
            totals,
        }
    }

    /// Takes a newly opened session.
    fn register(&mut self, session: Arc<Shared>) {
        if !session.closed.load(Ordering::Acquire) {
            self.sessions
                .entry(session.key)
                .or_insert_with(|| SessionState::new(session));
        }
    }

    /// Takes one event from the queue.
    fn receive(&mut self, queued: Queued) {
        let Queued { session, event } = queued;
        if session.closed.load(Ordering::Acquire) {
            return;
        }
        let key = session.key;
        let state = self
            .sessions
            .entry(key)
            .or_insert_with(|| SessionState::new(session));
        state.received += 1;
        if state.closing {
            // Recorded concurrently with `finish`, after the final event: not part of it.
            return;
        }
        self.line.clear();
        if let Err(err) = write_line(&mut self.line, &event) {
            tracing::error!(session = %state.shared.session, error = %err, "cannot encode a recording event");
            state.dropped += 1;
            self.totals.events_dropped.fetch_add(1, Ordering::Relaxed);
        } else if state.buffered() + self.line.len() > self.options.max_pending_bytes
            || self.total + self.line.len() > self.options.max_total_pending_bytes
        {
            state.dropped += 1;
            self.totals.events_dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            state.pending.extend_from_slice(&self.line);
            self.total += self.line.len();
        }
        // A failing session is retried at the next tick only, not at every event.
        let full = state.pending.len() >= self.options.max_batch_bytes && !state.failing;
        if full {
            self.flush(key);
        }
        self.try_close(key);
    }

    /// Takes a finish request.
    fn finish(&mut self, session: Arc<Shared>, expected: u64, event: Event) {
        if session.closed.load(Ordering::Acquire) {
            return;
        }
        let key = session.key;
        let state = self
            .sessions
            .entry(key)
            .or_insert_with(|| SessionState::new(session));
        if state.closing || state.finish.is_some() {
            return;
        }
        state.finish = Some((expected, event));
        self.try_close(key);
    }

    /// Appends the final event once all events queued before it have arrived, and writes.
    fn try_close(&mut self, key: u64) {
        let Some(state) = self.sessions.get_mut(&key) else {
            return;
        };
        let ready = matches!(&state.finish, Some((expected, _)) if state.received >= *expected);
        if !ready {
            return;
        }
        if let Some((_, event)) = state.finish.take() {
            state.close_with(&event);
        }
        self.flush(key);
    }

    /// Flushes every session (the periodic tick).
    fn flush_all(&mut self) {
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            self.flush(key);
        }
    }

    /// Starts a write of the session's pending lines, unless one is in flight; forgets a closed
    /// session with nothing left to write.
    fn flush(&mut self, key: u64) {
        let Some(state) = self.sessions.get_mut(&key) else {
            return;
        };
        state.collect_drops();
        if state.writing {
            return;
        }
        if state.pending.is_empty() && state.dropped == 0 && state.last.is_none() {
            if state.closing {
                state.shared.closed.store(true, Ordering::Release);
                state.shared.written.send_replace(true);
                self.sessions.remove(&key);
            }
            return;
        }
        let mut batch = mem::take(&mut state.pending);
        let note_at = batch.len();
        let noted = state.dropped;
        if noted > 0 {
            let note = writer_note(&state.shared, format!("{noted} events dropped"));
            // Exempt from the caps, like the final event: at most one per write.
            let _ = write_line(&mut batch, &note);
        }
        let with_last = match &state.last {
            Some(last) => {
                batch.extend_from_slice(last);
                true
            }
            None => false,
        };
        state.writing = true;
        state.in_flight = note_at;
        let sink = self.sink.clone();
        let session = state.shared.session.clone();
        let started_at_ms = state.shared.started_at_ms;
        let level = self.options.compression_level;
        self.writes.spawn_blocking(move || {
            let result = write_chunk(&*sink, &session, started_at_ms, &batch, level);
            WriteDone {
                key,
                result,
                batch,
                note_at,
                noted,
                with_last,
            }
        });
    }

    /// Takes the outcome of a write.
    fn written(&mut self, done: Result<WriteDone, JoinError>) {
        let done = match done {
            Ok(done) => done,
            // Only if the runtime is shutting down: `write_chunk` catches panics.
            Err(err) => {
                tracing::error!(error = %err, "a recording write did not complete");
                return;
            }
        };
        let Some(state) = self.sessions.get_mut(&done.key) else {
            return;
        };
        state.writing = false;
        self.total = self.total.saturating_sub(state.in_flight);
        let written = std::mem::take(&mut state.in_flight);
        match done.result {
            Ok(()) => {
                self.totals
                    .bytes_written
                    .fetch_add(written as u64, Ordering::Relaxed);
                state.dropped = state.dropped.saturating_sub(done.noted);
                if done.with_last {
                    state.last = None;
                }
                if state.failing {
                    state.failing = false;
                    tracing::info!(session = %state.shared.session, "the recording is being written again");
                }
                let more = state.closing || state.pending.len() >= self.options.max_batch_bytes;
                if more {
                    self.flush(done.key);
                }
            }
            Err(err) => {
                let reason = format!(
                    "cannot write the recording to {}: {err}",
                    self.sink.describe()
                );
                if !state.failing {
                    state.failing = true;
                    tracing::warn!(session = %state.shared.session, %reason, "recording write failed; will retry");
                }
                state.shared.fail(|| reason);
                let mut batch = done.batch;
                batch.truncate(done.note_at);
                batch.extend_from_slice(&state.pending);
                self.total += done.note_at;
                state.pending = batch;
            }
        }
    }

    /// Final flush at shutdown: notes on sessions still open, every session written, one retry
    /// for those that fail, then whatever still fails is logged and reported on the sessions'
    /// health watches.
    async fn stop(&mut self) {
        for state in self.sessions.values_mut() {
            if state.closing {
                continue;
            }
            // A finish still waiting for events: they were all drained above (or lost).
            if let Some((_, event)) = state.finish.take() {
                state.close_with(&event);
                continue;
            }
            let note = writer_note(
                &state.shared,
                "the recorder stopped before the session ended".into(),
            );
            let before = state.pending.len();
            if write_line(&mut state.pending, &note).is_ok() {
                self.total += state.pending.len() - before;
            }
        }
        // Rounds until everything is written; a round in which a write failed counts against a
        // budget of two, after which the rest is given up. Writes in flight when shutdown began
        // finish in the first round, so their sessions' later lines go in the next one.
        let mut failed_rounds = 0;
        for _round in 0..16 {
            self.flush_all();
            let mut failures = 0;
            while let Some(done) = self.writes.join_next().await {
                if matches!(&done, Ok(done) if done.result.is_err()) {
                    failures += 1;
                }
                self.written(done);
            }
            let clean = self.sessions.values().all(|state| {
                state.pending.is_empty() && state.dropped == 0 && state.last.is_none()
            });
            if clean {
                break;
            }
            if failures > 0 {
                failed_rounds += 1;
                if failed_rounds >= 2 {
                    break;
                }
            }
        }
        for state in self.sessions.values() {
            if !state.pending.is_empty() || state.last.is_some() {
                tracing::error!(
                    session = %state.shared.session,
                    bytes = state.pending.len(),
                    "the recorder stopped with part of this recording unwritten"
                );
                state
                    .shared
                    .fail(|| "the recorder stopped with part of the recording unwritten".into());
            }
        }
    }
}
