//! The recorder: what engines hold to record a session without waiting for storage.
//!
//! [`Recorder::start`] spawns one background writer task and returns a
//! handle. [`Recorder::open`] writes a session's header to the sink *before* the session starts
//! (so a session whose recording is required can be refused when storage is broken) and
//! returns a [`SessionRecording`]. The engine's pump tasks call [`SessionRecording::record`],
//! which only stamps the time and tries to put the event in a bounded queue: it never waits and
//! never takes a lock. The writer batches, compresses and appends off the runtime threads.
//! `record` also stamps the event's envelope: `t` and its number `n` in the session.
//!
//! Failures flow back through [`SessionRecording::failed`], a watch that becomes
//! `Some(reason)` when a write for the session failed or events had to be dropped; the broker
//! ends `required` sessions on it and audits the others.
//!
//! Memory is bounded: the queue holds at most [`Options::queue_capacity`] events, a session
//! keeps at most [`Options::max_pending_bytes`] of unwritten lines (retained across failed
//! writes for the retry), and all sessions together at most
//! [`Options::max_total_pending_bytes`]. Beyond those, events are dropped and counted, and the
//! count is written into the recording as a [`SessionEvent::Note`].

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::event::{Body, Event, Header, SessionEvent, write_line};
use crate::sink::{InvalidSessionId, Sink, validate_session_id};
use crate::writer::{self, Control, Queued};

/// Tuning of a [`Recorder`]. [`Options::default`] suits a broker.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events that may wait in the queue between the sessions and the writer (default 65,536).
    /// When it is full, [`SessionRecording::record`] drops the event and counts it.
    pub queue_capacity: usize,
    /// How often every session's pending events are written (default 1 s). A session's events
    /// reach storage at most about this long after they were recorded.
    pub flush_interval: Duration,
    /// A session whose pending lines reach this size is written at once rather than at the next
    /// interval (default 256 KiB).
    pub max_batch_bytes: usize,
    /// Unwritten lines one session may hold, including those kept for a retry after a failed
    /// write (default 8 MiB). Beyond it, the session's new events are dropped and counted.
    pub max_pending_bytes: usize,
    /// Unwritten lines all sessions together may hold (default 64 MiB).
    pub max_total_pending_bytes: usize,
    /// gzip level, 0 (store) to 9 (smallest); default 1, the fastest, which already shrinks
    /// JSON lines several times.
    pub compression_level: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            flush_interval: Duration::from_secs(1),
            max_batch_bytes: 256 * 1024,
            max_pending_bytes: 8 * 1024 * 1024,
            max_total_pending_bytes: 64 * 1024 * 1024,
            compression_level: 1,
        }
    }
}

