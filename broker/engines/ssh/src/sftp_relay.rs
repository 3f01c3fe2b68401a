//! An SFTP session through the broker: every client request is read, each path it names is
//! resolved by the host and judged by the role's file rules before the request is passed on;
//! a refused one is answered "Permission denied" by the broker and the session goes on.
//! Every operation reaches the journal with its path and, for files, the bytes moved.
//!
//! ```text
//!  client ──packets──▶ [judge paths (resolver, rules)] ──same bytes──▶ host sftp-server
//!         ◀──────────── [bind handles, count bytes, filter VERSION] ◀──────────────────
//! ```
//!
//! Two tasks, one per direction, so a request waiting for its path to be resolved never holds
//! up the host's replies.

use crate::files::{Access, FileRules, Refusal};
use crate::resolve::{Resolved, Resolver};
use crate::session::{FileEvent, FileOutcome, Journal};
use crate::sftp::{self, Framer, Reply, Request, status};
use bytes::Bytes;
use russh::ChannelMsg;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// An open file or directory, by its handle.
struct Open {
    op: &'static str,
    path: String,
    bytes: u64,
}

/// A request passed on, waiting for its reply.
enum Pending {
    /// A path operation (`opens`: its handle reply binds the path).
    Paths {
        op: &'static str,
        paths: Vec<String>,
        opens: bool,
    },
    /// An operation on a handle.
    Handle { handle: Bytes, closes: bool },
}

