//! Upstream login against scripted fake servers (the real-server tests are in `tests/`).

#![allow(clippy::unwrap_used)]
use super::*;
use crate::codec::{BackendKeyData, ParameterStatus, tag};
use std::future::Future;
use tokio::net::TcpListener;

const PASSWORD: &str = "target-password-Xy9";

fn target(address: &str) -> Target {
    Target {
        address: address.to_owned(),
        database: "appdb".into(),
        user: "app".into(),
        password: Secret::new(PASSWORD.to_owned()),
        tls: TargetTls::Disable,
        settings: Vec::new(),
    }
}

/// A one-connection fake server running `script`; returns its address.
async fn fake<F, Fut>(script: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        script(s).await;
    });
    address
}

async fn read_startup(s: &mut TcpStream) -> StartupPacket {
    wire::read_startup(s).await.unwrap()
}

async fn send(s: &mut TcpStream, build: impl FnOnce(&mut BytesMut)) {
    let mut buf = BytesMut::new();
    build(&mut buf);
    s.write_all(&buf).await.unwrap();
}

fn ready_tail(buf: &mut BytesMut) {
    ParameterStatus {
        name: "server_version".into(),
        value: "15.0".into(),
    }
    .encode(buf)
    .unwrap();
    BackendKeyData { pid: 10, key: 20 }.encode(buf);
    ReadyForQuery::Idle.encode(buf);
}

#[test]
fn only_allow_listed_params_are_forwarded() {
    let client = vec![
        ("user".to_owned(), "someone".to_owned()),
        ("database".to_owned(), "appdb".to_owned()),
        ("options".to_owned(), "-c role=postgres".to_owned()),
        ("replication".to_owned(), "true".to_owned()),
        ("application_name".to_owned(), "psql".to_owned()),
        ("datestyle".to_owned(), "ISO".to_owned()),
        ("session_authorization".to_owned(), "postgres".to_owned()),
    ];
    let sent = startup_params(&target("x:1"), &client);
    assert_eq!(
        sent,
        vec![
            ("user".to_owned(), "app".to_owned()),
            ("database".to_owned(), "appdb".to_owned()),
            ("application_name".to_owned(), "psql".to_owned()),
            ("datestyle".to_owned(), "ISO".to_owned()),
        ]
    );
}

#[tokio::test]
async fn cleartext_login_collects_params_and_key() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let address = fake(|mut s| async move {
        let startup = read_startup(&mut s).await;
        assert_eq!(startup.param("user"), Some("app"));
        assert_eq!(startup.param("database"), Some("appdb"));
        send(&mut s, |b| {
            Authentication::CleartextPassword.encode(b).unwrap()
        })
        .await;
        let (t, body) = wire::read_message(&mut s, 1000).await.unwrap();
        assert_eq!(t, tag::PASSWORD);
        tx.send(PasswordMessage::decode(&body).unwrap().password)
            .unwrap();
        send(&mut s, |b| {
            Authentication::Ok.encode(b).unwrap();
            ready_tail(b);
        })
        .await;
        // Keep the connection open for the caller.
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let up = connect(&target(&address), &[]).await.unwrap();
    assert_eq!(rx.await.unwrap().expose(), PASSWORD.as_bytes());
    assert_eq!(up.auth, AuthMethod::Cleartext);
    assert_eq!(up.params, vec![("server_version".into(), "15.0".into())]);
    assert_eq!(up.backend_key, Some((10, 20)));
    assert_eq!(up.ready, ReadyForQuery::Idle);
    assert!(!up.stream.is_tls());
}

#[tokio::test]
async fn md5_sends_the_hash_not_the_password() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            Authentication::Md5Password { salt: [1, 2, 3, 4] }
                .encode(b)
                .unwrap()
        })
        .await;
        let (_, body) = wire::read_message(&mut s, 1000).await.unwrap();
        tx.send(PasswordMessage::decode(&body).unwrap().password)
            .unwrap();
        send(&mut s, |b| {
            Authentication::Ok.encode(b).unwrap();
            ready_tail(b);
        })
        .await;
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let up = connect(&target(&address), &[]).await.unwrap();
    assert_eq!(up.auth, AuthMethod::Md5);
    let sent = rx.await.unwrap();
    assert_eq!(
        sent.expose(),
        md5_hash(b"app", PASSWORD.as_bytes(), [1, 2, 3, 4]).as_bytes()
    );
}

