//! A large result reaches a slow client over TLS in full (issue 10, defect 7).
//!
//! In production the relay's client stream is a TLS stream. tokio-rustls's `poll_write`
//! returns Ok once the plaintext is in the rustls session even when the socket is full, so
//! the encrypted tail of a write can stay buffered until the next write or flush. A relay that
//! wrote a result's last batch without flushing, and then waited for the target (which has
//! nothing more to say: the query is done), left the end of the result, and its
//! ReadyForQuery, in that buffer for good whenever the client read slower than the relay
//! wrote.
//!
//! Here the relay runs in-process between a real loopback TLS connection (small socket
//! buffers, so they fill quickly) and a fake target that answers one Query with several MB of
//! rows and then stays connected. The client reads at a steady, slow pace, so the socket is
//! full whenever the relay writes, its last write included. Without the flush the client
//! waits for ReadyForQuery forever; the hang guard turns that into a failure.

#![allow(clippy::unwrap_used)]

use bytes::{BufMut, BytesMut};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sluice_engine::{Lease, RelayEnd};
use sluice_engine_postgres::cancel::CancelSignal;
use sluice_engine_postgres::codec::{self, Query, Terminate, query, tag};
use sluice_engine_postgres::hooks::{Check, Enforcement, Guard};
use sluice_engine_postgres::proxy::proxy;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Rows in the answer, and the size of each row's single value: 8 MiB in all.
const ROWS: usize = 2_000;
const ROW_BYTES: usize = 4 * 1024;
/// SO_SNDBUF / SO_RCVBUF of both loopback sockets (the kernel doubles it).
const SOCKET_BUFFER: u32 = 16 * 1024;
/// The client's pace: at most this much per read, then a pause.
const READ_CHUNK: usize = 16 * 1024;
const READ_PAUSE: Duration = Duration::from_millis(1);
/// Before its first read the client lets every buffer on the way fill up.
const FIRST_PAUSE: Duration = Duration::from_millis(300);
/// A hang guard, not a timing threshold: the test takes about a second.
const HANG_GUARD: Duration = Duration::from_secs(60);
const SQL: &str = "SELECT payload FROM big";

/// Lets everything through; its only job is to make the relay frame and inspect messages.
struct AllowAll;

impl Guard for AllowAll {
    fn check_sql(&self, _sql: &str) -> Check {
        Check::Allow
    }

    fn check_function_call(&self, _oid: u32) -> Check {
        Check::Allow
    }
}

/// The value of row `i`: recognizable, so a reordered or truncated row would show.
fn row_value(i: usize) -> Vec<u8> {
    let mut value = format!("row {i:05} ").into_bytes();
    value.resize(ROW_BYTES, b'a' + (i % 26) as u8);
    value
}

/// What the fake target answers: RowDescription, the rows, CommandComplete, ReadyForQuery.
fn answer() -> BytesMut {
    let mut buf = BytesMut::with_capacity(ROWS * (ROW_BYTES + 16) + 256);
    // RowDescription: one text column "payload".
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_slice(b"payload\0");
    body.put_i32(0); // table OID
    body.put_i16(0); // column number
    body.put_i32(25); // text
    body.put_i16(-1); // variable length
    body.put_i32(-1); // no type modifier
    body.put_i16(0); // text format
    put_frame(&mut buf, b'T', &body);
    for i in 0..ROWS {
        let value = row_value(i);
        query::encode_data_row([Some(value.as_slice())].into_iter(), &mut buf).unwrap();
    }
    put_frame(&mut buf, b'C', format!("SELECT {ROWS}\0").as_bytes());
    put_frame(&mut buf, tag::READY_FOR_QUERY, b"I");
    buf
}

fn put_frame(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    buf.put_i32(i32::try_from(body.len() + 4).unwrap());
    buf.put_slice(body);
}

/// A connected loopback pair whose buffers are small, so a slow reader fills them quickly.
async fn loopback() -> (TcpStream, TcpStream) {
    let listener = TcpSocket::new_v4().unwrap();
    // Accepted sockets inherit the listener's buffer sizes.
    listener.set_send_buffer_size(SOCKET_BUFFER).unwrap();
    listener.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = listener.local_addr().unwrap();
    let listener = listener.listen(1).unwrap();
    let client = TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(SOCKET_BUFFER).unwrap();
    client.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    let (accepted, connected) = tokio::join!(listener.accept(), client.connect(address));
    (accepted.unwrap().0, connected.unwrap())
}

