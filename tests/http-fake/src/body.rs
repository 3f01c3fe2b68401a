//! Response bodies that are not one buffer: a channel-fed body for responses paced by a task
//! (chunked customers, server-sent events), and two generators for the large bodies, which
//! produce their chunks on demand so that a slow reader holds the server back (no buffering of
//! a whole large body, no task per response).
//!
//! hyper writes each frame as it is polled and flushes whenever the body is pending, so a chunk
//! sent on the channel reaches the socket at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Size of each chunk of the large bodies.
pub const CHUNK: usize = 64 * 1024;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// A body fed chunk by chunk from a channel; it ends when the sender is dropped. Without a
/// known length hyper sends it chunked.
#[derive(Debug)]
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The byte at `offset` of every `/big` body: `offset % 251`, a pattern that does not line up
/// with any power-of-two chunking, so reordered, dropped or repeated chunks show.
pub fn big_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// The `/big` pattern long enough to slice any chunk from it without copying.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| (0..(CHUNK + 251) as u64).map(big_byte).collect())
}

/// `/big`: `len` bytes of the [`big_byte`] pattern with an exact size (so Content-Length).
#[derive(Debug)]
pub struct BigBody {
    /// Bytes already produced.
    sent: u64,
    /// Total length.
    len: u64,
}

impl BigBody {
    pub fn new(len: u64) -> Self {
        BigBody { sent: 0, len }
    }
}

impl Body for BigBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.len - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        let start = (self.sent % 251) as usize;
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(pattern().slice(start..start + n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

/// `/big.json`: `{"rows":[{"id":0,"email":"u0@example.com","note":"..."},...]}`, rows added
/// until at least `target` bytes have been produced, in chunks of about [`CHUNK`] bytes, with
/// no length announced (so chunked).
#[derive(Debug)]
pub struct BigJsonBody {
    /// Bytes produced so far.
    sent: u64,
    /// Size after which no more rows are started.
    target: u64,
    /// Next row id.
    next: u64,
    /// The closing `]}` has been sent.
    done: bool,
}

impl BigJsonBody {
    pub fn new(target: u64) -> Self {
        BigJsonBody {
            sent: 0,
            target,
            next: 0,
            done: false,
        }
    }
}

impl Body for BigJsonBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut out = String::with_capacity(CHUNK + 256);
        if self.next == 0 && self.sent == 0 {
            out.push_str("{\"rows\":[");
        }
        // `"]}"` is 2 bytes: stop starting rows once the document would reach its target.
        while out.len() < CHUNK && self.sent + (out.len() as u64) + 2 < self.target {
            let i = self.next;
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"id\":{i},\"email\":\"u{i}@example.com\",\"note\":\"row {i} of the big JSON document; filler text to give each row some weight\"}}"
            ));
            self.next += 1;
        }
        if self.sent + (out.len() as u64) + 2 >= self.target {
            out.push_str("]}");
            self.done = true;
        }
        self.sent += out.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect<B: Body<Data = Bytes, Error = Infallible>>(b: B) -> (Vec<u8>, usize) {
        let mut b = std::pin::pin!(b);
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(f) = b.frame().await {
            let data = f
                .unwrap_or_else(|e| match e {})
                .into_data()
                .unwrap_or_default();
            assert!(data.len() <= CHUNK + 256, "chunk of {}", data.len());
            out.extend_from_slice(&data);
            frames += 1;
        }
        (out, frames)
    }

    #[tokio::test]
    async fn big_is_the_pattern_in_64k_chunks() {
        let len = 3 * CHUNK as u64 + 17;
        assert_eq!(BigBody::new(len).size_hint().exact(), Some(len));
        let (bytes, frames) = collect(BigBody::new(len)).await;
        assert_eq!(frames, 4);
        assert_eq!(bytes.len() as u64, len);
        assert!(
            bytes
                .iter()
                .enumerate()
                .all(|(i, b)| *b == big_byte(i as u64))
        );
    }

    #[tokio::test]
    async fn big_json_is_valid_and_about_the_target_size() {
        for target in [0, 10, MIB, 2 * MIB + 5] {
            let (bytes, _) = collect(BigJsonBody::new(target)).await;
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
            let rows = v["rows"].as_array().expect("rows");
            assert!(bytes.len() as u64 >= target, "{} < {target}", bytes.len());
            assert!(
                (bytes.len() as u64) < target.max(11) + 200,
                "{} for {target}",
                bytes.len()
            );
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(row["id"], i);
                assert_eq!(row["email"], format!("u{i}@example.com"));
            }
        }
    }
}
