//! Session recordings for the Sluice broker: what happened in a session, written off the hot
//! path, readable after a crash.
//!
//! - [`event`]: the format, JSON Lines with a [`Header`] line then [`Event`] lines: one
//!   envelope (`t`, `n`) around a [`Body`] of one family ([`SessionEvent`], [`SqlEvent`],
//!   [`TerminalEvent`], [`HttpEvent`]).
//! - [`Recorder`] / [`SessionRecording`] ([`recorder`]): what engines use. Recording an event
//!   never waits; a background writer batches events per session, compresses each batch into
//!   one gzip member and appends it to a [`Sink`] from a blocking thread, at least every
//!   [`Options::flush_interval`]. Write failures and dropped events surface on a per-session
//!   watch, so the broker can end sessions whose recording is required.
//! - [`Sink`] ([`sink`]): storage; [`LocalDir`] keeps files in a local directory.
//! - [`read::parse`]: decodes a recording chunk by chunk, keeping everything before a tear.
//! - [`retention::sweep`]: deletes recordings past the retention period.
//!
//! ```text
//! engine pumps ──record()──▶ bounded queue ──▶ writer task ──spawn_blocking──▶ Sink::append
//!       ▲                                         │ (batch, gzip member per flush)
//!       └──────── failed() watch ◀────────────────┘ (write errors, drops)
//! ```
//!
//! Protocol engines depend on this crate for [`SessionRecording`] and their family's event
//! type only; where
//! recordings are stored is wired by `sluiced`.

pub mod event;
pub mod local_dir;
pub mod object_sink;
pub mod read;
pub mod recorder;
pub mod retention;
pub mod sink;
mod writer;

pub use event::{
    Body, Decision, Event, FORMAT_VERSION, Header, HttpEvent, SessionEvent, SqlEvent, TerminalEvent,
};
pub use local_dir::LocalDir;
pub use object_sink::{ObjectSink, S3Options};
pub use read::{Recording, parse};
pub use recorder::{Options, RecordError, Recorder, SessionRecording, Totals};
pub use retention::sweep;
pub use sink::{InvalidSessionId, Sink, validate_session_id};
