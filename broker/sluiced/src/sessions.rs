//! One tunnel's paper trail: its recording, its row in the session index and its audit events,
//! from start to end; and the [`Journal`] that turns what the PostgreSQL relay hears into
//! recorded events.

use crate::tokens::now_secs;
use sluice_config::RecordMode;
use sluice_engine_postgres::hooks::{Decided, Journal, Masker};
use sluice_recording::{Recorder, Recording, SessionRecording, Sink};
use sluice_shared::recording::{Decision, FORMAT_VERSION, Header, SessionEvent, SqlEvent};
use sluice_shared::sessions::SessionInfo;
use sluice_store::{SessionEnd, Store};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// How often recordings and index rows past the retention are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);
/// How long a session's end waits for its recording to be confirmed in storage (the object
/// store retries for up to 10 s).
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// Starts and ends session records, and reads them back; one per broker.
#[derive(Clone)]
pub struct Sessions {
    recorder: Recorder,
    sink: Arc<dyn Sink>,
    store: Store,
    retention: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("sink", &self.sink.describe())
            .finish_non_exhaustive()
    }
}

/// Why a session may not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "the role '{role}' requires a session recording, and it cannot be written ({why}); nothing \
     was sent to the target. The operator should check the broker's recording directory; \
     `record: best-effort` on the role lets sessions go on unrecorded"
)]
pub struct RecordingRequired {
    role: String,
    why: String,
}

/// A running session's record.
pub struct SessionLog {
    info: SessionInfo,
    recording: Option<SessionRecording>,
    store: Store,
    mode: RecordMode,
    journal: Option<Arc<StatementJournal>>,
    /// Why the recording failed, once it has (best-effort roles go on).
    failure: Option<String>,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("id", &self.info.id)
            .field("recorded", &self.recording.is_some())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The store and the recordings sink, each `Ok` or what is wrong, for health checks.
    pub async fn check(&self) -> (Result<(), String>, Result<(), String>) {
        let store = self.store.ping().await.map_err(|e| e.to_string());
        let sink = self
            .sink
            .check()
            .map_err(|e| format!("{}: {e}", self.sink.describe()));
        (store, sink)
    }

    /// What the recorder has written and dropped since the broker started.
    pub fn recorder_totals(&self) -> &sluice_recording::Totals {
        self.recorder.totals()
    }

    /// Session records through `recorder` into `sink`, indexed in `store`, kept for
    /// `retention`.
    pub fn new(recorder: Recorder, sink: Arc<dyn Sink>, store: Store, retention: Duration) -> Self {
        Self {
            recorder,
            sink,
            store,
            retention,
        }
    }

    /// The session index.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A session's recording as stored (complete up to the last flush), if there is one.
    pub async fn read(&self, id: &str) -> std::io::Result<Option<Recording>> {
        let sink = Arc::clone(&self.sink);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || sluice_recording::read::load(&*sink, &id))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Deletes recordings and index rows older than the retention, now and every hour.
    pub async fn sweep_forever(self) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            let sink = Arc::clone(&self.sink);
            let retention = self.retention;
            let removed =
                tokio::task::spawn_blocking(move || sluice_recording::sweep(&*sink, retention))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r);
            match removed {
                Ok(0) => {}
                Ok(n) => info!(removed = n, "deleted recordings past their retention"),
                Err(e) => warn!(error = %e, "cannot delete recordings past their retention"),
            }
            let cutoff = now_secs().saturating_sub(self.retention.as_secs());
            if let Err(e) = self.store.prune_sessions(cutoff).await {
                warn!(error = %e, "cannot delete sessions past their retention");
            }
        }
    }

    /// Opens the record of a session about to start, with a statement journal when the engine
    /// carries SQL (`statements`). `Err` when its role requires a recording
    /// that cannot be written: the tunnel must be refused.
    pub async fn start(
        &self,
        mut info: SessionInfo,
        mode: RecordMode,
        rows: u32,
        masker: Option<Arc<dyn Masker>>,
        statements: bool,
    ) -> Result<SessionLog, RecordingRequired> {
        let millis = sluice_recording::retention::now_ms();
        info.started_at = millis / 1000;
        let header = Header {
            v: FORMAT_VERSION,
            session: info.id.clone(),
            started_at_ms: millis,
            subject: info.subject.clone(),
            auth: info.auth_method.clone(),
            ci: info.ci.clone(),
            resource: info.resource.clone(),
            kind: info.kind.clone(),
            role: info.role.clone(),
            grant: info.grant.clone(),
            client: info.client.clone(),
        };
        let (recording, failure) = match self.recorder.open(header).await {
            Ok(recording) => (Some(recording), None),
            Err(e) => (None, Some(format!("{e}"))),
        };
        if let Some(why) = &failure {
            warn!(target: "audit", event = "recording.failed.v1", session = %info.id,
                role = %info.role, mode = mode.as_str(), error = %why);
            if mode == RecordMode::Required {
                warn!(target: "audit", event = "session.refused.v1", session = %info.id,
                    subject = %info.subject, resource = %info.resource, role = %info.role,
                    reason = "recording unavailable");
                return Err(RecordingRequired {
                    role: info.role.clone(),
                    why: why.clone(),
                });
            }
        }
        info.recording = match &failure {
            None => "recorded".into(),
            Some(why) => format!("failed: {why}"),
        };
        if let Err(e) = self.store.session_started(&info).await {
            warn!(error = %e, session = %info.id, "cannot index the session");
            if mode == RecordMode::Required {
                return Err(RecordingRequired {
                    role: info.role.clone(),
                    why: format!("the session index in the store: {e}"),
                });
            }
        }
        info!(target: "audit", event = "session.started.v1", session = %info.id,
            subject = %info.subject, auth = %info.auth_method, resource = %info.resource,
            kind = %info.kind, role = %info.role, grant = %info.grant, client = %info.client,
            recording = %info.recording);
        // Engines that carry SQL record each statement through the journal.
        let journal = statements.then(|| {
            recording.as_ref().map(|recording| {
                Arc::new(StatementJournal {
                    recording: recording.clone(),
                    masker,
                    rows_limit: rows as usize,
                    state: Mutex::new(JournalState::default()),
                })
            })
        });
        Ok(SessionLog {
            info,
            recording,
            store: self.store.clone(),
            mode,
            journal: journal.flatten(),
            failure,
        })
    }
}