#[tokio::test]
async fn trust_needs_no_password() {
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            Authentication::Ok.encode(b).unwrap();
            ready_tail(b);
        })
        .await;
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    assert_eq!(
        connect(&target(&address), &[]).await.unwrap().auth,
        AuthMethod::Trust
    );
}

#[tokio::test]
async fn a_server_error_carries_its_sqlstate_and_message() {
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            ErrorFields::new(
                crate::codec::Severity::Fatal,
                "3D000",
                "database \"appdb\" does not exist",
            )
            .encode_error(b)
            .unwrap();
        })
        .await;
    })
    .await;
    let err = connect(&target(&address), &[]).await.unwrap_err();
    match err {
        UpstreamError::Server { code, message } => {
            assert_eq!(code, "3D000");
            assert_eq!(message, "database \"appdb\" does not exist");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gssapi_is_named_as_unsupported() {
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            Authentication::Unsupported { code: 7 }.encode(b).unwrap()
        })
        .await;
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let err = connect(&target(&address), &[]).await.unwrap_err();
    assert!(err.to_string().contains("GSSAPI"), "{err}");
}

#[tokio::test]
async fn a_second_password_request_gets_no_answer() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            Authentication::CleartextPassword.encode(b).unwrap()
        })
        .await;
        wire::read_message(&mut s, 1000).await.unwrap();
        send(&mut s, |b| {
            Authentication::Md5Password { salt: [0; 4] }
                .encode(b)
                .unwrap()
        })
        .await;
        // The broker must hang up instead of answering.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        tx.send(rest).unwrap();
    })
    .await;
    let err = connect(&target(&address), &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Protocol(_)), "{err:?}");
    assert!(rx.await.unwrap().is_empty());
}

#[tokio::test]
async fn an_impostor_fails_scram() {
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
        send(&mut s, |b| {
            Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256".into()],
            }
            .encode(b)
            .unwrap();
        })
        .await;
        let (_, body) = wire::read_message(&mut s, 1000).await.unwrap();
        let initial = SaslInitialResponse::decode(&body).unwrap();
        assert_eq!(initial.mechanism, "SCRAM-SHA-256");
        // Without TLS the client cannot bind: gs2 header "n".
        assert!(initial.data.unwrap().starts_with(b"n,,"));
        // A nonce that does not extend the client's: not a real server.
        send(&mut s, |b| {
            Authentication::SaslContinue {
                data: b"r=forged,s=c2FsdA==,i=4096".to_vec(),
            }
            .encode(b)
            .unwrap();
        })
        .await;
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let err = connect(&target(&address), &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Scram(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn require_tls_refuses_a_server_without_it() {
    let address = fake(|mut s| async move {
        let p = read_startup(&mut s).await;
        assert_eq!(p, StartupPacket::SslRequest);
        s.write_all(b"N").await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let mut t = target(&address);
    t.tls = TargetTls::Require { roots: None };
    let err = connect(&t, &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::TlsNotOffered), "{err:?}");
    assert_eq!(err.to_string(), "target does not offer TLS");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = connect(&target(&address), &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn a_server_that_hangs_up_during_login_is_closed() {
    let address = fake(|mut s| async move {
        read_startup(&mut s).await;
    })
    .await;
    let err = connect(&target(&address), &[]).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Closed), "{err:?}");
}

#[test]
fn debug_output_redacts_the_password() {
    let t = target("db:5432");
    let dbg = format!("{t:?}");
    assert!(!dbg.contains(PASSWORD), "{dbg}");
    assert!(dbg.contains("[redacted]"));
}
