//! The enforcing relay: after login, every message is framed in both directions so the guard
//! sees each SQL text before the database does and the masker sees each value before the client
//! does.
//!
//! ```text
//!  client ──▶ upstream pump ── Q / P / F ──▶ guard.check ─┬─ allow: forward
//!                 │                                        ├─ block: forward a statement that
//!                 │                                        │  fails to parse, rewrite its error
//!                 │                                        └─ hold: notice, wait for a person
//!                 └─ (masking) which response each message will get ─┐
//!  client ◀── downstream pump ◀── T / D / E / N / d ◀── server       │  (shared queue)
//!                 masks rows, error and notice text, COPY data ◀─────┘
//! ```
//!
//! **Blocking** never invents protocol state. A refused text is replaced by one that
//! PostgreSQL rejects as a syntax error (`SLUICE_BLOCKED_<session token>`); the server then does
//! what it does after any failed statement: it aborts a transaction block, skips an extended
//! batch up to its Sync, and answers ReadyForQuery with the right status. The downstream pump
//! replaces that syntax error with the guard's ERROR (SQLSTATE 42501). So a blocked statement
//! behaves exactly as a failed one, and the session stays usable.
//!
//! **Held** statements wait in the upstream pump, which meanwhile still reads the client: a
//! client that goes away withdraws the statement (nothing runs, whoever approves later), and
//! a cancel request (psql's Ctrl-C, through [`CancelSignal`]) withdraws it with PostgreSQL's
//! own 57014 error while the session goes on. What the client sends while it waits is kept
//! and handled after the hold.
//!
//! **Writes** to the client only ever carry whole messages, so a notice (approval pending) or
//! a FATAL (grant revoked) can be injected between any two of them.
//!
//! This file starts the two pumps and says how the session ended. The rest, one job a file:
//!
//! | file            | job                                                                  |
//! |-----------------|----------------------------------------------------------------------|
//! | `upstream.rs`   | client → server pump: framing, batching, acting on each decision     |
//! | `decide.rs`     | the guard's decision per Query / Parse / FunctionCall, substitution  |
//! | `hold.rs`       | a statement held for approval, its withdrawal, the notices about it  |
//! | `downstream.rs` | server → client pump: framing, injected messages, the lease's FATAL  |
//! | `expect.rs`     | which response the server owes, and the portals and statements       |
//! | `mask.rs`       | masking of row descriptions, data rows, error and notice text, COPY  |
//! | `journal.rs`    | what the journal hears: statements, decisions, answers               |
//! | `bulk.rs`       | fewer wake-ups while the server streams a large answer               |

mod bulk;
mod decide;
mod downstream;
mod expect;
mod hold;
mod journal;
mod mask;
mod upstream;

pub use bulk::ReadLowWater;

use crate::cancel::CancelSignal;
use crate::hooks::Enforcement;
use downstream::Downstream;
use expect::Shared;
use sluice_engine::{Lease, LeaseHandle, RelayEnd, RelayOutcome};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use upstream::Upstream;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

/// Room a pump's read buffer starts with and keeps while messages are small: an idle or
/// chatty session holds a few KiB per direction, not [`READ_CHUNK`].
const SMALL_READ: usize = 4 * 1024;

/// Read room that follows the traffic: [`SMALL_READ`] until a read fills all the room there
/// was (a result or a COPY is streaming), then [`READ_CHUNK`] until a read leaves room again.
#[derive(Debug)]
struct ReadRoom {
    want: usize,
    spare: usize,
}

impl ReadRoom {
    fn new() -> Self {
        Self {
            want: SMALL_READ,
            spare: 0,
        }
    }

    /// Makes room in `buf` before a read.
    fn make(&mut self, buf: &mut bytes::BytesMut) {
        buf.reserve(self.want);
        self.spare = buf.capacity() - buf.len();
    }

    /// Notes how much the read brought.
    fn read(&mut self, n: usize) {
        self.want = if n >= self.spare {
            READ_CHUNK
        } else {
            SMALL_READ
        };
    }
}

/// Relays one logged-in session under `enforcement` until either side closes or the lease ends.
/// `cancel` is the session's end of its cancel key: a cancel request withdraws a held statement.
pub async fn proxy<C, T>(
    client: &mut C,
    target: &mut T,
    enforcement: &Enforcement,
    lease: Lease,
    cancel: &CancelSignal,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + ReadLowWater + Unpin + Send,
{
    let (mut target, bulk) = bulk::LowWatered::new(target);
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut target_r, mut target_w) = tokio::io::split(&mut target);
    let marker = decide::marker();
    let shared = Mutex::new(Shared::default());
    let stop = LeaseHandle::new();
    let (inject_tx, inject_rx) = mpsc::unbounded_channel();
    let up = Upstream {
        enforcement,
        marker: &marker,
        shared: &shared,
        inject: inject_tx,
        track: enforcement.masker.is_some(),
        cancel,
        bytes: 0,
    };
    let down = Downstream {
        enforcement,
        marker: &marker,
        shared: &shared,
        inject: inject_rx,
        simple_mask: None,
        simple_statement: 0,
        portal_mask: None,
        resolved: false,
        idle: true,
        bulk,
        bytes: 0,
    };
    let up_run = up.run(&mut client_r, &mut target_w, lease.clone(), stop.lease());
    let down_run = down.run(&mut target_r, &mut client_w, lease.clone(), stop.lease());
    tokio::pin!(up_run, down_run);
    let (up_end, (down_end, bytes_down)) = tokio::select! {
        (up_end, bytes_up) = &mut up_run => {
            stop.end(up_end.reason());
            let down = down_run.await;
            ((up_end, bytes_up), down)
        }
        (down_end, bytes_down) = &mut down_run => {
            // The upstream pump may be blocked writing to a target that stopped reading;
            // dropping it is fine, the target connection is closed with the session.
            ((End::Closed, 0), (down_end, bytes_down))
        }
    };
    let (up_end, bytes_up) = up_end;
    let end = match lease.ended() {
        Some(reason) => RelayEnd::Revoked(reason),
        None => match (up_end, down_end) {
            (End::Error(e), _) | (_, End::Error(e)) => RelayEnd::Error(e),
            _ => RelayEnd::Closed,
        },
    };
    RelayOutcome {
        bytes_up,
        bytes_down,
        end,
    }
}

/// Why a pump stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Closed,
    Stopped,
    Error(String),
}

impl End {
    fn reason(&self) -> String {
        match self {
            Self::Closed => "the client closed the session".into(),
            Self::Stopped => "stopped".into(),
            Self::Error(e) => e.clone(),
        }
    }
}

/// How a message the client sent that cannot be decoded ends the session.
fn client_broke(e: crate::codec::CodecError) -> String {
    format!("the client broke the protocol: {e}")
}
