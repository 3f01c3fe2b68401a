//! The server-to-client pump: it frames what the server answers, lets each message be
//! rewritten (the guard's errors, masking) on its way, writes injected messages between whole
//! ones, and tells the client with a FATAL when access ends.

use super::bulk::Bulk;
use super::expect::Shared;
use super::journal::journal_answer;
use super::mask::{columns, copy_out};
use super::{End, ReadRoom};
use crate::codec::query::{self, tag as qtag};
use crate::codec::{ErrorFields, MAX_MESSAGE, Severity, parse, tag};
use crate::hooks::{ColumnInfo, Enforcement, RowMask};
use crate::wire;
use bytes::{Buf, BytesMut};
use sluice_engine::Lease;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Server to client.
pub(super) struct Downstream<'a> {
    pub(super) enforcement: &'a Enforcement,
    /// The text a refused statement was replaced by: the server's error on it is rewritten.
    pub(super) marker: &'a str,
    pub(super) shared: &'a Mutex<Shared>,
    /// Whole messages for the client from the upstream pump (notices about a hold).
    pub(super) inject: mpsc::UnboundedReceiver<BytesMut>,
    /// Masking of the current simple-query result.
    pub(super) simple_mask: Option<Box<dyn RowMask>>,
    /// Which statement of the current simple Query's text answers now.
    pub(super) simple_statement: usize,
    /// Masking of the current portal's rows, and which portal it is for.
    pub(super) portal_mask: Option<(String, Option<Box<dyn RowMask>>)>,
    /// The masker has resolved the columns of the RowDescription at the front of the buffer
    /// (as far as it could): plan it now, do not ask again.
    pub(super) resolved: bool,
    /// The last message relayed was ReadyForQuery: the server's answer is over.
    pub(super) idle: bool,
    /// Whether the current answer streams in bulk (fewer, larger reads).
    pub(super) bulk: Bulk,
    pub(super) bytes: u64,
}

impl Downstream<'_> {
    pub(super) async fn run<R, W>(
        mut self,
        target: &mut R,
        client: &mut W,
        lease: Lease,
        stop: Lease,
    ) -> (End, u64)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::new();
        let mut room = ReadRoom::new();
        let mut out = BytesMut::new();
        let mut ended = lease.watch().also(&stop);
        let end = 'relay: loop {
            room.make(&mut buf);
            tokio::select! {
                biased;
                () = &mut ended => {
                    // Whether the lease ended or the upstream pump stopped (it may have seen
                    // the lease end first), the client hears why when access ended.
                    send_lease_end(client, &lease).await;
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
                    Ok(n) => {
                        room.read(n);
                        self.bulk.read(n);
                    }
                    Err(e) => break End::Error(format!("reading from the target: {e}")),
                },
                () = Bulk::lull(self.bulk.is_on()) => {
                    // The end of a bulk answer, short of the mark: read what there is.
                    self.bulk.lulled();
                    continue;
                }
            }
            let mut processed = self.process(&mut buf, &mut out);
            while let Ok(Some(columns)) = &processed {
                // A result from a table the masker cannot name yet: it looks the table up
                // first (this delays only this result), then the same RowDescription is planned.
                if let Some(masker) = self.enforcement.masker.as_deref() {
                    tokio::select! {
                        biased;
                        () = &mut ended => {
                            send_lease_end(client, &lease).await;
                            break 'relay End::Stopped;
                        }
                        () = masker.resolve(columns) => {}
                    }
                }
                self.resolved = true;
                processed = self.process(&mut buf, &mut out);
            }
            self.bulk.settle(self.idle);
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
            self.idle = frame.tag == tag::READY_FOR_QUERY;
            match frame.tag {
                tag::ERROR_RESPONSE => {
                    let fields = ErrorFields::decode(body)
                        .map_err(|e| format!("unreadable error from the target: {e}"))?;
                    // Before the batch is skipped: the error answers this text (unless it is
                    // the guard's own refusal, which quotes no value).
                    let facts = if masking && !self.substituted(&fields) {
                        self.current_facts()
                    } else {
                        None
                    };
                    if masking {
                        self.error_in_extended_batch();
                    }
                    let fields = self.rewrite_error(fields);
                    let fields = self.mask_fields(fields, facts.as_ref());
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
                    let facts = self.current_facts();
                    self.mask_fields(fields, facts.as_ref())
                        .encode_notice(out)
                        .map_err(|e| format!("cannot encode a notice: {e}"))?;
                }
                tag::NOTIFICATION_RESPONSE if masking => self.notification(body, out)?,
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
                qtag::COPY_DATA => self.copy_data(body, &buf[..total], out)?,
                qtag::COPY_OUT => {
                    copy_out(body)?;
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
}

/// Tells the client, with a FATAL it can read, that the session ends because access ended
/// (nothing when the lease is still on: the other pump stopped).
async fn send_lease_end<W: AsyncWrite + Unpin>(client: &mut W, lease: &Lease) {
    let Some(reason) = lease.ended() else {
        return;
    };
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
