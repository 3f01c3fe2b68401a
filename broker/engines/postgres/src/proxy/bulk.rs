//! Bulk reads: while the server streams a large answer (a COPY, a big result), the downstream
//! pump is woken once per [`BULK_LOW_WATER`] bytes instead of once per write of the server.
//!
//! PostgreSQL flushes its output every 8 KiB, and a relay that keeps up sleeps between two
//! flushes: one context switch per 8 KiB in the broker and, because each batch the broker
//! writes wakes the CLI, another there. Once an answer has streamed [`BULK_AFTER`] bytes
//! without its ReadyForQuery, the pump raises the socket's read low-water mark
//! ([`sluice_engine::socket::set_read_low_water`]), so the kernel signals it when 64 KiB are
//! waiting. The end of the answer is usually less than that: a pump in bulk mode also waits
//! at most [`BULK_WAIT`] for readiness, then lowers the mark (which signals at once when
//! bytes are waiting) and reads what there is. The mark goes back to 1 when the answer ends.
//! Measured on `\copy` of 194 MB: broker + CLI CPU per GB halved (`docs/benchmarks.md`).
//!
//! The mark is only a hint about *when* to wake: reads still return whatever is waiting, the
//! lease and injected messages are raced as before, and a socket that refuses the option is
//! relayed as it would be without it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes an answer streams before its reads go into bulk mode. Small answers (one read or a
/// few) never pay the tail wait.
const BULK_AFTER: u64 = 256 * 1024;

/// The read low-water mark in bulk mode.
const BULK_LOW_WATER: u32 = 64 * 1024;

/// How long a pump in bulk mode waits for the mark before it reads what there is.
const BULK_WAIT: Duration = Duration::from_millis(1);

/// A target whose reads can be told to wait for more bytes.
pub trait ReadLowWater {
    /// Sets the read low-water mark (1: readable as soon as anything arrives).
    fn set_read_low_water(&self, bytes: u32) -> io::Result<()>;
}

impl ReadLowWater for tokio::net::TcpStream {
    fn set_read_low_water(&self, bytes: u32) -> io::Result<()> {
        sluice_engine::socket::set_read_low_water(self, bytes)
    }
}

/// An in-process pipe (tests, tools): no kernel wakes anyone per write; nothing to set.
impl ReadLowWater for tokio::io::DuplexStream {
    fn set_read_low_water(&self, _bytes: u32) -> io::Result<()> {
        Ok(())
    }
}

impl ReadLowWater for crate::upstream::UpstreamStream {
    fn set_read_low_water(&self, bytes: u32) -> io::Result<()> {
        sluice_engine::socket::set_read_low_water(self.tcp(), bytes)
    }
}

/// The target stream, with the mark the downstream pump wants applied before each read (the
/// pumps hold split halves, so the pump asks and the stream applies).
#[derive(Debug)]
pub(super) struct LowWatered<'a, T> {
    inner: &'a mut T,
    wanted: Arc<AtomicU32>,
    applied: u32,
}

impl<'a, T: ReadLowWater> LowWatered<'a, T> {
    pub(super) fn new(inner: &'a mut T) -> (Self, Bulk) {
        let wanted = Arc::new(AtomicU32::new(1));
        let bulk = Bulk {
            wanted: Arc::clone(&wanted),
            on: false,
            streamed: 0,
        };
        let stream = Self {
            inner,
            wanted,
            applied: 1,
        };
        (stream, bulk)
    }
}

impl<T: AsyncRead + ReadLowWater + Unpin> AsyncRead for LowWatered<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wanted = this.wanted.load(Ordering::Relaxed);
        if wanted != this.applied {
            // A socket that refuses the hint is read as before.
            if let Err(e) = this.inner.set_read_low_water(wanted) {
                tracing::debug!(error = %e, "cannot set the target socket's read low-water mark");
            }
            this.applied = wanted;
        }
        Pin::new(&mut *this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LowWatered<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The downstream pump's side: whether the current answer is streaming in bulk.
#[derive(Debug)]
pub(super) struct Bulk {
    wanted: Arc<AtomicU32>,
    on: bool,
    /// Bytes read since the last ReadyForQuery.
    streamed: u64,
}

impl Bulk {
    /// Whether reads wait for [`BULK_LOW_WATER`] bytes.
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// Notes a read of `n` bytes.
    pub(super) fn read(&mut self, n: usize) {
        self.streamed = self.streamed.saturating_add(n as u64);
    }

    /// After a batch was relayed: `idle` when its last message was ReadyForQuery (the answer
    /// is over).
    pub(super) fn settle(&mut self, idle: bool) {
        if idle {
            self.streamed = 0;
            self.set(false);
        } else if self.streamed >= BULK_AFTER {
            self.set(true);
        }
    }

    /// Resolves after [`BULK_WAIT`] in bulk mode; never otherwise.
    pub(super) async fn lull(on: bool) {
        if on {
            tokio::time::sleep(BULK_WAIT).await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// The wait ran out: read what there is (the next batch decides again).
    pub(super) fn lulled(&mut self) {
        self.set(false);
    }

    fn set(&mut self, on: bool) {
        if self.on != on {
            self.on = on;
            let mark = if on { BULK_LOW_WATER } else { 1 };
            self.wanted.store(mark, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk() -> Bulk {
        Bulk {
            wanted: Arc::new(AtomicU32::new(1)),
            on: false,
            streamed: 0,
        }
    }

    #[test]
    fn only_a_long_answer_goes_bulk_and_its_end_leaves_it() {
        let mut b = bulk();
        b.read(8 * 1024);
        b.settle(false);
        assert!(!b.is_on(), "a short stretch of an answer");
        b.read(BULK_AFTER as usize);
        b.settle(false);
        assert!(b.is_on());
        assert_eq!(b.wanted.load(Ordering::Relaxed), BULK_LOW_WATER);
        b.read(100);
        b.settle(true);
        assert!(!b.is_on(), "ReadyForQuery ends it");
        assert_eq!(b.wanted.load(Ordering::Relaxed), 1);
        b.read(8 * 1024);
        b.settle(false);
        assert!(!b.is_on(), "the count starts again with the next answer");
    }

    #[test]
    fn a_lull_lowers_the_mark_until_the_next_batch() {
        let mut b = bulk();
        b.read(BULK_AFTER as usize);
        b.settle(false);
        b.lulled();
        assert_eq!(b.wanted.load(Ordering::Relaxed), 1);
        // A trickle after a long stretch: bulk again after the batch, as long as no
        // ReadyForQuery came.
        b.read(10);
        b.settle(false);
        assert!(b.is_on());
    }
}
