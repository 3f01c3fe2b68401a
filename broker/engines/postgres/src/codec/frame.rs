//! Tagged framing: one tag byte, an `int32` length counting itself (not the tag), the body.
//!
//! [`check`] decides whether a whole frame is buffered without decoding it; [`parse`] also hands
//! back the body. The maximum length is a parameter because the right bound depends on the
//! phase: login messages are small (a few hundred bytes), so they are capped at
//! [`MAX_LOGIN_MESSAGE`] and an unauthenticated peer cannot make the broker buffer more; later
//! phases may carry rows of up to [`MAX_MESSAGE`], PostgreSQL's own limit on a field value.

use super::CodecError;

/// Bytes before the body: tag and length.
pub const HEADER_LEN: usize = 5;

/// Cap on the length field of any message exchanged before the session is relayed.
pub const MAX_LOGIN_MESSAGE: usize = 64 * 1024;

/// Cap on the length field of any message in a relayed session (1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;

/// One complete tagged message, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message type.
    pub tag: u8,
    /// The bytes after the length field.
    pub body: &'a [u8],
    /// Bytes the whole frame occupies in the buffer (tag, length and body).
    pub total_len: usize,
}

/// Validates a frame header and returns the tag and the whole frame's length in bytes.
///
/// The length field must be at least 4 (it counts itself) and at most `max_len`.
pub fn parse_header(header: &[u8; HEADER_LEN], max_len: usize) -> Result<(u8, usize), CodecError> {
    let tag = header[0];
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let ok = usize::try_from(len)
        .ok()
        .filter(|&l| l >= 4 && l <= max_len);
    match ok {
        Some(len) => Ok((tag, len + 1)),
        None => Err(CodecError::Length {
            what: "message",
            len: i64::from(len),
            min: 4,
            max: max_len,
        }),
    }
}

/// Is a whole tagged frame at the start of `buf`?
///
/// `Ok(None)`: not yet, read more. `Ok(Some((tag, total_len)))`: the first `total_len` bytes
/// are one frame. `Err`: the header is invalid and the connection should be closed.
pub fn check(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, CodecError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (tag, total) = parse_header(header, max_len)?;
    Ok((buf.len() >= total).then_some((tag, total)))
}

/// Like [`check`], but returns the frame with its body.
pub fn parse(buf: &[u8], max_len: usize) -> Result<Option<Frame<'_>>, CodecError> {
    Ok(check(buf, max_len)?.map(|(tag, total_len)| Frame {
        tag,
        body: &buf[HEADER_LEN..total_len],
        total_len,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::test_util::assert_prefixes_incomplete;

    fn header(tag: u8, len: i32) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn prefixes_of_a_frame_are_incomplete() {
        let mut frame = header(b'Q', 4 + 3);
        frame.extend_from_slice(b"ab\0");
        assert_prefixes_incomplete(&frame, MAX_LOGIN_MESSAGE);
        let parsed = parse(&frame, MAX_LOGIN_MESSAGE).unwrap().unwrap();
        assert_eq!(parsed.tag, b'Q');
        assert_eq!(parsed.body, b"ab\0");
        assert_eq!(parsed.total_len, 8);
    }

    #[test]
    fn an_empty_body_is_a_whole_frame() {
        assert_eq!(check(&header(b'X', 4), 10), Ok(Some((b'X', 5))));
    }

    #[test]
    fn extra_bytes_after_a_frame_are_left_alone() {
        let mut buf = header(b'X', 4);
        buf.extend_from_slice(b"Zmore");
        assert_eq!(check(&buf, 10), Ok(Some((b'X', 5))));
    }

    #[test]
    fn lengths_out_of_range_are_refused() {
        for len in [i32::MIN, -1, 0, 3, 101, i32::MAX] {
            let err = check(&header(b'Q', len), 100).unwrap_err();
            assert!(
                matches!(err, CodecError::Length { len: l, min: 4, max: 100, .. } if l == i64::from(len)),
                "{len}: {err:?}"
            );
        }
        assert_eq!(check(&header(b'Q', 100), 100), Ok(None));
    }

    #[test]
    fn the_relay_bound_is_a_gibibyte() {
        assert_eq!(check(&header(b'D', 1 << 30), MAX_MESSAGE), Ok(None));
        assert!(check(&header(b'D', (1 << 30) + 1), MAX_MESSAGE).is_err());
        assert!(check(&header(b'D', 65 * 1024), MAX_LOGIN_MESSAGE).is_err());
    }
}
