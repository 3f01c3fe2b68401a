//! Retention: deleting recordings once they are older than the configured period.
//!
//! The broker calls [`sweep`] periodically (hourly is plenty: sinks delete by session start, so
//! a late sweep only keeps recordings a little longer). It does blocking I/O.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sink::Sink;

/// Deletes the recordings of sessions that started more than `retention` ago; returns how many
/// were deleted. Blocking: from async code, call it inside [`tokio::task::spawn_blocking`].
pub fn sweep(sink: &dyn Sink, retention: Duration) -> io::Result<usize> {
    sweep_at(sink, retention, now_ms())
}

/// [`sweep`] as if the time were `now_ms` (Unix epoch milliseconds).
pub fn sweep_at(sink: &dyn Sink, retention: Duration, now_ms: u64) -> io::Result<usize> {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let removed = sink.remove_older_than(now_ms.saturating_sub(retention_ms))?;
    if removed > 0 {
        tracing::info!(removed, sink = %sink.describe(), "old recordings removed");
    }
    Ok(removed)
}

/// The current time in Unix epoch milliseconds (0 if the clock is before 1970), for
/// [`crate::Header::started_at_ms`].
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
