//! The recording format: what one session's recording says, line by line.
//!
//! # Layout
//!
//! A recording is [JSON Lines]: UTF-8, one JSON object per line, every line ending in `\n`.
//! The first line is the [`Header`]; every later line is one [`Event`]. Both carry a `"type"`
//! field, so every line is self-describing and a reader never has to guess:
//!
//! ```text
//! {"type":"header","v":1,"session":"s-01","started_at_ms":1767225600000,"subject":"alice@example.com","auth":"oidc","ci":{},"resource":"orders-db","kind":"postgres","role":"read","grant":"g-7","client":"10.0.0.5:51324"}
//! {"t":12,"n":1,"type":"statement","seq":1,"sql":"select * from orders limit 3","protocol":"simple","decision":{"outcome":"allowed"}}
//! {"t":15,"n":2,"type":"rows","seq":1,"columns":["id","email"],"rows":[["1","a***@example.com"]],"truncated":true}
//! {"t":15,"n":3,"type":"result","seq":1,"tag":"SELECT 3","rows":3,"duration_ms":3}
//! {"t":40,"n":4,"type":"statement","seq":2,"sql":"drop table orders","protocol":"simple","decision":{"outcome":"blocked","rule":"no-ddl","message":"DDL is not allowed"}}
//! {"t":9001,"n":5,"type":"end","reason":"client closed","bytes_up":310,"bytes_down":2048,"statements":2}
//! ```
//!
//! On disk the lines are gzip-compressed in chunks (see [`crate::sink`]); the text above is what
//! decompression gives back.
//!
//! # The envelope and the families
//!
//! An [`Event`] is an envelope with the fields every kind of session shares, and a [`Body`]
//! flattened into the same object. The body is an event of one family; its `"type"` names
//! it, and type names are unique across families:
//!
//! - [`SessionEvent`] (`note`, `end`): every session.
//! - [`SqlEvent`] (`statement`, `result`, `error`, `rows`): the PostgreSQL engine.
//! - [`TerminalEvent`] (`output`, `input`, `resize`): the SSH engine, when it comes.
//! - [`HttpEvent`] (`http_request`, `http_response`): the HTTP and Kubernetes engines, when
//!   they come.
//!
//! An engine records its own family (`recording.record(SqlEvent::Statement { .. })`); the
//! recorder adds the envelope.
//!
//! # Fields
//!
//! - `t` is milliseconds since the session started (the instant the recording was opened), so a
//!   recording replays without wall-clock arithmetic; the header's `started_at_ms` (Unix epoch,
//!   milliseconds, UTC) anchors it.
//! - `n` numbers the events a session recorded, from 1, in the order they were recorded. A
//!   dropped event keeps its number, so a gap shows the loss; the recorder's own notes have
//!   none. Recordings written before `n` existed have none either.
//! - `seq` numbers the statements (or HTTP requests) of a session from 1. `rows`, `result` and
//!   `error` events name the statement they belong to, so a reader can group them even if an
//!   engine ever pipelines.
//! - [`SqlEvent::Rows`] holds result rows as the client saw them (after masking), `null` for
//!   SQL NULL, at most the role's `record_rows` of them (`truncated` says whether there were
//!   more).
//! - Optional fields (`n`, `rows` of a result, `seq` and `duration_ms` of an error, `query` of
//!   an HTTP request) are left out when absent rather than written as `null`.
//! - [`SessionEvent::Note`] is written by the recorder itself, e.g. `"3 events dropped"` when
//!   the queue was full, so a gap in a recording is visible in the recording.
//! - [`SessionEvent::End`] is the last event of a session that ended normally. A recording
//!   without it belongs to a session that is still running, or to a broker that stopped
//!   abruptly.
//!
//! # Terminal sessions (reserved)
//!
//! [`TerminalEvent`]s follow [asciicast v2]'s event stream: `output` is its `"o"`, `input` its
//! `"i"` and `resize` its `"r"` (`"COLSxROWS"`), with `t` in milliseconds instead of fractional
//! seconds and the header carrying what asciicast's header does not (who, which grant). Their
//! `data` is the terminal's bytes in base64, since terminal output need not be UTF-8;
//! [`sluice_shared::recording::asciicast_event`] converts an event to a `.cast` line, the one
//! place bytes become (lossy) text.
//!
//! # Versioning
//!
//! `v` in the header is [`FORMAT_VERSION`]. It changes only for incompatible changes (a field
//! that changes meaning or disappears). New event types, new families and new fields are added
//! without changing it: readers ignore fields they do not know, an unknown `"type"` reads as
//! [`Body::Unknown`], and [`crate::read::parse`] skips (and reports) lines it cannot
//! understand instead of giving up on the recording. Every version 1 recording written before
//! events were typed per family reads into these types unchanged (the SQL and session `"type"`
//! names and fields are the ones it used).
//!
//! [JSON Lines]: https://jsonlines.org/
//! [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/

use serde::Serialize;

/// The types live in `sluice_shared::recording` so the CLI, which reads recordings through the
/// API, shares them with the writer.
pub use sluice_shared::recording::{
    Body, Decision, Event, FORMAT_VERSION, Header, HttpEvent, SessionEvent, SqlEvent, TerminalEvent,
};

/// Appends `value` as one JSON line (with its `\n`) to `out`.
///
/// The types of this module always serialize (string keys, no floats, no custom serializers);
/// an error would be a bug, and is returned rather than panicking.
pub(crate) fn write_line<T: Serialize>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let start = out.len();
    if let Err(err) = serde_json::to_writer(&mut *out, value) {
        out.truncate(start);
        return Err(err);
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests;
