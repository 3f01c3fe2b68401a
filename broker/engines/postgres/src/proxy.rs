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

use crate::cancel::CancelSignal;
use crate::codec::query::{self, FieldDescription, Target, tag as qtag};
use crate::codec::{ErrorFields, MAX_MESSAGE, Query, Severity, parse, tag};
use crate::hooks::{
    Check, ColumnInfo, Decided, Enforcement, HoldOutcome, HoldRequest, Journal, Masked, RowMask,
};
use crate::wire;
use bytes::{Buf, BytesMut};
use sluice_engine::{Lease, LeaseHandle, RelayEnd, RelayOutcome};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// SQLSTATE of a statement refused by policy (insufficient_privilege).
const REFUSED: &str = "42501";
/// SQLSTATE PostgreSQL gives the substitute text.
const SYNTAX_ERROR: &str = "42601";
/// SQLSTATE of a statement cancelled at the client's request (query_canceled).
const CANCELED: &str = "57014";
/// How much a client may send while one of its statements is held before the pump stops
/// reading it (and so stops noticing a disconnect) until the hold ends.
const HOLD_READ_LIMIT: usize = 1 << 20;

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
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut target_r, mut target_w) = tokio::io::split(target);
    let token: [u8; 8] = rand::random();
    let marker = format!(
        "SLUICE_BLOCKED_{}",
        token.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
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
        portal_mask: None,
        resolved: false,
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

/// Tells the client, with a FATAL it can read, that the session ends because access ended.
async fn send_lease_end<W: AsyncWrite + Unpin>(client: &mut W, reason: &str) {
    let fatal = ErrorFields::new(
        Severity::Fatal,
        "57P01",
        format!("sluice: access to this resource ended: {reason}"),
    );
    let mut frame = BytesMut::new();
    if fatal.encode_error(&mut frame).is_ok() {
        let _ = wire::send(client, &frame).await;
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

/// What the server will answer, in order, for messages the upstream pump forwarded (tracked
/// only when masking needs to know which columns a DataRow has).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Parse,
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    DescribeStatement(String),
    DescribePortal(String),
    Execute(String),
    Close,
    Sync,
    SimpleQuery,
    FunctionCall,
}

/// A bound portal: its statement and result formats, and its columns once described.
#[derive(Debug, Clone, Default)]
struct Portal {
    statement: String,
    formats: Vec<i16>,
    described: Option<Vec<FieldDescription>>,
}

/// State both pumps see, never locked across an await.
#[derive(Debug, Default)]
struct Shared {
    expect: VecDeque<Expect>,
    statements: HashMap<String, Vec<FieldDescription>>,
    portals: HashMap<String, Portal>,
    /// The errors that replace the server's answer to each substituted text, in order.
    rewrites: VecDeque<ErrorFields>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Client to server.
struct Upstream<'a> {
    enforcement: &'a Enforcement,
    marker: &'a str,
    shared: &'a Mutex<Shared>,
    inject: mpsc::UnboundedSender<BytesMut>,
    track: bool,
    /// Wakes a held statement when the client cancels it.
    cancel: &'a CancelSignal,
    bytes: u64,
}

/// How a held statement's wait ended.
enum Waited {
    /// Approved: send it.
    Run,
    /// Not run (denied, timed out, cancelled by the client): the client gets this error.
    Refuse(ErrorFields),
    /// The session ends: the lease ended or the client went away.
    End(End),
}

impl Upstream<'_> {
    async fn run<R, W>(
        mut self,
        client: &mut R,
        target: &mut W,
        mut lease: Lease,
        mut stop: Lease,
    ) -> (End, u64)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let end = loop {
            buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                biased;
                _ = lease.revoked() => break End::Stopped,
                _ = stop.revoked() => break End::Stopped,
                read = client.read_buf(&mut buf) => read,
            };
            match read {
                Ok(0) => break End::Closed,
                Ok(_) => {}
                // A client that hangs up without TLS close_notify (the CLI after psql exits)
                // has closed the session, as far as the database is concerned.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break End::Closed,
                Err(e) => break End::Error(format!("reading from the client: {e}")),
            }
            match self.forward(&mut buf, client, target, &mut lease).await {
                Ok(None) => {}
                Ok(Some(end)) => break end,
                Err(e) => break End::Error(e),
            }
        };
        let _ = target.shutdown().await;
        (end, self.bytes)
    }

    /// Forwards every complete message in `buf`, deciding on the ones that carry SQL.
    /// `Ok(Some(end))` when the session ended while a statement was held (the lease ended or
    /// the client went away); what the client sent meanwhile is appended to `buf`.
    async fn forward<R, W>(
        &mut self,
        buf: &mut BytesMut,
        client: &mut R,
        target: &mut W,
        lease: &mut Lease,
    ) -> Result<Option<End>, String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        // Runs of untouched messages are written straight from `buf`.
        let mut out = BytesMut::new();
        loop {
            let frame = match parse(buf, MAX_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(format!("the client broke the protocol: {e}")),
            };
            let total = frame.total_len;
            let decision = self.inspect(frame.tag, frame.body)?;
            match decision {
                Check::Allow => {
                    self.journal(frame.tag, frame.body, Decided::Allowed);
                    out.extend_from_slice(&buf[..total]);
                }
                Check::Block { rule, message } => {
                    self.journal(
                        frame.tag,
                        frame.body,
                        Decided::Blocked {
                            rule: &rule,
                            message: &message,
                        },
                    );
                    self.substitute(frame.tag, frame.body, &mut out, refusal(&rule, &message))?;
                }
                Check::Hold { rule, reason } => {
                    // Everything before the held message goes first.
                    self.write(target, &mut out).await?;
                    let frame_bytes = buf[..total].to_vec();
                    let tag = frame_bytes[0];
                    let body = &frame_bytes[5..];
                    match self
                        .hold(&frame_bytes, rule, reason, client, buf, lease)
                        .await
                    {
                        Waited::End(end) => return Ok(Some(end)),
                        Waited::Run => out.extend_from_slice(&frame_bytes),
                        Waited::Refuse(error) => self.substitute(tag, body, &mut out, error)?,
                    }
                }
            }
            buf.advance(total);
        }
        self.write(target, &mut out).await?;
        Ok(None)
    }

    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        target: &mut W,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        if out.is_empty() {
            return Ok(());
        }
        // Flushed at the end of each batch, as `copy_bidirectional` does: a TLS stream may
        // hold the tail of a batch until flushed.
        wire::send(target, out)
            .await
            .map_err(|e| format!("writing to the target: {e}"))?;
        self.bytes += out.len() as u64;
        out.clear();
        Ok(())
    }

    /// Tells the journal about a message that carries SQL (or calls a function by OID).
    fn journal(&self, tag: u8, body: &[u8], decided: Decided<'_>) {
        let Some(journal) = self.enforcement.journal.as_deref() else {
            return;
        };
        match tag {
            tag::QUERY => {
                if let Ok(sql) = query::query_text(body) {
                    journal.statement(sql, false, decided);
                }
            }
            qtag::PARSE => {
                if let Ok(parsed) = query::Parse::decode(body) {
                    journal.statement(parsed.sql, true, decided);
                }
            }
            qtag::FUNCTION_CALL => {
                if let Ok(oid) = query::function_call_oid(body) {
                    journal.statement(&format!("-- function call by OID {oid}"), true, decided);
                }
            }
            _ => {}
        }
    }

    /// The guard's decision on a message, and the response it will get (for masking).
    fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Check, String> {
        let protocol = |e: crate::codec::CodecError| format!("the client broke the protocol: {e}");
        let guard = self.enforcement.guard.as_deref();
        let (check, expect) = match tag {
            tag::QUERY => {
                let sql = query::query_text(body).map_err(protocol)?;
                (
                    guard.map_or(Check::Allow, |g| g.check_sql(sql)),
                    Some(Expect::SimpleQuery),
                )
            }
            qtag::PARSE => {
                let parsed = query::Parse::decode(body).map_err(protocol)?;
                (
                    guard.map_or(Check::Allow, |g| g.check_sql(parsed.sql)),
                    Some(Expect::Parse),
                )
            }
            qtag::FUNCTION_CALL => {
                let oid = query::function_call_oid(body).map_err(protocol)?;
                (
                    guard.map_or(Check::Allow, |g| g.check_function_call(oid)),
                    Some(Expect::FunctionCall),
                )
            }
            qtag::BIND if self.track => {
                let bind = query::Bind::decode(body).map_err(protocol)?;
                let expect = Expect::Bind {
                    portal: bind.portal.to_owned(),
                    statement: bind.statement.to_owned(),
                    formats: bind.result_formats,
                };
                (Check::Allow, Some(expect))
            }
            qtag::DESCRIBE if self.track => {
                let expect = match Target::decode(body, "Describe").map_err(protocol)? {
                    Target::Statement(name) => Expect::DescribeStatement(name.to_owned()),
                    Target::Portal(name) => Expect::DescribePortal(name.to_owned()),
                };
                (Check::Allow, Some(expect))
            }
            qtag::EXECUTE if self.track => {
                let portal = query::execute_portal(body).map_err(protocol)?;
                (Check::Allow, Some(Expect::Execute(portal.to_owned())))
            }
            qtag::CLOSE if self.track => (Check::Allow, Some(Expect::Close)),
            qtag::SYNC if self.track => (Check::Allow, Some(Expect::Sync)),
            _ => (Check::Allow, None),
        };
        if self.track
            && let Some(expect) = expect
        {
            lock(self.shared).expect.push_back(expect);
        }
        Ok(check)
    }

    /// Writes, instead of a refused message, one the server fails on in the same way, and
    /// queues the error the client should see instead of the server's.
    fn substitute(
        &mut self,
        tag: u8,
        body: &[u8],
        out: &mut BytesMut,
        error: ErrorFields,
    ) -> Result<(), String> {
        let encode = |e: crate::codec::CodecError| format!("cannot encode a substitute: {e}");
        lock(self.shared).rewrites.push_back(error);
        match tag {
            qtag::PARSE => {
                let name = query::Parse::decode(body)
                    .map(|p| p.name.to_owned())
                    .unwrap_or_default();
                query::Parse::encode(&name, self.marker, out).map_err(encode)
            }
            // A Query, or a FunctionCall: both end with ReadyForQuery after an error.
            _ => Query {
                sql: self.marker.to_owned(),
            }
            .encode(out)
            .map_err(encode),
        }
    }

    /// Holds the statement in `frame` (a whole message) for approval, until someone decides,
    /// the lease ends, the client cancels it or the client goes away; see [`Waited`]. What the
    /// client sends meanwhile is appended to `buf`, to be handled after the hold.
    async fn hold<R: AsyncRead + Unpin>(
        &mut self,
        frame: &[u8],
        rule: String,
        reason: String,
        client: &mut R,
        buf: &mut BytesMut,
        lease: &mut Lease,
    ) -> Waited {
        let (tag, body) = (frame[0], &frame[5..]);
        let sql = match tag {
            tag::QUERY => Query::decode(body).map(|q| q.sql).unwrap_or_default(),
            qtag::PARSE => query::Parse::decode(body)
                .map(|p| p.sql.to_owned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let Some(approvals) = self.enforcement.approvals.as_deref() else {
            let why = format!("{reason}; this session cannot ask for approval");
            self.journal(tag, body, denied(&rule, &why, ""));
            return Waited::Refuse(refusal(&rule, &why));
        };
        let mut hold = match approvals.request(HoldRequest {
            sql,
            rule: rule.clone(),
            reason: reason.clone(),
        }) {
            Ok(hold) => hold,
            Err(why) => {
                self.journal(tag, body, denied(&rule, &why, ""));
                return Waited::Refuse(refusal(&rule, &why));
            }
        };
        self.notice(format!(
            "sluice: this statement needs approval ({reason}); request {} is waiting for {}. \
             They can run `sluice approve {}` or `sluice deny {} --reason TEXT`.",
            hold.id, hold.approvers, hold.id, hold.id
        ));

        /// What ended the wait.
        enum Woke {
            Decided(HoldOutcome),
            Cancelled,
            Gone(End),
        }
        let mut cancel = self.cancel.arm();
        let limit = buf.len() + HOLD_READ_LIMIT;
        let woke = loop {
            let room = buf.len() < limit;
            if room {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                outcome = &mut hold.decision => break Woke::Decided(outcome),
                _ = lease.revoked() => return Waited::End(End::Stopped),
                () = cancel.cancelled() => break Woke::Cancelled,
                read = client.read_buf(buf), if room => match read {
                    Ok(0) => break Woke::Gone(End::Closed),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break Woke::Gone(End::Closed);
                    }
                    Err(e) => break Woke::Gone(End::Error(format!("reading from the client: {e}"))),
                },
            }
        };
        drop(cancel);
        let outcome = match woke {
            Woke::Decided(outcome) => outcome,
            Woke::Gone(end) => {
                // Nothing runs, whatever an approver does next.
                let why = "the client disconnected";
                approvals.withdraw(&hold.id, why);
                let reason = format!("withdrawn: {why}");
                self.journal(tag, body, denied(&rule, &reason, &hold.id));
                return Waited::End(end);
            }
            Woke::Cancelled => {
                let why = "the client cancelled it";
                if approvals.withdraw(&hold.id, why) {
                    let reason = format!("withdrawn: {why}");
                    self.journal(tag, body, denied(&rule, &reason, &hold.id));
                    return Waited::Refuse(withdrawn(&hold.id));
                }
                // Decided an instant before the cancel: the decision wins, as a statement that
                // already finished wins over a late cancel in PostgreSQL. It is on its way.
                tokio::select! {
                    outcome = &mut hold.decision => outcome,
                    _ = lease.revoked() => return Waited::End(End::Stopped),
                }
            }
        };
        match outcome {
            HoldOutcome::Approved { by } => {
                self.journal(
                    tag,
                    body,
                    Decided::Approved {
                        rule: &rule,
                        by: &by,
                        request: &hold.id,
                    },
                );
                self.notice(format!(
                    "sluice: request {} was approved by {by}; running it",
                    hold.id
                ));
                Waited::Run
            }
            HoldOutcome::Denied { message } => Waited::Refuse({
                self.journal(tag, body, denied(&rule, &message, &hold.id));
                ErrorFields::new(
                    Severity::Error,
                    REFUSED,
                    format!("sluice: request {} was not approved: {message}", hold.id),
                )
                .with_detail(format!("rule \"{rule}\": {reason}"))
            }),
        }
    }

    fn notice(&self, message: String) {
        let mut frame = BytesMut::new();
        if ErrorFields::new(Severity::Notice, "01000", message)
            .encode_notice(&mut frame)
            .is_ok()
        {
            let _ = self.inject.send(frame);
        }
    }
}

