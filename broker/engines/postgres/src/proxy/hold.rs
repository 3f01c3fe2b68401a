//! A statement held for approval: the request, the wait (which keeps reading the client so a
//! disconnect or a cancel request withdraws it), the outcome, and the notices the client gets
//! about it.

use super::decide::{REFUSED, refusal};
use super::journal::denied;
use super::upstream::Upstream;
use super::{End, READ_CHUNK};
use crate::codec::query::{self, tag as qtag};
use crate::codec::{ErrorFields, Query, Severity, tag};
use crate::hooks::{Decided, HoldOutcome, HoldRequest};
use bytes::BytesMut;
use sluice_engine::Lease;
use tokio::io::{AsyncRead, AsyncReadExt};

/// SQLSTATE of a statement cancelled at the client's request (query_canceled).
const CANCELED: &str = "57014";
/// How much a client may send while one of its statements is held before the pump stops
/// reading it (and so stops noticing a disconnect) until the hold ends.
const HOLD_READ_LIMIT: usize = 1 << 20;

/// How a held statement's wait ended.
pub(super) enum Waited {
    /// Approved: send it.
    Run,
    /// Not run (denied, timed out, cancelled by the client): the client gets this error.
    Refuse(ErrorFields),
    /// The session ends: the lease ended or the client went away.
    End(End),
}

impl Upstream<'_> {
    /// Holds the statement in `frame` (a whole message) for approval, until someone decides,
    /// the lease ends, the client cancels it or the client goes away; see [`Waited`]. What the
    /// client sends meanwhile is appended to `buf`, to be handled after the hold.
    pub(super) async fn hold<R: AsyncRead + Unpin>(
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
            kind: "sql".into(),
            what: sql,
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

    /// Queues a NOTICE for the downstream pump, which writes it between two whole messages.
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
