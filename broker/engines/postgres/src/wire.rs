//! Reading whole frames from a stream during login, on top of the pure [`crate::codec`].
//!
//! Reads take exactly one frame's bytes (header first, then the length it announces) and
//! never read ahead. That costs two reads per login message, a handful per session, and buys
//! a guarantee the relay depends on: when login ends, no byte of either peer sits in a buffer
//! of ours, so the relay can start on the raw streams. It also means bytes a server sends
//! between its TLS answer and the handshake cannot be mistaken for protocol data
//! (CVE-2021-23222).
//!
//! Timeouts are the callers' business: they know which deadline applies.

use crate::codec::{self, CodecError, HEADER_LEN, StartupPacket};
use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer closed the stream (before or within a frame).
    #[error("connection closed")]
    Closed,
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The stream failed.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        // A close in the middle of a frame is still just a close.
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(e)
        }
    }
}

/// Reads and decodes one untagged startup packet.
pub(crate) async fn read_startup<S>(stream: &mut S) -> Result<StartupPacket, ReadError>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = codec::startup::startup_len(&header)?;
    let mut packet = vec![0u8; len];
    packet[..4].copy_from_slice(&header);
    stream.read_exact(&mut packet[4..]).await?;
    Ok(StartupPacket::decode(&packet)?)
}

/// Reads one tagged frame of at most `max_len` (as the length field counts) and returns its
/// tag and body.
pub(crate) async fn read_message<S>(
    stream: &mut S,
    max_len: usize,
) -> Result<(u8, Vec<u8>), ReadError>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let (tag, total) = codec::parse_header(&header, max_len)?;
    let mut body = vec![0u8; total - HEADER_LEN];
    stream.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Writes `buf` and flushes, so a message is on the wire before the caller waits for the
/// answer (TLS streams hold data until flushed).
pub(crate) async fn send<S>(stream: &mut S, buf: &BytesMut) -> io::Result<()>
where
    S: AsyncWrite + Unpin + ?Sized,
{
    stream.write_all(buf).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn reads_exactly_one_frame() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"Z\0\0\0\x05IX\0\0\0\x04").await.unwrap();
        assert_eq!(
            read_message(&mut b, 100).await.unwrap(),
            (b'Z', b"I".to_vec())
        );
        assert_eq!(read_message(&mut b, 100).await.unwrap(), (b'X', vec![]));
    }

    #[tokio::test]
    async fn a_close_mid_frame_is_closed() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"Z\0\0\0\x05").await.unwrap();
        drop(a);
        assert!(matches!(
            read_message(&mut b, 100).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_reading_it() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"D\x7f\xff\xff\xff").await.unwrap();
        assert!(matches!(
            read_message(&mut b, 100).await,
            Err(ReadError::Codec(CodecError::Length { .. }))
        ));
    }
}
