//! The recorder end to end: real writer task, real blocking writes, a local directory or a
//! scripted in-memory sink. No assertion depends on timing: tests wait for files to appear or
//! for the health watch to change.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sluice_recording::read::load;
use sluice_recording::retention::{now_ms, sweep};
use sluice_recording::{
    Body, Decision, FORMAT_VERSION, Header, LocalDir, Options, RecordError, Recorder, Recording,
    SessionEvent, Sink, SqlEvent, parse,
};

/// Only guards against a hung test; no assertion is about how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(120);

async fn guarded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

fn header(session: &str) -> Header {
    header_at(session, now_ms())
}

fn header_at(session: &str, started_at_ms: u64) -> Header {
    Header {
        v: FORMAT_VERSION,
        session: session.into(),
        started_at_ms,
        subject: "alice@example.com".into(),
        auth: "oidc".into(),
        ci: BTreeMap::new(),
        resource: "orders-db".into(),
        kind: "postgres".into(),
        role: "read".into(),
        grant: "g-1".into(),
        client: "127.0.0.1:50000".into(),
    }
}

fn statement(seq: u64) -> Body {
    SqlEvent::Statement {
        seq,
        sql: format!("select * from orders where id = {seq}"),
        protocol: "simple".into(),
        decision: Decision::Allowed,
    }
    .into()
}

fn end(statements: u64) -> Body {
    SessionEvent::End {
        reason: "client closed".into(),
        bytes_up: 100,
        bytes_down: 2000,
        statements,
    }
    .into()
}

/// The event numbers (`n`) the session recorded but the recording lacks, up to the highest.
fn missing_numbers(recording: &Recording) -> u64 {
    let numbers: Vec<u64> = recording
        .events
        .iter()
        .filter_map(|event| event.n)
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[0] != pair[1]),
        "numbers are not reused"
    );
    numbers.iter().max().copied().unwrap_or(0) - numbers.len() as u64
}

fn bodies(recording: &Recording) -> Vec<Body> {
    recording
        .events
        .iter()
        .map(|event| event.body.clone())
        .collect()
}

fn fast() -> Options {
    Options {
        flush_interval: Duration::from_millis(20),
        ..Options::default()
    }
}

/// A sink in memory that can be told to fail or to block.
#[derive(Default)]
struct MemSink {
    files: Mutex<HashMap<String, Vec<u8>>>,
    failing: AtomicBool,
    blocked: Mutex<bool>,
    unblocked: Condvar,
}

impl MemSink {
    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn set_blocked(&self, blocked: bool) {
        *self.blocked.lock().expect("lock") = blocked;
        self.unblocked.notify_all();
    }

    fn recording(&self, session: &str) -> Recording {
        let bytes = self
            .read(session)
            .expect("reads")
            .expect("recording exists");
        parse(&bytes)
    }
}

impl Sink for MemSink {
    fn append(&self, session: &str, _started_at_ms: u64, chunk: &[u8]) -> io::Result<()> {
        let mut blocked = self.blocked.lock().expect("lock");
        while *blocked {
            blocked = self.unblocked.wait(blocked).expect("lock");
        }
        drop(blocked);
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk on fire"));
        }
        let mut files = self.files.lock().expect("lock");
        files
            .entry(session.into())
            .or_default()
            .extend_from_slice(chunk);
        Ok(())
    }

    fn read(&self, session: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.files.lock().expect("lock").get(session).cloned())
    }

    fn remove_older_than(&self, _cutoff_ms: u64) -> io::Result<usize> {
        Ok(0)
    }

    fn describe(&self) -> String {
        "memory sink".into()
    }
}