/// Why a session's recording could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The session id cannot name a recording.
    #[error(transparent)]
    InvalidSession(#[from] InvalidSessionId),
    /// The sink refused the header: storage is not writable right now.
    #[error("cannot write the recording to {sink}")]
    Write {
        /// [`Sink::describe`] of the sink.
        sink: String,
        /// What the sink reported.
        #[source]
        source: io::Error,
    },
    /// The header could not be encoded (a bug; reported rather than panicking).
    #[error("cannot encode the recording header")]
    Encode(#[source] serde_json::Error),
    /// [`Recorder::shutdown`] was called.
    #[error("the recorder has stopped")]
    Stopped,
}

/// The handle to a running recorder. Cheap to clone; every clone drives the same writer.
#[derive(Clone)]
pub struct Recorder {
    /// Shared by the clones.
    inner: Arc<RecorderInner>,
}

/// What the clones of a [`Recorder`] share.
struct RecorderInner {
    /// Where recordings go; `open` writes headers to it directly.
    sink: Arc<dyn Sink>,
    /// The event queue, bounded by [`Options::queue_capacity`].
    events: mpsc::Sender<Queued>,
    /// Finish and shutdown requests: one per session at most, so unbounded is bounded.
    control: mpsc::UnboundedSender<Control>,
    /// The gzip level for headers (the writer has its own copy for the rest).
    compression_level: u32,
    /// The next session key: the writer's name for a session, unique even if ids repeat.
    next_key: AtomicU64,
    /// Wakes the writer before its next drain when the queue is half full.
    wake: Arc<Notify>,
    /// Running totals, for the broker's metrics.
    totals: Arc<Totals>,
}

/// What a recorder has done since it started: bytes of event lines written to storage, and
/// events dropped (queue full, or a session or the recorder over its memory cap).
#[derive(Debug, Default)]
pub struct Totals {
    pub(crate) bytes_written: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
}

impl Totals {
    /// Bytes of event lines (before compression) the sink confirmed.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Events dropped.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("sink", &self.inner.sink.describe())
            .field("stopped", &self.inner.events.is_closed())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the background writer on the current tokio runtime; returns the handle and the
    /// writer's task, which ends after [`Recorder::shutdown`] (or once every handle, including
    /// every [`SessionRecording`], is dropped), when everything pending has been written.
    ///
    /// Must be called within a tokio runtime.
    pub fn start(sink: Arc<dyn Sink>, options: Options) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (events_tx, events_rx) = mpsc::channel(options.queue_capacity.max(1));
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let compression_level = options.compression_level.min(9);
        let wake = Arc::new(Notify::new());
        let totals = Arc::new(Totals::default());
        let task = tokio::spawn(writer::run(
            sink.clone(),
            options,
            events_rx,
            control_rx,
            Arc::clone(&wake),
            Arc::clone(&totals),
        ));
        let recorder = Recorder {
            inner: Arc::new(RecorderInner {
                sink,
                events: events_tx,
                control: control_tx,
                compression_level,
                next_key: AtomicU64::new(1),
                wake,
                totals,
            }),
        };
        (recorder, task)
    }

    /// What this recorder has written and dropped since it started.
    pub fn totals(&self) -> &Totals {
        &self.inner.totals
    }

    /// Starts the recording of a session: writes `header` to the sink and waits until it is
    /// durable. Fails at once if the session id is invalid or the sink cannot be written, so a
    /// session whose recording is required can be refused before it starts.
    ///
    /// Event times (`t`) count from the moment this is called. Session ids must be unique: two
    /// recordings opened with the same id end up in the same file.
    pub async fn open(&self, header: Header) -> Result<SessionRecording, RecordError> {
        let start = Instant::now();
        validate_session_id(&header.session)?;
        if self.inner.events.is_closed() {
            return Err(RecordError::Stopped);
        }
        let mut line = Vec::new();
        write_line(&mut line, &header).map_err(RecordError::Encode)?;
        let sink = self.inner.sink.clone();
        let session = header.session.clone();
        let started_at_ms = header.started_at_ms;
        let level = self.inner.compression_level;
        let written = tokio::task::spawn_blocking(move || {
            writer::write_chunk(&*sink, &session, started_at_ms, &line, level)
        })
        .await
        .unwrap_or_else(|err| {
            Err(io::Error::other(format!(
                "the header write did not finish: {err}"
            )))
        });
        if let Err(source) = written {
            return Err(RecordError::Write {
                sink: self.inner.sink.describe(),
                source,
            });
        }
        let (failed, _) = watch::channel(None);
        let (written, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            key: self.inner.next_key.fetch_add(1, Ordering::Relaxed),
            session: header.session,
            started_at_ms,
            start,
            next_number: AtomicU64::new(1),
            failed,
            dropped: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            written,
        });
        if self
            .inner
            .control
            .send(Control::Register {
                session: shared.clone(),
            })
            .is_err()
        {
            return Err(RecordError::Stopped);
        }
        Ok(SessionRecording {
            inner: Arc::new(Handle {
                shared,
                events: self.inner.events.clone(),
                control: self.inner.control.clone(),
                wake: Arc::clone(&self.inner.wake),
                totals: Arc::clone(&self.inner.totals),
            }),
        })
    }

    /// Writes everything pending (retrying failed sessions once more), stops the writer and
    /// waits for it. Sessions still open get a [`SessionEvent::Note`] saying the recorder
    /// stopped, and their later events are dropped (their [`SessionRecording::failed`] says
    /// so).
    ///
    /// Waits for writes in progress: if the sink hangs, so does this; put a deadline around it.
    pub async fn shutdown(self) {
        let (done, finished) = oneshot::channel();
        if self.inner.control.send(Control::Shutdown { done }).is_ok() {
            let _ = finished.await;
        }
    }
}

/// What a session's handles and the writer share about it.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The writer's name for the session.
    pub(crate) key: u64,
    /// The session id, naming the recording in the sink.
    pub(crate) session: String,
    /// The header's start time, passed to the sink with every chunk.
    pub(crate) started_at_ms: u64,
    /// `t = 0`.
    pub(crate) start: Instant,
    /// The envelope number `n` of the session's next event. Taken when an event is recorded,
    /// before it may be dropped, so a dropped event leaves a gap.
    pub(crate) next_number: AtomicU64,
    /// The health watch; the first failure's reason stays.
    pub(crate) failed: watch::Sender<Option<String>>,
    /// Events [`SessionRecording::record`] dropped because the queue was full; the writer takes
    /// them over into its own count when it next flushes the session.
    pub(crate) dropped: AtomicU64,
    /// Events put in the queue. A finish request carries the count it saw, so the writer closes
    /// the session only after those events arrived (finish travels on another channel).
    pub(crate) enqueued: AtomicU64,
    /// `finish` was called, or the last handle dropped: later events are ignored.
    pub(crate) finished: AtomicBool,
    /// The writer has written the last event and forgotten the session: events still in the
    /// queue for it (recorded concurrently with `finish`) are ignored.
    pub(crate) closed: AtomicBool,
    /// Becomes true when the writer has written the last event (with everything before it).
    pub(crate) written: watch::Sender<bool>,
}

impl Shared {
    /// Milliseconds since the session started.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The envelope of an event recorded now: its time and its number.
    fn stamp(&self, body: Body) -> Event {
        Event {
            t: self.now(),
            n: Some(self.next_number.fetch_add(1, Ordering::Relaxed)),
            body,
        }
    }

