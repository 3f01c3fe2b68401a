//! Where recordings are stored: the [`Sink`] trait, and the session-id rule every sink relies on.
//!
//! A sink stores opaque chunks. Each chunk is one complete gzip member holding whole JSON lines
//! (see [`crate::event`]); a recording is its chunks concatenated in the order they were
//! appended, which is itself a valid gzip file (`zcat` reads it). Because every chunk is
//! complete on its own, a crash mid-append loses at most the chunk being written:
//! [`crate::read::parse`] returns everything before it.
//!
//! The recorder calls sinks from blocking threads ([`tokio::task::spawn_blocking`]), never from
//! the async runtime, so implementations may do ordinary blocking I/O. It never runs two appends
//! for the same session at once, and appends a session's chunks in order.
//!
//! [`crate::LocalDir`] is the implementation for a local directory.

use std::io;

/// Storage for recordings. See the [module documentation](self) for the chunk contract.
pub trait Sink: Send + Sync + 'static {
    /// Appends one self-contained chunk (already compressed) to the session's recording,
    /// creating the recording if it does not exist; durable when it returns `Ok`.
    ///
    /// On `Err` the chunk must not be half-present if the sink can help it (the recorder retries
    /// it later, and a reader skips a damaged chunk but reports it).
    fn append(&self, session: &str, started_at_ms: u64, chunk: &[u8]) -> io::Result<()>;

    /// Everything stored for the session (its chunks concatenated), or `None` if there is no
    /// recording of that session. Does not need the session's start time.
    fn read(&self, session: &str) -> io::Result<Option<Vec<u8>>>;

    /// Deletes the recordings of sessions that started before `cutoff_ms` (Unix epoch
    /// milliseconds); returns how many were deleted.
    fn remove_older_than(&self, cutoff_ms: u64) -> io::Result<usize>;

    /// A short description for messages, e.g. `directory /var/lib/sluice/recordings`.
    fn describe(&self) -> String;

    /// Whether the sink looks writable now, for health checks (cheap: no write).
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The longest session id a sink accepts.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// A session id that cannot name a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid session id {shown:?}: a session id is 1 to {MAX_SESSION_ID_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"
)]
pub struct InvalidSessionId {
    /// The refused id, cut to a printable length (it may come from anywhere).
    pub shown: String,
}

/// Checks that `session` matches `[A-Za-z0-9_-]{1,64}`.
///
/// Sinks build file names and object keys from session ids; this rule is what keeps an id from
/// naming anything outside the recordings (`../`, `/`, NUL, a leading dot...).
pub fn validate_session_id(session: &str) -> Result<(), InvalidSessionId> {
    let ok = !session.is_empty()
        && session.len() <= MAX_SESSION_ID_LEN
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidSessionId {
            shown: session.chars().take(MAX_SESSION_ID_LEN + 16).collect(),
        })
    }
}

/// [`validate_session_id`] as an [`io::Error`] of kind `InvalidInput`, for sink implementations.
pub fn check_session_id(session: &str) -> io::Result<()> {
    validate_session_id(session).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))
}
