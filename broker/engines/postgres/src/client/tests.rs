//! In-process tests of the client side: raw bytes over a duplex pair, exact bytes back.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::codec::{self, BackendMessage, PasswordMessage, Query};
use tokio::io::{AsyncReadExt, DuplexStream, duplex};

fn packet(p: &StartupPacket) -> Vec<u8> {
    let mut buf = BytesMut::new();
    p.encode(&mut buf).unwrap();
    buf.to_vec()
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    packet(&StartupPacket::StartupMessage {
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

fn password(p: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    PasswordMessage {
        password: Secret::new(p.as_bytes().to_vec()),
    }
    .encode(&mut buf)
    .unwrap();
    buf.to_vec()
}

async fn read_all(mut s: DuplexStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

/// The one ErrorResponse in `bytes`, checked to be the only message.
fn only_error(bytes: &[u8]) -> ErrorFields {
    let f = codec::parse(bytes, MAX_LOGIN_MESSAGE).unwrap().unwrap();
    assert_eq!(f.total_len, bytes.len(), "exactly one message expected");
    match BackendMessage::decode(f.tag, f.body).unwrap() {
        BackendMessage::ErrorResponse(e) => e,
        other => panic!("expected an ErrorResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn ssl_request_is_declined_then_startup_is_read() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(&packet(&StartupPacket::SslRequest))
        .await
        .unwrap();
    let task = tokio::spawn(async move { accept_startup(&mut broker).await });
    let mut answer = [0u8; 1];
    app.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    app.write_all(&startup(&[("user", "alice"), ("database", "app")]))
        .await
        .unwrap();
    let hello = task.await.unwrap().unwrap();
    assert_eq!(
        hello,
        ClientHello::Startup {
            params: vec![
                ("user".into(), "alice".into()),
                ("database".into(), "app".into())
            ]
        }
    );
}

#[tokio::test]
async fn gssenc_then_ssl_are_both_declined_but_a_third_probe_is_refused() {
    let (mut app, mut broker) = duplex(4096);
    for p in [StartupPacket::GssEncRequest, StartupPacket::SslRequest] {
        app.write_all(&packet(&p)).await.unwrap();
    }
    app.write_all(&startup(&[("user", "bob")])).await.unwrap();
    let hello = accept_startup(&mut broker).await.unwrap();
    assert!(matches!(hello, ClientHello::Startup { .. }));
    let mut answers = [0u8; 2];
    app.read_exact(&mut answers).await.unwrap();
    assert_eq!(&answers, b"NN");

    let (mut app, mut broker) = duplex(4096);
    for _ in 0..3 {
        app.write_all(&packet(&StartupPacket::SslRequest))
            .await
            .unwrap();
    }
    let err = accept_startup(&mut broker).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    drop(broker);
    let bytes = read_all(app).await;
    assert_eq!(&bytes[..2], b"NN");
    assert_eq!(only_error(&bytes[2..]).code(), Some("08P01"));
}

#[tokio::test]
async fn cancel_request_is_decoded() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(&packet(&StartupPacket::CancelRequest {
        pid: 77,
        key: -12345,
    }))
    .await
    .unwrap();
    let hello = accept_startup(&mut broker).await.unwrap();
    assert_eq!(
        hello,
        ClientHello::Cancel {
            pid: 77,
            key: -12345
        }
    );
}

#[tokio::test]
async fn garbage_first_packets_are_errors_not_panics() {
    let garbage: [&[u8]; 6] = [
        // A TLS ClientHello (direct TLS): its first bytes read as a huge length.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        // HTTP.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // Length 3.
        b"\0\0\0\x03",
        // Negative length.
        b"\xff\xff\xff\xff",
        // Valid length, unknown request code.
        b"\0\0\0\x08\x12\x34\x56\x78",
        // Startup 3.0 whose parameters lack their NULs.
        b"\0\0\0\x0c\0\x03\0\0user",
    ];
    for g in garbage {
        let (mut app, mut broker) = duplex(4096);
        app.write_all(g).await.unwrap();
        let err = accept_startup(&mut broker).await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{g:?}: {err:?}");
        drop(broker);
        let e = only_error(&read_all(app).await);
        assert_eq!(e.severity(), Some("FATAL"));
        assert!(matches!(e.code(), Some("08P01" | "0A000")), "{e:?}");
    }
}

#[tokio::test]
async fn protocol_2_gets_the_familiar_message() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(b"\0\0\0\x08\0\x02\0\0").await.unwrap();
    accept_startup(&mut broker).await.unwrap_err();
    drop(broker);
    let e = only_error(&read_all(app).await);
    assert_eq!(e.code(), Some("0A000"));
    assert!(
        e.message()
            .unwrap()
            .starts_with("unsupported frontend protocol 2.0")
    );
}

#[tokio::test]
async fn a_client_that_closes_at_once_is_closed() {
    let (app, mut broker) = duplex(4096);
    drop(app);
    assert!(matches!(
        accept_startup(&mut broker).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_times_out() {
    let (_app, mut broker) = duplex(4096);
    let started = tokio::time::Instant::now();
    assert!(matches!(
        accept_startup(&mut broker).await,
        Err(ClientError::Timeout)
    ));
    assert!(started.elapsed() >= STARTUP_TIMEOUT);
}

#[tokio::test]
async fn the_right_secret_is_accepted() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(&password("tunnel-secret")).await.unwrap();
    let secret = Secret::new("tunnel-secret".to_owned());
    authenticate(&mut broker, &secret).await.unwrap();
    drop(broker);
    assert_eq!(read_all(app).await, b"R\0\0\0\x08\0\0\0\x03");
}

#[tokio::test]
async fn a_wrong_secret_gets_exact_28p01_bytes_then_eof() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(&password("guess")).await.unwrap();
    let secret = Secret::new("tunnel-secret".to_owned());
    let err = authenticate(&mut broker, &secret).await.unwrap_err();
    assert!(matches!(err, ClientError::WrongSecret));
    // The broker keeps its end open: EOF must come from the shutdown, not from a drop.
    let bytes = tokio::time::timeout(Duration::from_secs(5), read_all(app))
        .await
        .unwrap();

    let mut want = b"R\0\0\0\x08\0\0\0\x03".to_vec();
    let body = format!("SFATAL\0VFATAL\0C28P01\0M{WRONG_SECRET_MESSAGE}\0\0");
    want.push(b'E');
    want.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    want.extend_from_slice(body.as_bytes());
    assert_eq!(bytes, want);
    assert!(!String::from_utf8_lossy(&bytes).contains("tunnel-secret"));
    drop(broker);
}

#[tokio::test]
async fn a_prefix_of_the_secret_is_wrong() {
    let (mut app, mut broker) = duplex(4096);
    app.write_all(&password("tunnel")).await.unwrap();
    let secret = Secret::new("tunnel-secret".to_owned());
    assert!(matches!(
        authenticate(&mut broker, &secret).await,
        Err(ClientError::WrongSecret)
    ));
}

#[tokio::test]
async fn a_query_instead_of_a_password_is_a_protocol_error() {
    let (mut app, mut broker) = duplex(4096);
    let mut buf = BytesMut::new();
    Query {
        sql: "select 1".into(),
    }
    .encode(&mut buf)
    .unwrap();
    app.write_all(&buf).await.unwrap();
    let err = authenticate(&mut broker, &Secret::new("s".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Unexpected { tag: b'Q', .. }),
        "{err:?}"
    );
    drop(broker);
    let bytes = read_all(app).await;
    assert_eq!(only_error(&bytes[9..]).code(), Some("08P01"));
}

#[tokio::test]
async fn a_client_without_a_password_hangs_up() {
    // libpq without PGPASSWORD closes the connection when asked for one (psql then prompts).
    let (app, mut broker) = duplex(4096);
    drop(app);
    let err = authenticate(&mut broker, &Secret::new("s".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Closed | ClientError::Io(_)),
        "{err:?}"
    );
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn database_must_be_the_targets_or_the_libpq_default() {
    assert!(check_params(&params(&[("user", "alice")]), "app").is_ok());
    assert!(check_params(&params(&[("user", "alice"), ("database", "app")]), "app").is_ok());
    assert!(check_params(&params(&[("user", "alice"), ("database", "alice")]), "app").is_ok());
    let r = check_params(&params(&[("user", "alice"), ("database", "other")]), "app").unwrap_err();
    assert_eq!(r.code, "3D000");
    assert!(r.message.contains("\"app\""), "{}", r.message);
    assert!(r.message.contains("\"other\""), "{}", r.message);
}

#[test]
fn replication_is_refused() {
    for v in ["true", "on", "1", "database", "yes"] {
        let r = check_params(&params(&[("user", "a"), ("replication", v)]), "app").unwrap_err();
        assert_eq!(r.code, "0A000");
        assert_eq!(r.to_fields().severity(), Some("FATAL"));
    }
    assert!(check_params(&params(&[("user", "a"), ("replication", "false")]), "app").is_ok());
}
