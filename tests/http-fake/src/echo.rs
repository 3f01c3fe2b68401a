//! The WebSocket echo session behind `GET /ws`, after the 101: every text or binary message
//! (fragments reassembled) goes back as one unmasked frame of the same type, a ping is answered
//! with a pong carrying its payload, a close with a close carrying the client's status code.
//! A frame that can never be valid ends the session with close 1002 (protocol error).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ws;

/// Largest reassembled message accepted (larger ones end the session with close 1009).
const MAX_MESSAGE: usize = 16 << 20;

/// Runs the echo on an upgraded connection until the client closes or goes away.
pub async fn session<S>(mut io: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    // Opcode and payload of a fragmented message still being received.
    let mut partial: Option<(u8, Vec<u8>)> = None;
    loop {
        let (frame, used) = match ws::parse(&buf) {
            Ok(Some(f)) => f,
            Ok(None) => match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(_) => return close(&mut io, 1002).await,
        };
        buf.drain(..used);
        let reply = match frame.opcode {
            ws::PING => ws::encode(ws::PONG, &frame.payload),
            ws::PONG => continue,
            ws::CLOSE => {
                // Echo the status code only (the reason is optional); an empty close stays empty.
                let code = frame.payload.get(..2).unwrap_or_default();
                let _ = io.write_all(&ws::encode(ws::CLOSE, code)).await;
                let _ = io.shutdown().await;
                return;
            }
            ws::CONTINUATION => {
                let Some((opcode, mut message)) = partial.take() else {
                    return close(&mut io, 1002).await;
                };
                message.extend_from_slice(&frame.payload);
                if message.len() > MAX_MESSAGE {
                    return close(&mut io, 1009).await;
                }
                if !frame.fin {
                    partial = Some((opcode, message));
                    continue;
                }
                ws::encode(opcode, &message)
            }
            opcode => {
                if partial.is_some() {
                    return close(&mut io, 1002).await;
                }
                if !frame.fin {
                    partial = Some((opcode, frame.payload));
                    continue;
                }
                ws::encode(opcode, &frame.payload)
            }
        };
        if io.write_all(&reply).await.is_err() || io.flush().await.is_err() {
            return;
        }
    }
}

/// Sends a close frame with `code` and ends the connection.
async fn close<S>(io: &mut S, code: u16)
where
    S: AsyncWrite + Unpin,
{
    let _ = io
        .write_all(&ws::encode(ws::CLOSE, &code.to_be_bytes()))
        .await;
    let _ = io.shutdown().await;
}