/// A self-signed certificate for "localhost", and TLS configurations for both ends.
fn tls_configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_der = cert.der().clone();
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Reads one whole frame (tag and body), or None at EOF before one starts.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; codec::HEADER_LEN];
    if stream.read_exact(&mut header).await.is_err() {
        return None;
    }
    let (tag, total) = codec::parse_header(&header, codec::MAX_MESSAGE).unwrap();
    let mut body = vec![0u8; total - codec::HEADER_LEN];
    stream.read_exact(&mut body).await.unwrap();
    Some((tag, body))
}

#[tokio::test]
async fn a_large_result_reaches_a_slow_tls_client_in_full() {
    let (server_tls, client_tls) = tls_configs();
    let (broker_tcp, client_tcp) = loopback().await;
    let (accepted, connected) = tokio::join!(
        TlsAcceptor::from(server_tls).accept(broker_tcp),
        TlsConnector::from(client_tls)
            .connect(ServerName::try_from("localhost").unwrap(), client_tcp),
    );
    let mut broker_side = accepted.unwrap();
    let mut client = connected.unwrap();

    // The fake target: answers the Query at once (the duplex holds the whole answer), then
    // stays connected, as a server does between queries, until the relay closes it.
    let answer = answer();
    let answer_len = answer.len();
    let (mut target, mut database) = tokio::io::duplex(answer_len + 64 * 1024);
    let database_task = tokio::spawn(async move {
        let (tag, body) = read_frame(&mut database).await.expect("a query");
        assert_eq!(tag, tag::QUERY);
        assert_eq!(Query::decode(&body).unwrap().sql, SQL);
        database.write_all(&answer).await.unwrap();
        database.flush().await.unwrap();
        let mut rest = Vec::new();
        database.read_to_end(&mut rest).await.unwrap();
        rest
    });

    let relay = tokio::spawn(async move {
        let enforcement = Enforcement {
            guard: Some(Arc::new(AllowAll)),
            ..Enforcement::default()
        };
        proxy(
            &mut broker_side,
            &mut target,
            &enforcement,
            Lease::unbounded(),
            &CancelSignal::new(),
        )
        .await
    });

    let read_result = async {
        let mut q = BytesMut::new();
        Query {
            sql: SQL.to_owned(),
        }
        .encode(&mut q)
        .unwrap();
        client.write_all(&q).await.unwrap();
        client.flush().await.unwrap();

        // Slow reads: the relay always finds the socket full, also for its last write.
        tokio::time::sleep(FIRST_PAUSE).await;
        let mut received = BytesMut::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut rows = 0;
        let mut total = 0;
        let mut complete = None;
        'read: loop {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the relay closed the stream after {total} of {answer_len} bytes"
            );
            received.extend_from_slice(&chunk[..n]);
            while let Some(frame) = codec::parse(&received, codec::MAX_MESSAGE).unwrap() {
                let (tag, len) = (frame.tag, frame.total_len);
                match tag {
                    b'T' => assert_eq!(rows, 0, "RowDescription after rows"),
                    b'D' => {
                        let values = query::data_row(frame.body).unwrap();
                        assert_eq!(values, vec![Some(row_value(rows).as_slice())]);
                        rows += 1;
                    }
                    b'C' => complete = Some(frame.body.to_vec()),
                    tag::READY_FOR_QUERY => {
                        assert_eq!(frame.body, b"I");
                        total += len;
                        break 'read;
                    }
                    other => panic!("unexpected message {:?}", other as char),
                }
                total += len;
                let _ = received.split_to(len);
            }
            tokio::time::sleep(READ_PAUSE).await;
        }
        assert_eq!(rows, ROWS);
        assert_eq!(complete.unwrap(), format!("SELECT {ROWS}\0").into_bytes());
        assert_eq!(total, answer_len);
    };
    tokio::time::timeout(HANG_GUARD, read_result).await.expect(
        "the client never got the end of the result: the relay left it unflushed in the TLS \
         stream while waiting for the target (issue 10, defect 7)",
    );

    // Close the session the way a client does; the relay ends.
    let close = async {
        let mut x = BytesMut::new();
        Terminate.encode(&mut x);
        client.write_all(&x).await.unwrap();
        client.shutdown().await.unwrap();
        let outcome = relay.await.unwrap();
        assert!(
            matches!(outcome.end, RelayEnd::Closed),
            "the relay ended with {:?}",
            outcome.end
        );
        assert_eq!(outcome.bytes_down, answer_len as u64);
        assert_eq!(database_task.await.unwrap(), x.to_vec());
    };
    tokio::time::timeout(HANG_GUARD, close)
        .await
        .expect("the relay did not end after the client closed the session");
}
