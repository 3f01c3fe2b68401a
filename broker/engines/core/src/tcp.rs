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

/// Opens a TCP connection to `address` with [`CONNECT_TIMEOUT`] and `TCP_NODELAY` set.
pub async fn connect(address: &str) -> Result<TcpStream, ConnectError> {
    let fail = |reason: String| ConnectError {
        address: address.to_string(),
        reason,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| fail(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
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