#[derive(Default)]
struct State {
    pending: HashMap<u32, Pending>,
    handles: HashMap<Bytes, Open>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Relays the SFTP subsystem on `client` to the one started on `host`, until either ends.
pub(crate) async fn relay(
    client: russh::Channel<russh::server::Msg>,
    host: russh::Channel<russh::client::Msg>,
    rules: FileRules,
    resolver: Arc<Resolver>,
    journal: Option<Arc<dyn Journal>>,
) {
    let (client_in, client_out) = client.split();
    let (host_in, host_out) = host.split();
    let client_out = Arc::new(client_out);
    let host_out = Arc::new(host_out);
    let state: Shared = Arc::default();
    let up = requests(
        client_in,
        Arc::clone(&client_out),
        Arc::clone(&host_out),
        rules,
        resolver,
        journal.clone(),
        Arc::clone(&state),
    );
    let down = replies(
        host_in,
        Arc::clone(&client_out),
        journal.clone(),
        Arc::clone(&state),
    );
    tokio::select! {
        () = up => {}
        () = down => {}
    }
    let _ = host_out.close().await;
    let _ = client_out.eof().await;
    let _ = client_out.close().await;
    // Files still open when the session ends are journaled with what moved.
    if let Some(journal) = &journal {
        for (_, open) in lock(&state).handles.drain() {
            journal.file(&FileEvent {
                op: open.op,
                path: &open.path,
                to: None,
                bytes: Some(open.bytes),
                outcome: FileOutcome::Done,
            });
        }
    }
}

/// Client to host: judge, then pass on or answer.
async fn requests(
    mut client_in: russh::ChannelReadHalf,
    client_out: Arc<russh::ChannelWriteHalf<russh::server::Msg>>,
    host_out: Arc<russh::ChannelWriteHalf<russh::client::Msg>>,
    rules: FileRules,
    resolver: Arc<Resolver>,
    journal: Option<Arc<dyn Journal>>,
    state: Shared,
) {
    let mut framer = Framer::default();
    while let Some(message) = client_in.wait().await {
        match message {
            ChannelMsg::Data { data } => framer.push(&data),
            ChannelMsg::Eof => {
                let _ = host_out.eof().await;
                continue;
            }
            ChannelMsg::Close => return,
            _ => continue,
        }
        loop {
            let packet = match framer.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => return malformed(&journal, &e.0),
            };
            let request = match sftp::request(&packet) {
                Ok(request) => request,
                Err(e) => return malformed(&journal, &e.0),
            };
            let answer = match request {
                Request::Init | Request::Harmless { .. } => None,
                Request::Handle {
                    id,
                    handle,
                    written,
                    closes,
                } => {
                    let mut state = lock(&state);
                    if let Some(open) = state.handles.get_mut(&handle) {
                        open.bytes += written;
                    }
                    state.pending.insert(id, Pending::Handle { handle, closes });
                    None
                }
                Request::Unsupported { id, what } => Some(sftp::status_packet(
                    id,
                    status::OP_UNSUPPORTED,
                    &format!("{what} is not supported through sluice"),
                )),
                Request::Paths {
                    id,
                    op,
                    paths,
                    opens,
                } => match judge(&rules, &resolver, &paths).await {
                    Ok(resolved) => {
                        lock(&state).pending.insert(
                            id,
                            Pending::Paths {
                                op,
                                paths: resolved,
                                opens,
                            },
                        );
                        None
                    }
                    Err(Judged::Refused(path, refusal)) => {
                        if let Some(j) = &journal {
                            j.file(&FileEvent {
                                op,
                                path: &path,
                                to: None,
                                bytes: None,
                                outcome: FileOutcome::Refused(&refusal),
                            });
                        }
                        Some(sftp::status_packet(
                            id,
                            status::PERMISSION_DENIED,
                            &format!("Permission denied (sluice: {})", refusal.reason),
                        ))
                    }
                    Err(Judged::Host(code)) => Some(sftp::status_packet(
                        id,
                        code,
                        if code == status::NO_SUCH_FILE {
                            "No such file"
                        } else {
                            "Failure"
                        },
                    )),
                    Err(Judged::Unresolvable(why)) => {
                        if let Some(j) = &journal {
                            j.note(&format!("sftp {op} refused: {why}"));
                        }
                        Some(sftp::status_packet(
                            id,
                            status::FAILURE,
                            "sluice could not resolve the path on the host",
                        ))
                    }
                },
            };
            let sent = match answer {
                Some(reply) => client_out.data_bytes(reply).await,
                None => host_out.data_bytes(packet).await,
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Why a path operation is not passed on.
enum Judged {
    /// The rules refuse this (resolved) path.
    Refused(String, Refusal),
    /// The host could not resolve a path: the operation would fail with this code.
    Host(u32),
    /// The host could not be asked.
    Unresolvable(String),
}

/// Resolves every path of an operation on the host and judges it.
async fn judge(
    rules: &FileRules,
    resolver: &Resolver,
    paths: &[sftp::PathUse],
) -> Result<Vec<String>, Judged> {
    let mut resolved = Vec::with_capacity(paths.len());
    for used in paths {
        let path = match resolver.resolve(&used.path, used.follow).await {
            Ok(Resolved::Path(path)) => path,
            Ok(Resolved::Status(code)) => return Err(Judged::Host(code)),
            Err(why) => return Err(Judged::Unresolvable(why)),
        };
        let access = if used.write {
            Access::Write
        } else {
            Access::Read
        };
        rules
            .judge(access, &path)
            .map_err(|refusal| Judged::Refused(path.clone(), refusal))?;
        resolved.push(path);
    }
    Ok(resolved)
}

/// Host to client: bind handles, count bytes, journal completed operations, pass on.
async fn replies(
    mut host_in: russh::ChannelReadHalf,
    client_out: Arc<russh::ChannelWriteHalf<russh::server::Msg>>,
    journal: Option<Arc<dyn Journal>>,
    state: Shared,
) {
    let mut framer = Framer::default();
    while let Some(message) = host_in.wait().await {
        match message {
            ChannelMsg::Data { data } => framer.push(&data),
            ChannelMsg::Eof => {
                let _ = client_out.eof().await;
                continue;
            }
            ChannelMsg::ExitStatus { exit_status } => {
                let _ = client_out.exit_status(exit_status).await;
                continue;
            }
            ChannelMsg::Close => return,
            _ => continue,
        }
        loop {
            let packet = match framer.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => return malformed(&journal, &e.0),
            };
            let reply = match sftp::reply(&packet) {
                Ok(reply) => reply,
                Err(e) => return malformed(&journal, &e.0),
            };
            let forward = match reply {
                Reply::Version => match sftp::filter_version(&packet) {
                    Ok(filtered) => filtered,
                    Err(e) => return malformed(&journal, &e.0),
                },
                other => {
                    track(&state, &journal, &other);
                    packet
                }
            };
            if client_out.data_bytes(forward).await.is_err() {
                return;
            }
        }
    }
}

/// What a reply means for the open handles and the journal.
fn track(state: &Shared, journal: &Option<Arc<dyn Journal>>, reply: &Reply) {
    let id = match reply {
        Reply::Version => return,
        Reply::Handle { id, .. }
        | Reply::Data { id, .. }
        | Reply::Status { id, .. }
        | Reply::Name { id, .. }
        | Reply::Other { id } => *id,
    };
    let mut state = lock(state);
    let Some(pending) = state.pending.remove(&id) else {
        return;
    };
    match (pending, reply) {
        (
            Pending::Paths {
                op,
                mut paths,
                opens: true,
            },
            Reply::Handle { handle, .. },
        ) => {
            let op = match op {
                "open-write" => "write",
                "open-read" => "read",
                other => other,
            };
            state.handles.insert(
                handle.clone(),
                Open {
                    op,
                    path: paths.swap_remove(0),
                    bytes: 0,
                },
            );
        }
        (Pending::Paths { op, paths, .. }, Reply::Status { code, .. }) => {
            // A look that found nothing (`stat` of a file about to be written) is not news.
            let looked = matches!(op, "stat" | "readlink" | "statvfs");
            if let Some(j) = journal.as_ref().filter(|_| !looked || *code == status::OK) {
                let outcome = if *code == status::OK {
                    FileOutcome::Done
                } else {
                    FileOutcome::Failed(*code)
                };
                j.file(&FileEvent {
                    op,
                    path: paths.first().map_or("", String::as_str),
                    to: paths.get(1).map(String::as_str),
                    bytes: None,
                    outcome,
                });
            }
        }
        (Pending::Paths { .. }, _) => {}
        (Pending::Handle { handle, .. }, Reply::Data { len, .. }) => {
            if let Some(open) = state.handles.get_mut(&handle) {
                open.bytes += len;
            }
        }
        (
            Pending::Handle {
                handle,
                closes: true,
            },
            Reply::Status { .. },
        ) => {
            if let (Some(open), Some(j)) = (state.handles.remove(&handle), journal) {
                j.file(&FileEvent {
                    op: open.op,
                    path: &open.path,
                    to: None,
                    bytes: Some(open.bytes),
                    outcome: FileOutcome::Done,
                });
            }
        }
        (Pending::Handle { .. }, _) => {}
    }
}

fn malformed(journal: &Option<Arc<dyn Journal>>, why: &str) {
    if let Some(j) = journal {
        j.note(&format!("sftp session ended: {why}"));
    }
}
