//! Socket options tokio and socket2 do not expose.
//!
//! [`set_read_low_water`] sets `SO_RCVLOWAT`: how many bytes must be waiting before the kernel
//! reports the socket readable (and wakes whoever waits in `epoll`). A relay that streams a
//! large answer is woken once per 64 KiB instead of once per write of its peer (PostgreSQL
//! writes 8 KiB at a time), and each wake-up is a context switch. A read still returns what is
//! there: the mark only decides when readiness is signalled. Linux signals at once when the
//! mark is lowered below what is already waiting, and also before the receive window runs
//! out, so a mark never stalls a peer that is sending.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Sets `SO_RCVLOWAT` on `socket` to `bytes` (1 is the default: readable as soon as anything
/// arrives).
#[allow(unsafe_code)]
pub fn set_read_low_water(socket: &impl AsFd, bytes: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes.max(1))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "low-water mark too large"))?;
    let len = int_len()?;
    // SAFETY: the descriptor is borrowed from a live socket for the duration of the call, and
    // the option value points to a `c_int` on this stack frame whose size is passed with it.
    let done = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            len,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `SO_RCVLOWAT` of `socket`.
#[allow(unsafe_code)]
pub fn read_low_water(socket: &impl AsFd) -> io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = int_len()?;
    // SAFETY: as above; `value` and `len` are valid for writes and `len` says how big
    // `value` is.
    let done = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_mut(&mut value).cast(),
            &raw mut len,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(value).map_err(|_| io::Error::other("negative low-water mark"))
}

/// The size of a `c_int` option value, as `setsockopt` takes it.
fn int_len() -> io::Result<libc::socklen_t> {
    libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::other("socklen_t cannot hold the size of an int"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn the_mark_delays_readiness_until_enough_is_waiting_and_lowering_it_signals() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut sender = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut receiver, _) = listener.accept().await.expect("accept");
        // A stream under way (the case the mark is for): the receive window has opened up.
        let warm = vec![3u8; 4 << 20];
        let (sent, got) = tokio::join!(sender.write_all(&warm), async {
            let mut sink = vec![0u8; warm.len()];
            receiver.read_exact(&mut sink).await
        });
        sent.expect("warm-up send");
        got.expect("warm-up read");
        set_read_low_water(&receiver, 64 * 1024).expect("set");
        assert_eq!(read_low_water(&receiver).expect("get"), 64 * 1024);

        // tokio keeps a socket readable until a read finds nothing: find nothing.
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            receiver.try_read(&mut buf).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock)
        );
        sender.write_all(&[7u8; 1000]).await.expect("send");
        let early = tokio::time::timeout(Duration::from_millis(200), receiver.readable()).await;
        assert!(early.is_err(), "readable with 1000 of 65536 bytes waiting");

        // Lowered below what is waiting: readable at once, and a read returns what is there.
        set_read_low_water(&receiver, 1).expect("lower");
        tokio::time::timeout(Duration::from_secs(10), receiver.readable())
            .await
            .expect("readable after lowering the mark")
            .expect("readable");
        let n = receiver.read(&mut buf).await.expect("read");
        assert_eq!(n, 1000);

        // Raised again (with nothing left to read), a large write crosses it.
        assert_eq!(
            receiver.try_read(&mut buf).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock)
        );
        set_read_low_water(&receiver, 64 * 1024).expect("raise");
        sender
            .write_all(&vec![1u8; 128 * 1024])
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(10), receiver.readable())
            .await
            .expect("readable once the mark is crossed")
            .expect("readable");
    }
}
