//! The TCP engine: connect to the target and relay bytes opaquely.

use crate::{Lease, RelayOutcome, relay};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a connect to a target may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The target could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach {address}: {reason}")]
pub struct ConnectError {
    /// The `host:port` that was dialled.
    pub address: String,
    /// What went wrong, from the OS or the timeout.
    pub reason: String,
}

/// How long a connection may be idle before the kernel starts probing the peer.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the connection is dropped: a dead peer is noticed within
/// about two minutes of silence.
pub const KEEPALIVE_RETRIES: u32 = 6;

/// Sets `TCP_NODELAY` (every relayed message is a whole one, sent at once) and TCP keepalive,
/// so a client or target that vanished without a FIN (a laptop closed, a network cut) ends its
/// session, and any statement it holds for approval, instead of keeping both until the grant ends.
pub fn tune(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Opens a TCP connection to `address` with [`CONNECT_TIMEOUT`], tuned by [`tune`].
pub async fn connect(address: &str) -> Result<TcpStream, ConnectError> {
    let fail = |reason: String| ConnectError {
        address: address.to_string(),
        reason,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| fail(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    tune(&stream).map_err(|e| fail(e.to_string()))?;
    Ok(stream)
}

/// Serves one tunnel to a TCP resource: connect, then relay until either side closes or the
/// lease ends.
pub async fn serve<C>(
    client: &mut C,
    address: &str,
    lease: Lease,
) -> Result<RelayOutcome, ConnectError>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut target = connect(address).await?;
    Ok(relay(client, &mut target, lease).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_connection_is_tuned_with_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (dialled, accepted) = tokio::join!(connect(&address), listener.accept());
        let dialled = dialled.expect("connect");
        let (accepted, _) = accepted.expect("accept");
        tune(&accepted).expect("tune");
        for stream in [&dialled, &accepted] {
            let socket = socket2::SockRef::from(stream);
            assert!(socket.keepalive().expect("SO_KEEPALIVE"));
            assert_eq!(socket.tcp_keepalive_time().expect("idle"), KEEPALIVE_IDLE);
            assert_eq!(
                socket.tcp_keepalive_interval().expect("interval"),
                KEEPALIVE_INTERVAL
            );
            assert_eq!(
                socket.tcp_keepalive_retries().expect("retries"),
                KEEPALIVE_RETRIES
            );
            assert!(stream.nodelay().expect("nodelay"));
        }
    }
}