impl SessionLog {
    /// The session id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The journal for the PostgreSQL relay, when this session is recorded.
    pub fn journal(&self) -> Option<Arc<dyn Journal>> {
        self.journal
            .as_ref()
            .map(|j| Arc::clone(j) as Arc<dyn Journal>)
    }

    /// A handle on the recording, for engines that write their own events.
    pub fn recording(&self) -> Option<SessionRecording> {
        self.recording.clone()
    }

    /// Writes a session-level event to the recording, if the session is recorded.
    pub fn record(&self, event: sluice_shared::recording::SessionEvent) {
        if let Some(recording) = &self.recording {
            recording.record(event);
        }
    }

    /// Resolves with a reason when the recording fails and the role requires one (the session
    /// must end); never resolves otherwise. Best-effort roles get the failure audited instead.
    pub fn required_failure(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let watch = self.recording.as_ref().map(SessionRecording::failed);
        let required = self.mode == RecordMode::Required;
        let session = self.info.id.clone();
        async move {
            let Some(mut watch) = watch else {
                return std::future::pending().await;
            };
            let why = wait_for_failure(&mut watch).await;
            warn!(target: "audit", event = "recording.failed.v1", session = %session,
                mode = if required { "required" } else { "best-effort" }, error = %why);
            if required {
                format!("the session recording cannot be written ({why}); the role requires one")
            } else {
                std::future::pending().await
            }
        }
    }

    /// Writes how the session ended: the recording's last event, the index row, the audit
    /// event.
    pub async fn finish(self, end: &str, bytes_up: u64, bytes_down: u64) {
        let statements = self.journal.as_ref().map_or(0, |j| j.lock().statements);
        if let Some(journal) = &self.journal {
            journal.flush_rows();
        }
        let recording_state = match (&self.recording, &self.failure) {
            (Some(recording), _) => {
                recording.finish(SessionEvent::End {
                    reason: end.to_owned(),
                    bytes_up,
                    bytes_down,
                    statements,
                });
                // The index says "recorded" only once storage has the whole recording, end
                // included: a bucket or disk that fails at the end is a failed recording.
                let settled = recording.settled(SETTLE_LIMIT).await;
                let failed = recording.failed().borrow().clone();
                match (failed, settled) {
                    (Some(why), _) => format!("failed: {why}"),
                    (None, true) => "recorded".to_owned(),
                    (None, false) => format!(
                        "failed: the end of the recording was not confirmed written within {}s",
                        SETTLE_LIMIT.as_secs()
                    ),
                }
            }
            (None, Some(why)) => format!("failed: {why}"),
            (None, None) => "none".to_owned(),
        };
        let ended_at = now_secs();
        let ended = SessionEnd {
            ended_at,
            bytes_up,
            bytes_down,
            statements,
            end: end.to_owned(),
            recording: recording_state,
        };
        if let Err(e) = self.store.session_ended(&self.info.id, &ended).await {
            warn!(error = %e, session = %self.info.id, "cannot write the session's end");
        }
        info!(target: "audit", event = "session.ended.v1", session = %self.info.id,
            subject = %self.info.subject, resource = %self.info.resource, end = %end,
            bytes_up, bytes_down, statements);
    }
}