    /// Reports a failure on the health watch, unless one was reported already.
    pub(crate) fn fail(&self, reason: impl FnOnce() -> String) {
        self.failed.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason());
            true
        });
    }
}

/// One session's recording, as held by the engine. Cheap to clone: the client-to-target and
/// target-to-client pumps each hold one.
///
/// Dropping the last clone without [`SessionRecording::finish`] closes the recording with a
/// [`SessionEvent::Note`] instead of a [`SessionEvent::End`].
#[derive(Clone)]
pub struct SessionRecording {
    /// Shared by the clones; its drop closes the recording.
    inner: Arc<Handle>,
}

/// What the clones of a [`SessionRecording`] share.
#[derive(Debug)]
struct Handle {
    /// The session's state, shared with the writer.
    shared: Arc<Shared>,
    /// The recorder's event queue.
    events: mpsc::Sender<Queued>,
    /// The recorder's control channel, for the finish request.
    control: mpsc::UnboundedSender<Control>,
    /// Wakes the writer early when the queue is half full.
    wake: Arc<Notify>,
    /// The recorder's totals.
    totals: Arc<Totals>,
}

impl fmt::Debug for SessionRecording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecording")
            .field("session", &self.inner.shared.session)
            .field("failed", &*self.inner.shared.failed.borrow())
            .finish_non_exhaustive()
    }
}

impl SessionRecording {
    /// The session id.
    pub fn session(&self) -> &str {
        &self.inner.shared.session
    }

    /// Records an event of any family (`SqlEvent`, `TerminalEvent`, ... or a [`Body`]),
    /// stamped with the time since the session started and the next event number. Never
    /// waits.
    ///
    /// If the queue is full the event is dropped and counted; the writer then writes a
    /// note with the count and reports the loss on [`SessionRecording::failed`].
    /// Events recorded after [`SessionRecording::finish`] are ignored.
    pub fn record(&self, body: impl Into<Body>) {
        let shared = &self.inner.shared;
        if shared.finished.load(Ordering::Acquire) {
            return;
        }
        let event = shared.stamp(body.into());
        let queued = Queued {
            session: shared.clone(),
            event,
        };
        match self.inner.events.try_send(queued) {
            Ok(()) => {
                shared.enqueued.fetch_add(1, Ordering::AcqRel);
                // The writer takes the queue in on a short tick rather than on every event (a
                // wake-up per statement cost more than the rest of recording it); a burst that
                // fills half the queue before the tick calls it at once.
                let events = &self.inner.events;
                if events.capacity() * 2 < events.max_capacity() {
                    self.inner.wake.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .totals
                    .events_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared.fail(|| "the recorder has stopped: events are no longer recorded".into());
            }
        }
    }

    /// The health of this recording: `None` while everything recorded is on its way to
    /// storage, `Some(reason)` from the first failed write or dropped event on. It stays
    /// `Some` even if later writes succeed (events kept for the retry are then written): the
    /// session ran for a while without a durable recording, and the broker decides what that
    /// means (`required` sessions are ended).
    pub fn failed(&self) -> watch::Receiver<Option<String>> {
        self.inner.shared.failed.subscribe()
    }

    /// Records `end` (normally a `SessionEvent::End`) as the last event and closes the
    /// recording: the writer writes it, with everything recorded before, at once. Later calls
    /// of `record` and `finish` are ignored.
    pub fn finish(&self, end: impl Into<Body>) {
        self.inner.close(end.into());
    }

    /// After [`Self::finish`]: waits, up to `limit`, until the whole recording is in storage
    /// (true) or a write failed (true: [`Self::failed`] says why). False when neither happened
    /// in time: the recording's end is not confirmed, and must not be reported as recorded.
    pub async fn settled(&self, limit: std::time::Duration) -> bool {
        let mut written = self.inner.shared.written.subscribe();
        let mut failed = self.inner.shared.failed.subscribe();
        let settle = async {
            loop {
                if *written.borrow_and_update() || failed.borrow_and_update().is_some() {
                    return;
                }
                tokio::select! {
                    changed = written.changed() => if changed.is_err() { return },
                    changed = failed.changed() => if changed.is_err() { return },
                }
            }
        };
        tokio::time::timeout(limit, settle).await.is_ok()
            && (*written.borrow() || failed.borrow().is_some())
    }
}

impl Handle {
    /// Sends the finish request with `last` as the final event, once.
    fn close(&self, last: Body) {
        let shared = &self.shared;
        if shared.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let event = shared.stamp(last);
        let request = Control::Finish {
            session: shared.clone(),
            expected: shared.enqueued.load(Ordering::Acquire),
            event,
        };
        if self.control.send(request).is_err() {
            shared.fail(|| {
                "the recorder has stopped: the end of the session was not recorded".into()
            });
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close(Body::Session(SessionEvent::Note {
            message: "the recording was closed without an end event".into(),
        }));
    }
}