/// Tells the journal what the server answered: command tags, and (when it wants them) column
/// names and rows as the client received them, masked. `sent` is what went to the client for
/// this message.
fn journal_answer(journal: &dyn Journal, rows: bool, tag: u8, body: &[u8], sent: &[u8]) {
    match tag {
        qtag::COMMAND_COMPLETE => {
            let text = body.strip_suffix(&[0]).unwrap_or(body);
            journal.complete(&String::from_utf8_lossy(text));
        }
        qtag::ROW_DESCRIPTION if rows => {
            if let Ok(fields) = query::row_description(body) {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                journal.columns(&names);
            }
        }
        qtag::DATA_ROW if rows => {
            if let Some(sent_body) = sent.get(5..)
                && let Ok(values) = query::data_row(sent_body)
            {
                journal.row(&values);
            }
        }
        _ => {}
    }
}

/// The journal's view of a hold that did not end in a run.
fn denied<'a>(rule: &'a str, reason: &'a str, request: &'a str) -> Decided<'a> {
    Decided::Denied {
        rule,
        reason,
        request,
    }
}

/// The ERROR a client gets for a held statement it cancelled: PostgreSQL's own, so clients
/// treat it as any cancelled statement.
fn withdrawn(id: &str) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        CANCELED,
        "canceling statement due to user request",
    )
    .with_detail(format!(
        "sluice: approval request {id} was withdrawn; nothing was sent to the database."
    ))
}