async fn wait_for_failure(watch: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(why) = watch.borrow_and_update().clone() {
            return why;
        }
        if watch.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Turns what the relay hears into recording events: numbers statements, times their
/// answers, masks SQL text with the role's detectors, and keeps up to `rows_limit` result rows
/// per statement.
struct StatementJournal {
    recording: SessionRecording,
    masker: Option<Arc<dyn Masker>>,
    rows_limit: usize,
    state: Mutex<JournalState>,
}

#[derive(Default)]
struct JournalState {
    /// The statement answers belong to.
    seq: u64,
    statements: u64,
    /// When the statement was sent, or its previous answer came.
    since: Option<Instant>,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    rows_truncated: bool,
}

impl StatementJournal {
    fn lock(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the last boundary, which moves to now.
    fn lap(state: &mut JournalState) -> u64 {
        let now = Instant::now();
        let ms = state.since.map_or(0, |since| {
            u64::try_from(now.duration_since(since).as_millis()).unwrap_or(u64::MAX)
        });
        state.since = Some(now);
        ms
    }

    /// Records the rows kept for the current statement, if any.
    fn flush_rows(&self) {
        let mut state = self.lock();
        self.take_rows(&mut state);
    }

    fn take_rows(&self, state: &mut JournalState) {
        if state.rows.is_empty() && !state.rows_truncated {
            return;
        }
        self.recording.record(SqlEvent::Rows {
            seq: state.seq,
            columns: state.columns.clone(),
            rows: std::mem::take(&mut state.rows),
            truncated: std::mem::take(&mut state.rows_truncated),
        });
    }

    fn mask(&self, text: &str) -> String {
        self.masker
            .as_deref()
            .and_then(|m| m.mask_text(text))
            .unwrap_or_else(|| text.to_owned())
    }
}

impl Journal for StatementJournal {
    fn statement(&self, sql: &str, extended: bool, decided: Decided<'_>) {
        let decision = match decided {
            Decided::Allowed => Decision::Allowed,
            Decided::Blocked { rule, message } => Decision::Blocked {
                rule: rule.into(),
                message: self.mask(message),
            },
            Decided::Approved { rule, by, request } => Decision::Approved {
                rule: rule.into(),
                by: by.into(),
                request: request.into(),
            },
            Decided::Denied {
                rule,
                reason,
                request,
            } => Decision::Denied {
                rule: rule.into(),
                reason: self.mask(reason),
                request: request.into(),
            },
        };
        crate::metrics::statement(match &decision {
            Decision::Allowed => "allowed",
            Decision::Blocked { .. } => "blocked",
            Decision::Approved { .. } => "approved",
            Decision::Denied { .. } => "denied",
            Decision::Unknown => "unknown",
        });
        let sql = self.mask(sql);
        let mut state = self.lock();
        self.take_rows(&mut state);
        state.seq += 1;
        state.statements += 1;
        Self::lap(&mut state);
        self.recording.record(SqlEvent::Statement {
            seq: state.seq,
            sql,
            protocol: if extended { "extended" } else { "simple" }.into(),
            decision,
        });
    }

    fn complete(&self, tag: &str) {
        let mut state = self.lock();
        self.take_rows(&mut state);
        let duration_ms = Self::lap(&mut state);
        self.recording.record(SqlEvent::Result {
            seq: state.seq,
            tag: tag.to_owned(),
            rows: tag.rsplit(' ').next().and_then(|n| n.parse().ok()),
            duration_ms,
        });
    }

    fn error(&self, code: &str, message: &str) {
        let message = self.mask(message);
        let mut state = self.lock();
        self.take_rows(&mut state);
        let duration_ms = Self::lap(&mut state);
        self.recording.record(SqlEvent::Error {
            seq: (state.seq > 0).then_some(state.seq),
            code: code.to_owned(),
            message,
            duration_ms: Some(duration_ms),
        });
    }

    fn wants_rows(&self) -> bool {
        self.rows_limit > 0
    }

    fn columns(&self, names: &[&str]) {
        let mut state = self.lock();
        self.take_rows(&mut state);
        state.columns = names.iter().map(|n| (*n).to_owned()).collect();
    }

    fn row(&self, values: &[Option<&[u8]>]) {
        let mut state = self.lock();
        if state.rows.len() >= self.rows_limit {
            state.rows_truncated = true;
            return;
        }
        let row = values
            .iter()
            .map(|v| {
                v.map(|bytes| match std::str::from_utf8(bytes) {
                    Ok(text) if !text.contains('\0') => text.to_owned(),
                    _ => format!("<{} bytes of binary data>", bytes.len()),
                })
            })
            .collect();
        state.rows.push(row);
    }
}
