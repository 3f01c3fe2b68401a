//! The client-to-server pump: it frames what the client sends, forwards it in batches, and
//! acts on the decision ([`decide`](super::decide)) for each message that carries SQL.

use super::expect::Shared;
use super::hold::Waited;
use super::{End, ReadRoom, decide::refusal};
use crate::cancel::CancelSignal;
use crate::codec::{MAX_MESSAGE, parse};
use crate::hooks::{Check, Decided, Enforcement};
use crate::wire;
use bytes::{Buf, BytesMut};
use sluice_engine::Lease;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Client to server.
pub(super) struct Upstream<'a> {
    pub(super) enforcement: &'a Enforcement,
    /// The text a refused statement is replaced by.
    pub(super) marker: &'a str,
    pub(super) shared: &'a Mutex<Shared>,
    /// Messages for the client (notices about a hold), written by the downstream pump between
    /// two whole messages.
    pub(super) inject: mpsc::UnboundedSender<BytesMut>,
    /// Whether to queue the response each message will get: only masking needs it.
    pub(super) track: bool,
    /// Wakes a held statement when the client cancels it.
    pub(super) cancel: &'a CancelSignal,
    pub(super) bytes: u64,
}

impl Upstream<'_> {
    pub(super) async fn run<R, W>(
        mut self,
        client: &mut R,
        target: &mut W,
        mut lease: Lease,
        stop: Lease,
    ) -> (End, u64)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::new();
        let mut room = ReadRoom::new();
        let mut ended = lease.watch().also(&stop);
        let end = loop {
            room.make(&mut buf);
            let read = tokio::select! {
                biased;
                () = &mut ended => break End::Stopped,
                read = client.read_buf(&mut buf) => read,
            };
            match read {
                Ok(0) => break End::Closed,
                Ok(n) => room.read(n),
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
}
