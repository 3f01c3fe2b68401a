//! The byte relay between a client and a target, bounded by a [`Lease`].

use crate::Lease;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Buffer size per direction. 64 KiB keeps bulk transfers (COPY) at a few syscalls per
/// megabyte without making thousands of idle sessions expensive.
const BUF_SIZE: usize = 64 * 1024;

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides finished (one closed, the other was shut down after it).
    Closed,
    /// The lease ended; carries its reason.
    Revoked(String),
    /// An I/O error on either side.
    Error(String),
}

/// What a relay moved and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOutcome {
    /// Bytes from the client to the target.
    pub bytes_up: u64,
    /// Bytes from the target to the client.
    pub bytes_down: u64,
    /// Why it stopped.
    pub end: RelayEnd,
}

/// Copies bytes both ways until either side closes, an error occurs or the lease ends.
///
/// Byte counts are exact when the relay ends by closing or error; on revocation they are not
/// observable from `copy_bidirectional` and are reported as zero (recording counts them itself).
pub async fn relay<C, T>(client: &mut C, target: &mut T, mut lease: Lease) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let copied = tokio::select! {
        res = tokio::io::copy_bidirectional_with_sizes(client, target, BUF_SIZE, BUF_SIZE) => res,
        reason = lease.revoked() => {
            let _ = client.shutdown().await;
            let _ = target.shutdown().await;
            return RelayOutcome { bytes_up: 0, bytes_down: 0, end: RelayEnd::Revoked(reason) };
        }
    };
    match copied {
        Ok((up, down)) => RelayOutcome {
            bytes_up: up,
            bytes_down: down,
            end: RelayEnd::Closed,
        },
        Err(e) => RelayOutcome {
            bytes_up: 0,
            bytes_down: 0,
            end: RelayEnd::Error(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaseHandle;
    use tokio::io::{AsyncReadExt, duplex};

    #[tokio::test]
    async fn relays_both_ways_and_counts_bytes() {
        let (mut client_app, mut client_side) = duplex(1024);
        let (mut target_side, mut target_app) = duplex(1024);
        let task = tokio::spawn(async move {
            relay(&mut client_side, &mut target_side, Lease::unbounded()).await
        });
        client_app.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        target_app.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        target_app.write_all(b"world!").await.unwrap();
        let mut buf = [0u8; 6];
        client_app.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world!");
        drop(client_app);
        drop(target_app);
        let outcome = task.await.unwrap();
        assert_eq!(outcome.bytes_up, 5);
        assert_eq!(outcome.bytes_down, 6);
        assert_eq!(outcome.end, RelayEnd::Closed);
    }

    #[tokio::test]
    async fn ending_the_lease_cuts_the_relay() {
        let (mut client_app, mut client_side) = duplex(1024);
        let (mut target_side, _target_app) = duplex(1024);
        let handle = LeaseHandle::new();
        let lease = handle.lease();
        let task =
            tokio::spawn(async move { relay(&mut client_side, &mut target_side, lease).await });
        handle.end("grant revoked by bob");
        let outcome = task.await.unwrap();
        assert_eq!(
            outcome.end,
            RelayEnd::Revoked("grant revoked by bob".into())
        );
        let mut buf = Vec::new();
        assert_eq!(client_app.read_to_end(&mut buf).await.unwrap(), 0);
    }
}