#[tokio::test]
async fn round_trip_through_a_local_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(LocalDir::new(tmp.path().join("recordings")));
    let (recorder, writer) = Recorder::start(sink.clone(), Options::default());
    let session = recorder.open(header("s-1")).await.expect("opens");
    assert_eq!(session.session(), "s-1");
    let recorded = vec![
        statement(1),
        SqlEvent::Rows {
            seq: 1,
            columns: vec!["id".into(), "email".into()],
            rows: vec![vec![Some("1".into()), None]],
            truncated: true,
        }
        .into(),
        SqlEvent::Result {
            seq: 1,
            tag: "SELECT 3".into(),
            rows: Some(3),
            duration_ms: 2,
        }
        .into(),
        SqlEvent::Statement {
            seq: 2,
            sql: "drop table orders".into(),
            protocol: "extended".into(),
            decision: Decision::Blocked {
                rule: "no-ddl".into(),
                message: "DDL is not allowed".into(),
            },
        }
        .into(),
        SqlEvent::Error {
            seq: Some(2),
            code: "42501".into(),
            message: "blocked by policy".into(),
            duration_ms: None,
        }
        .into(),
    ];
    for body in recorded.clone() {
        session.record(body);
    }
    session.finish(end(2));
    session.record(statement(99)); // after finish: ignored
    recorder.shutdown().await;
    writer.await.expect("writer ends cleanly");

    let recording = load(&*sink, "s-1").expect("reads").expect("exists");
    assert_eq!(
        recording.header,
        Some(header_at(
            "s-1",
            recording.header.as_ref().map_or(0, |h| h.started_at_ms)
        ))
    );
    let mut expected = recorded;
    expected.push(end(2));
    assert_eq!(bodies(&recording), expected);
    assert!(
        recording
            .events
            .windows(2)
            .all(|pair| pair[0].t <= pair[1].t)
    );
    let numbers: Vec<Option<u64>> = recording.events.iter().map(|event| event.n).collect();
    assert_eq!(
        numbers,
        (1..=6).map(Some).collect::<Vec<_>>(),
        "numbered in order"
    );
    assert_eq!(recording.truncated, None);
    assert!(recording.damage.is_empty(), "{:?}", recording.damage);
    assert!(session.failed().borrow().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pumps_share_a_session() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("pumps")).await.expect("opens");
    let pump = |first: u64| {
        let session = session.clone();
        tokio::spawn(async move {
            for seq in (first..first + 2000).step_by(2) {
                session.record(statement(seq));
                if seq % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let (up, down) = (pump(0), pump(1));
    up.await.expect("pump");
    down.await.expect("pump");
    session.finish(end(2000));
    recorder.shutdown().await;
    writer.await.expect("writer ends");

    let recording = sink.recording("pumps");
    let seqs: Vec<u64> = recording
        .events
        .iter()
        .filter_map(|event| match event.body {
            Body::Sql(SqlEvent::Statement { seq, .. }) => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs.len(), 2000);
    for parity in [0, 1] {
        let own: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|seq| seq % 2 == parity)
            .collect();
        assert!(
            own.windows(2).all(|pair| pair[0] < pair[1]),
            "each pump's events stay in order"
        );
    }
    assert_eq!(
        recording.events.last().map(|event| &event.body),
        Some(&end(2000))
    );
}

#[tokio::test]
async fn events_are_flushed_without_shutdown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(LocalDir::new(tmp.path()));
    let (recorder, _writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("live")).await.expect("opens");
    session.record(statement(1));
    session.record(statement(2));
    let recording = wait_for_events(&sink, "live", 2).await;
    assert_eq!(bodies(&recording), vec![statement(1), statement(2)]);
    assert!(recording.header.is_some());
    assert_eq!(recording.truncated, None);
}

/// Polls `sink` until the recording of `session` holds `events` events.
async fn wait_for_events(sink: &LocalDir, session: &str, events: usize) -> Recording {
    guarded("the flush", async {
        loop {
            if let Some(recording) = load(sink, session).expect("reads")
                && recording.events.len() >= events
            {
                break recording;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_big_batch_is_written_before_the_interval() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(LocalDir::new(tmp.path()));
    let options = Options {
        flush_interval: Duration::from_secs(24 * 3600),
        max_batch_bytes: 1024,
        ..Options::default()
    };
    let (recorder, _writer) = Recorder::start(sink.clone(), options);
    let session = recorder.open(header("big")).await.expect("opens");
    // The interval's first tick fires at once (while `open` waited); after it, within this
    // test, only the batch size can trigger a write.
    tokio::task::yield_now().await;
    for seq in 1..=40 {
        session.record(statement(seq));
    }
    let recording = wait_for_events(&sink, "big", 10).await;
    assert_eq!(recording.events[0].body, statement(1));
}

#[tokio::test]
async fn a_crash_mid_write_keeps_the_complete_chunks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(LocalDir::new(tmp.path()));
    let (recorder, _writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("crash")).await.expect("opens");
    for seq in 1..=3 {
        session.record(statement(seq));
    }
    wait_for_events(&sink, "crash", 3).await;
    let path = sink.find("crash").expect("finds").expect("exists");
    let before = std::fs::metadata(&path).expect("stat").len();
    // One event is always one chunk of its own here (nothing else is pending).
    let big = SqlEvent::Statement {
        seq: 4,
        sql: format!("select '{}'", "x".repeat(5000)),
        protocol: "simple".into(),
        decision: Decision::Allowed,
    };
    session.record(big);
    wait_for_events(&sink, "crash", 4).await;
    let after = std::fs::metadata(&path).expect("stat").len();

    // As if the process died while that chunk was being written.
    let bytes = std::fs::read(&path).expect("reads");
    let torn = usize::try_from(before + (after - before) / 2).expect("small");
    let recording = parse(&bytes[..torn]);
    assert!(recording.header.is_some());
    assert_eq!(
        bodies(&recording),
        [statement(1), statement(2), statement(3)],
        "the complete chunks, not the torn line"
    );
    let why = recording.truncated.expect("reported");
    assert!(why.contains("incomplete chunk"), "{why}");

    // Cut inside the first chunk (the header): nothing trustworthy, and it says so.
    let recording = parse(&bytes[..10]);
    assert_eq!(recording.header, None);
    assert!(recording.events.is_empty());
    assert!(recording.truncated.is_some());
}

#[tokio::test]
async fn open_fails_at_once_when_the_sink_cannot_be_written() {
    let sink = Arc::new(MemSink::default());
    sink.set_failing(true);
    let (recorder, _writer) = Recorder::start(sink.clone(), fast());
    let err = recorder.open(header("refused")).await.expect_err("refused");
    assert!(matches!(err, RecordError::Write { .. }), "{err:?}");
    assert_eq!(err.to_string(), "cannot write the recording to memory sink");
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("disk on fire"));

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write");
    let (recorder, _writer) = Recorder::start(Arc::new(LocalDir::new(&file)), fast());
    let err = recorder.open(header("refused")).await.expect_err("refused");
    let shown = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(
        shown.starts_with(&format!(
            "cannot write the recording to directory {}",
            file.display()
        )),
        "{shown}"
    );
    assert!(shown.contains("Not a directory"), "{shown}");
}

#[tokio::test]
async fn invalid_session_ids_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (recorder, _writer) = Recorder::start(Arc::new(LocalDir::new(tmp.path())), fast());
    for bad in ["../escape", "a/b", "/abs", "", "dots.not.allowed"] {
        let err = recorder.open(header(bad)).await.expect_err(bad);
        assert!(
            matches!(err, RecordError::InvalidSession(_)),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("ls").count(),
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn failure_mid_session_is_reported_and_retained_events_are_written_later() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("flaky")).await.expect("opens");
    let mut failed = session.failed();
    assert!(failed.borrow().is_none());

    sink.set_failing(true);
    session.record(statement(1));
    session.record(statement(2));
    guarded("the failure report", failed.changed())
        .await
        .expect("watch open");
    let reason = failed.borrow().clone().expect("failed");
    assert_eq!(
        reason,
        "cannot write the recording to memory sink: disk on fire"
    );

    sink.set_failing(false);
    session.record(statement(3));
    session.finish(end(3));
    recorder.shutdown().await;
    writer.await.expect("writer ends");

    let recording = sink.recording("flaky");
    assert!(recording.header.is_some());
    assert_eq!(
        bodies(&recording),
        vec![statement(1), statement(2), statement(3), end(3)]
    );
    assert!(recording.damage.is_empty());
    // The report stays: the session ran for a while without a durable recording.
    assert!(session.failed().borrow().is_some());
}

#[tokio::test]
async fn full_queue_drops_are_counted_and_noted_once_the_sink_works() {
    let sink = Arc::new(MemSink::default());
    let options = Options {
        queue_capacity: 4,
        ..fast()
    };
    let (recorder, writer) = Recorder::start(sink.clone(), options);
    let session = recorder.open(header("busy")).await.expect("opens");
    let mut failed = session.failed();
    sink.set_blocked(true);
    // Without yielding, the writer cannot take anything off the queue meanwhile.
    for seq in 1..=100 {
        session.record(statement(seq));
    }
    guarded("the drop report", failed.changed())
        .await
        .expect("watch open");
    let reason = failed.borrow().clone().expect("failed");
    assert!(
        reason.contains("events of the recording were dropped"),
        "{reason}"
    );
    sink.set_blocked(false);
    session.finish(end(100));
    recorder.shutdown().await;
    writer.await.expect("writer ends");

    let recording = sink.recording("busy");
    let kept = recording
        .events
        .iter()
        .filter(|event| matches!(event.body, Body::Sql(SqlEvent::Statement { .. })))
        .count() as u64;
    let noted: u64 = recording
        .events
        .iter()
        .filter_map(|event| match &event.body {
            Body::Session(SessionEvent::Note { message }) => {
                message.strip_suffix(" events dropped")?.parse::<u64>().ok()
            }
            _ => None,
        })
        .sum();
    assert!(kept <= 4, "{kept}");
    assert_eq!(kept + noted, 100, "every dropped event is accounted for");
    assert_eq!(
        missing_numbers(&recording),
        noted,
        "each dropped event left a gap in the numbers"
    );
    assert_eq!(
        recording.events.last().map(|event| &event.body),
        Some(&end(100))
    );
}

#[tokio::test]
async fn a_session_that_outruns_the_disk_is_capped() {
    let sink = Arc::new(MemSink::default());
    let options = Options {
        max_pending_bytes: 2000,
        ..fast()
    };
    let (recorder, writer) = Recorder::start(sink.clone(), options);
    let session = recorder.open(header("flood")).await.expect("opens");
    let mut failed = session.failed();
    sink.set_failing(true);
    for seq in 1..=500 {
        session.record(statement(seq));
        if seq % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    guarded("the failure report", failed.changed())
        .await
        .expect("watch open");
    sink.set_failing(false);
    session.finish(end(500));
    recorder.shutdown().await;
    writer.await.expect("writer ends");

    let recording = sink.recording("flood");
    let kept: Vec<u64> = recording
        .events
        .iter()
        .filter_map(|event| match event.body {
            Body::Sql(SqlEvent::Statement { seq, .. }) => Some(seq),
            _ => None,
        })
        .collect();
    let noted: u64 = recording
        .events
        .iter()
        .filter_map(|event| match &event.body {
            Body::Session(SessionEvent::Note { message }) => {
                message.strip_suffix(" events dropped")?.parse::<u64>().ok()
            }
            _ => None,
        })
        .sum();
    assert!(kept.len() < 500 && !kept.is_empty(), "{}", kept.len());
    assert_eq!(kept.len() as u64 + noted, 500);
    assert_eq!(missing_numbers(&recording), noted);
    assert!(
        kept.windows(2).all(|pair| pair[0] < pair[1]),
        "kept events stay in order"
    );
    assert_eq!(
        recording.events.last().map(|event| &event.body),
        Some(&end(500))
    );
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_recording() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("abandoned")).await.expect("opens");
    session.record(statement(1));
    let clone = session.clone();
    drop(session);
    clone.record(statement(2));
    drop(clone);
    recorder.shutdown().await;
    writer.await.expect("writer ends");
    let recording = sink.recording("abandoned");
    assert_eq!(
        bodies(&recording),
        vec![
            statement(1),
            statement(2),
            SessionEvent::Note {
                message: "the recording was closed without an end event".into()
            }
            .into()
        ]
    );
}

#[tokio::test]
async fn after_shutdown_nothing_is_accepted_and_sessions_say_so() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("cut-off")).await.expect("opens");
    session.record(statement(1));
    recorder.clone().shutdown().await;
    writer.await.expect("writer ends");
    session.record(statement(2));
    let reason = session.failed().borrow().clone().expect("reported");
    assert!(reason.contains("the recorder has stopped"), "{reason}");
    assert!(matches!(
        recorder.open(header("late")).await,
        Err(RecordError::Stopped)
    ));
    let recording = sink.recording("cut-off");
    assert_eq!(
        bodies(&recording),
        vec![
            statement(1),
            SessionEvent::Note {
                message: "the recorder stopped before the session ended".into()
            }
            .into()
        ]
    );
}

#[tokio::test]
async fn shutdown_gives_up_on_a_sink_that_keeps_failing() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("doomed")).await.expect("opens");
    sink.set_failing(true);
    session.record(statement(1));
    session.finish(end(1));
    recorder.shutdown().await;
    writer.await.expect("writer ends");
    assert!(session.failed().borrow().is_some());
    assert!(
        bodies(&sink.recording("doomed")).is_empty(),
        "only the header made it"
    );
}

