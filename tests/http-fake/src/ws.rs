//! The WebSocket pieces (RFC 6455) a test server needs, as a pure codec: the handshake's
//! accept key, check-then-parse of client frames (masked; fragmented messages reassembled by
//! the caller, as [`crate::echo`] and the fake API server's exec do) and encoding of unmasked
//! server frames.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Continuation of a fragmented message.
pub const CONTINUATION: u8 = 0x0;
/// Text message.
pub const TEXT: u8 = 0x1;
/// Binary message.
pub const BINARY: u8 = 0x2;
/// Close.
pub const CLOSE: u8 = 0x8;
/// Ping.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// Largest frame accepted from a client.
const MAX_FRAME: u64 = 16 << 20;

/// One frame, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Last fragment of its message.
    pub fin: bool,
    /// Opcode (see the constants).
    pub opcode: u8,
    /// Payload after unmasking.
    pub payload: Vec<u8>,
}

/// A frame that can never become valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Parses one client frame from the front of `buf`: `Ok(None)` while incomplete, else the
/// frame and how many bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, Invalid> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    if buf[0] & 0x70 != 0 {
        return Err(Invalid("reserved bits set"));
    }
    let opcode = buf[0] & 0x0f;
    let control = opcode & 0x8 != 0;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(Invalid("unknown opcode"));
    }
    if control && (!fin || buf[1] & 0x7f > 125) {
        return Err(Invalid(
            "control frames must be whole and at most 125 bytes",
        ));
    }
    let masked = buf[1] & 0x80 != 0;
    if !masked {
        return Err(Invalid("client frames must be masked"));
    }
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err(Invalid("frame too large"));
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    let len = usize::try_from(len).map_err(|_| Invalid("frame too large"))?;
    let Some(body) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = body
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at + len,
    )))
}

/// Encodes one final, unmasked server frame.
pub fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn incomplete_then_whole() {
        let bytes = masked(BINARY, true, &[0, b'h', b'i']);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let (frame, used) = parse(&bytes).expect("valid").expect("complete");
        assert_eq!(used, bytes.len());
        assert_eq!(
            frame,
            Frame {
                fin: true,
                opcode: BINARY,
                payload: vec![0, b'h', b'i']
            }
        );
        let long = vec![7u8; 300];
        let (frame, _) = parse(&masked(BINARY, false, &long))
            .expect("valid")
            .expect("complete");
        assert!(!frame.fin);
        assert_eq!(frame.payload, long);
    }

    #[test]
    fn bad_control_frames_and_opcodes_are_invalid() {
        assert!(parse(&masked(PING, false, b"x")).is_err());
        assert!(parse(&masked(PING, true, &[0u8; 126])).is_err());
        assert!(parse(&masked(0x3, true, b"x")).is_err());
        assert!(parse(&masked(PING, true, &[0u8; 125])).is_ok());
    }

    #[test]
    fn encode_lengths() {
        assert_eq!(encode(TEXT, b"hi"), vec![0x81, 2, b'h', b'i']);
        let mid = encode(BINARY, &[0u8; 126]);
        assert_eq!(&mid[..4], &[0x82, 126, 0, 126]);
        let big = encode(BINARY, &[0u8; 70_000]);
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(big[2..10], 70_000u64.to_be_bytes());
    }

    #[test]
    fn unmasked_is_invalid() {
        assert!(parse(&encode(BINARY, b"x")).is_err());
    }
}