/// The ERROR a client gets for a statement refused by `rule`.
fn refusal(rule: &str, message: &str) -> ErrorFields {
    ErrorFields::new(Severity::Error, REFUSED, format!("sluice: {message}"))
        .with_detail(format!("Refused by the rule \"{rule}\"."))
        .with_hint("Nothing was sent to the database; the session is still usable.")
}

/// Server to client.
struct Downstream<'a> {
    enforcement: &'a Enforcement,
    marker: &'a str,
    shared: &'a Mutex<Shared>,
    inject: mpsc::UnboundedReceiver<BytesMut>,
    /// Masking of the current simple-query result.
    simple_mask: Option<Box<dyn RowMask>>,
    /// Masking of the current portal's rows, and which portal it is for.
    portal_mask: Option<(String, Option<Box<dyn RowMask>>)>,
    /// The masker has resolved the columns of the RowDescription at the front of the buffer
    /// (as far as it could): plan it now, do not ask again.
    resolved: bool,
    bytes: u64,
}

impl Downstream<'_> {
    async fn run<R, W>(
        mut self,
        target: &mut R,
        client: &mut W,
        mut lease: Lease,
        mut stop: Lease,
    ) -> (End, u64)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut out = BytesMut::new();
        let end = 'relay: loop {
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                reason = lease.revoked() => {
                    send_lease_end(client, &reason).await;
                    break End::Stopped;
                }
                _ = stop.revoked() => {
                    // The upstream pump saw the lease end first (its wake-up can win the
                    // race with ours): the client still hears why.
                    if let Some(reason) = lease.ended() {
                        send_lease_end(client, &reason).await;
                    }
                    break End::Stopped;
                }
                Some(frame) = self.inject.recv() => {
                    if let Err(e) = wire::send(client, &frame).await {
                        break End::Error(format!("writing to the client: {e}"));
                    }
                    continue;
                }
                read = target.read_buf(&mut buf) => match read {
                    Ok(0) => break End::Closed,
                    Ok(_) => {}
                    Err(e) => break End::Error(format!("reading from the target: {e}")),
                },
            }
            let mut processed = self.process(&mut buf, &mut out);
            while let Ok(Some(columns)) = &processed {
                // A result from a table the masker cannot name yet: it looks the table up
                // first (this delays only this result), then the same RowDescription is planned.
                if let Some(masker) = self.enforcement.masker.as_deref() {
                    tokio::select! {
                        biased;
                        reason = lease.revoked() => {
                            send_lease_end(client, &reason).await;
                            break 'relay End::Stopped;
                        }
                        _ = stop.revoked() => break 'relay End::Stopped,
                        () = masker.resolve(columns) => {}
                    }
                }
                self.resolved = true;
                processed = self.process(&mut buf, &mut out);
            }
            if let Err(e) = processed {
                // Fail closed: tell the client why and end the session.
                out.clear();
                let fatal = ErrorFields::new(Severity::Fatal, "XX000", format!("sluice: {e}"));
                if fatal.encode_error(&mut out).is_ok() {
                    let _ = wire::send(client, &out).await;
                }
                break End::Error(e);
            }
            if !out.is_empty() {
                // Flushed per batch: under back-pressure a TLS stream would otherwise keep
                // the tail of a result until the next write.
                if let Err(e) = wire::send(client, &out).await {
                    break End::Error(format!("writing to the client: {e}"));
                }
                self.bytes += out.len() as u64;
                out.clear();
            }
        };
        let _ = client.shutdown().await;
        (end, self.bytes)
    }

    /// Moves every complete message from `buf` to `out`, rewriting where needed. Stops at a
    /// RowDescription whose columns the masker wants to resolve first and returns them; that
    /// message stays in `buf`.
    fn process(
        &mut self,
        buf: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Option<Vec<ColumnInfo>>, String> {
        let masking = self.enforcement.masker.is_some();
        let enforcement = self.enforcement;
        let journal = enforcement.journal.as_deref();
        let rows = journal.is_some_and(|j| j.wants_rows());
        loop {
            let frame = match parse(buf, MAX_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("the target broke the protocol: {e}")),
            };
            let total = frame.total_len;
            let body = &buf[5..total];
            let written = out.len();
            match frame.tag {
                tag::ERROR_RESPONSE => {
                    let fields = ErrorFields::decode(body)
                        .map_err(|e| format!("unreadable error from the target: {e}"))?;
                    if masking {
                        self.error_in_extended_batch();
                    }
                    let fields = self.rewrite_error(fields);
                    let fields = self.mask_fields(fields);
                    if let Some(journal) = journal {
                        journal.error(
                            fields.code().unwrap_or_default(),
                            fields.message().unwrap_or_default(),
                        );
                    }
                    fields
                        .encode_error(out)
                        .map_err(|e| format!("cannot encode an error: {e}"))?;
                }
                tag::NOTICE_RESPONSE if masking => {
                    let fields = ErrorFields::decode(body)
                        .map_err(|e| format!("unreadable notice from the target: {e}"))?;
                    self.mask_fields(fields)
                        .encode_notice(out)
                        .map_err(|e| format!("cannot encode a notice: {e}"))?;
                }
                _ if !masking => out.extend_from_slice(&buf[..total]),
                qtag::ROW_DESCRIPTION => {
                    let fields = query::row_description(body)
                        .map_err(|e| format!("unreadable row description: {e}"))?;
                    let described = columns(&fields, &[]);
                    if !std::mem::take(&mut self.resolved)
                        && enforcement
                            .masker
                            .as_deref()
                            .is_some_and(|m| m.unresolved(&described))
                    {
                        return Ok(Some(described));
                    }
                    self.row_description(fields, &described);
                    out.extend_from_slice(&buf[..total]);
                }
                qtag::DATA_ROW => self.data_row(body, &buf[..total], out)?,
                qtag::COPY_DATA => {
                    let masker = self.enforcement.masker.as_deref();
                    let text = std::str::from_utf8(body).ok();
                    match (masker, text) {
                        (Some(m), Some(text)) => match m.mask_text(text) {
                            Some(masked) => query::encode_copy_data(masked.as_bytes(), out)
                                .map_err(|e| format!("cannot encode COPY data: {e}"))?,
                            None => out.extend_from_slice(&buf[..total]),
                        },
                        // Not text: binary COPY or another encoding; never sent unmasked.
                        _ => {
                            return Err(
                                "COPY output that is not UTF-8 text cannot be masked; use COPY \
                                 ... (FORMAT text) or (FORMAT csv)"
                                    .into(),
                            );
                        }
                    }
                }
                qtag::COPY_OUT => {
                    // Overall format: 0 text, 1 binary.
                    if body.first() == Some(&1) {
                        return Err("binary COPY output cannot be masked; use COPY ... (FORMAT \
                                    text) or (FORMAT csv)"
                            .into());
                    }
                    out.extend_from_slice(&buf[..total]);
                }
                other => {
                    self.track(other);
                    out.extend_from_slice(&buf[..total]);
                }
            }
            if let Some(journal) = journal {
                journal_answer(journal, rows, frame.tag, body, &out[written..]);
            }
            buf.advance(total);
        }
    }

    /// Replaces the server's syntax error on a substituted text with the guard's error.
    fn rewrite_error(&mut self, fields: ErrorFields) -> ErrorFields {
        let ours = fields.code() == Some(SYNTAX_ERROR)
            && fields.message().is_some_and(|m| m.contains(self.marker));
        if !ours {
            return fields;
        }
        lock(self.shared).rewrites.pop_front().unwrap_or_else(|| {
            ErrorFields::new(Severity::Error, REFUSED, "sluice: statement refused")
        })
    }

    /// Masks the text fields of an error or notice (message, detail, hint, context, where).
    fn mask_fields(&self, mut fields: ErrorFields) -> ErrorFields {
        let Some(masker) = self.enforcement.masker.as_deref() else {
            return fields;
        };
        for (ty, value) in &mut fields.fields {
            if matches!(ty, b'M' | b'D' | b'H' | b'W' | b'q')
                && let Some(masked) = masker.mask_text(value)
            {
                *value = masked;
            }
        }
        fields
    }

    /// After an error in an extended batch the server skips to the Sync: so do the
    /// expectations.
    fn error_in_extended_batch(&mut self) {
        let mut shared = lock(self.shared);
        if matches!(
            shared.expect.front(),
            Some(Expect::SimpleQuery | Expect::FunctionCall) | None
        ) {
            return;
        }
        while let Some(front) = shared.expect.front() {
            if *front == Expect::Sync {
                break;
            }
            shared.expect.pop_front();
        }
        self.portal_mask = None;
    }

    /// Keeps the expectation queue in step with responses that carry no rows.
    fn track(&mut self, tag: u8) {
        let mut shared = lock(self.shared);
        let shared = &mut *shared;
        match tag {
            qtag::PARSE_COMPLETE | qtag::CLOSE_COMPLETE => {
                shared.expect.pop_front();
            }
            qtag::BIND_COMPLETE => {
                if let Some(Expect::Bind {
                    portal,
                    statement,
                    formats,
                }) = shared.expect.pop_front()
                {
                    if self
                        .portal_mask
                        .as_ref()
                        .is_some_and(|(name, _)| *name == portal)
                    {
                        self.portal_mask = None;
                    }
                    shared.portals.insert(
                        portal,
                        Portal {
                            statement,
                            formats,
                            described: None,
                        },
                    );
                }
            }
            qtag::NO_DATA => {
                shared.expect.pop_front();
            }
            qtag::COMMAND_COMPLETE | qtag::EMPTY_QUERY | qtag::PORTAL_SUSPENDED => {
                match shared.expect.front() {
                    Some(Expect::Execute(_)) => {
                        shared.expect.pop_front();
                        self.portal_mask = None;
                    }
                    _ => self.simple_mask = None,
                }
            }
            tag::READY_FOR_QUERY => {
                // Ends a Sync, a simple Query or a FunctionCall.
                shared.expect.pop_front();
                self.simple_mask = None;
                self.portal_mask = None;
            }
            _ => {}
        }
    }

    /// Keeps a described statement's or portal's columns, or plans a simple query's result.
    fn row_description(&mut self, fields: Vec<FieldDescription>, described: &[ColumnInfo]) {
        let Some(masker) = self.enforcement.masker.as_deref() else {
            return;
        };
        let mut shared = lock(self.shared);
        match shared.expect.front().cloned() {
            Some(Expect::DescribeStatement(name)) => {
                shared.expect.pop_front();
                shared.statements.insert(name, fields);
            }
            Some(Expect::DescribePortal(name)) => {
                shared.expect.pop_front();
                if let Some(portal) = shared.portals.get_mut(&name) {
                    portal.described = Some(fields);
                }
            }
            _ => self.simple_mask = masker.plan(described),
        }
    }

    fn data_row(&mut self, body: &[u8], frame: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let enforcement = self.enforcement;
        let Some(masker) = enforcement.masker.as_deref() else {
            out.extend_from_slice(frame);
            return Ok(());
        };
        // Rows of an Execute use the portal's columns; otherwise the last RowDescription's.
        let executing = match lock(self.shared).expect.front() {
            Some(Expect::Execute(portal)) => Some(portal.clone()),
            _ => None,
        };
        let mask = match executing {
            Some(portal) => {
                if self
                    .portal_mask
                    .as_ref()
                    .is_none_or(|(name, _)| *name != portal)
                {
                    let cols = self.portal_columns(&portal)?;
                    self.portal_mask = Some((portal, masker.plan(&cols)));
                }
                self.portal_mask
                    .as_mut()
                    .and_then(|(_, mask)| mask.as_mut())
            }
            None => self.simple_mask.as_mut(),
        };
        let Some(mask) = mask else {
            out.extend_from_slice(frame);
            return Ok(());
        };
        let values =
            query::data_row(body).map_err(|e| format!("unreadable row from the target: {e}"))?;
        let results: Vec<Masked> = values
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                None => Masked::Unchanged,
                Some(value) => mask.mask(index, value),
            })
            .collect();
        if results.iter().all(|r| *r == Masked::Unchanged) {
            out.extend_from_slice(frame);
            return Ok(());
        }
        let rewritten = values
            .iter()
            .zip(&results)
            .map(|(value, result)| match result {
                Masked::Unchanged => *value,
                Masked::Replace(new) => Some(new.as_slice()),
                Masked::Null => None,
            });
        query::encode_data_row(rewritten, out).map_err(|e| format!("cannot encode a row: {e}"))
    }

    /// The columns of a bound portal: described, or its statement's with the Bind's formats.
    fn portal_columns(&self, portal: &str) -> Result<Vec<ColumnInfo>, String> {
        let shared = lock(self.shared);
        let Some(bound) = shared.portals.get(portal) else {
            return Err(format!(
                "rows of portal \"{portal}\" arrived before it was bound"
            ));
        };
        match (&bound.described, shared.statements.get(&bound.statement)) {
            (Some(fields), _) => Ok(columns(fields, &[])),
            (None, Some(fields)) => Ok(columns(fields, &bound.formats)),
            (None, None) => Err(format!(
                "rows of statement \"{}\" arrived without a description; masking needs to know \
                 the columns (Describe the statement or the portal first)",
                bound.statement
            )),
        }
    }
}

/// Column facts for the masker; `formats` from a Bind overrides the described formats.
fn columns(fields: &[FieldDescription], formats: &[i16]) -> Vec<ColumnInfo> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let format = match formats.len() {
                0 => f.format,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(0),
            };
            ColumnInfo {
                name: f.name.clone(),
                table_oid: f.table_oid,
                column: f.column,
                type_oid: f.type_oid,
                binary: format == 1,
            }
        })
        .collect()
}