#[tokio::test]
async fn retention_sweep_removes_old_recordings_and_keeps_new_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(LocalDir::new(tmp.path()));
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let day = 86_400_000;
    for (session, started) in [
        ("old", now_ms() - 100 * day),
        ("recent", now_ms() - day),
        ("now", now_ms()),
    ] {
        let recording = recorder
            .open(header_at(session, started))
            .await
            .expect("opens");
        recording.record(statement(1));
        recording.finish(end(1));
    }
    recorder.shutdown().await;
    writer.await.expect("writer ends");

    let removed = tokio::task::spawn_blocking({
        let sink = sink.clone();
        move || sweep(&*sink, Duration::from_secs(90 * 86_400))
    })
    .await
    .expect("joins")
    .expect("sweeps");
    assert_eq!(removed, 1);
    assert!(sink.read("old").expect("reads").is_none());
    assert!(sink.read("recent").expect("reads").is_some());
    assert!(sink.read("now").expect("reads").is_some());
}

#[tokio::test]
async fn settled_says_when_the_whole_recording_is_stored_or_failed() {
    let sink = Arc::new(MemSink::default());
    let (recorder, writer) = Recorder::start(sink.clone(), fast());
    let session = recorder.open(header("good")).await.expect("opens");
    session.record(statement(1));
    session.finish(end(1));
    assert!(session.settled(Duration::from_secs(10)).await);
    assert!(session.failed().borrow().is_none());
    assert_eq!(bodies(&sink.recording("good")), vec![statement(1), end(1)]);

    // The storage goes away just before the end: not settled as recorded, but as failed.
    let failing = recorder.open(header("lost-end")).await.expect("opens");
    failing.record(statement(1));
    sink.set_failing(true);
    failing.finish(end(1));
    assert!(failing.settled(Duration::from_secs(10)).await);
    assert!(
        failing.failed().borrow().is_some(),
        "the lost end is a failure"
    );

    // Neither written nor failed in time (the sink blocks the end's write): not settled.
    sink.set_failing(false);
    let slow = recorder.open(header("slow")).await.expect("opens");
    sink.set_blocked(true);
    slow.finish(end(0));
    assert!(!slow.settled(Duration::from_millis(300)).await);
    sink.set_blocked(false);
    assert!(slow.settled(Duration::from_secs(10)).await);
    recorder.shutdown().await;
    writer.await.expect("writer ends");
}
