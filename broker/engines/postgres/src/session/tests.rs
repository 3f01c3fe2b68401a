//! `serve` end to end against fake targets: greeting, refusals, lease, cancel.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::codec::{
    self, BackendMessage, MAX_LOGIN_MESSAGE, PasswordMessage, Query, ReadyForQuery, StartupPacket,
};
use crate::upstream::TargetTls;
use sluice_engine::{LeaseHandle, RelayEnd};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::net::TcpListener;

const SECRET: &str = "tunnel-secret-123";
const PASSWORD: &str = "target-password-Xy9";

fn params(address: &str) -> SessionParams {
    SessionParams {
        subject: "alice".into(),
        tunnel_secret: Secret::new(SECRET.into()),
        target: Target {
            address: address.into(),
            database: "appdb".into(),
            user: "app".into(),
            password: Secret::new(PASSWORD.into()),
            tls: TargetTls::Disable,
            settings: Vec::new(),
        },
        enforcement: Default::default(),
    }
}

fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Sends startup and the password as psql would; returns nothing, the caller reads.
async fn login(app: &mut DuplexStream, database: Option<&str>) {
    let mut p = vec![("user".to_owned(), "alice".to_owned())];
    if let Some(db) = database {
        p.push(("database".into(), db.into()));
    }
    let mut buf = BytesMut::new();
    StartupPacket::StartupMessage { params: p }
        .encode(&mut buf)
        .unwrap();
    PasswordMessage {
        password: Secret::new(SECRET.as_bytes().to_vec()),
    }
    .encode(&mut buf)
    .unwrap();
    app.write_all(&buf).await.unwrap();
}

/// Reads messages until ReadyForQuery or an ErrorResponse (or EOF), returning them.
async fn read_until_ready(app: &mut DuplexStream) -> Vec<BackendMessage> {
    let mut msgs = Vec::new();
    loop {
        let Ok((t, body)) = wire::read_message(app, MAX_LOGIN_MESSAGE).await else {
            return msgs;
        };
        let m = BackendMessage::decode(t, &body).unwrap();
        let stop = matches!(
            m,
            BackendMessage::ReadyForQuery(_) | BackendMessage::ErrorResponse(_)
        );
        msgs.push(m);
        if stop {
            return msgs;
        }
    }
}

fn last_error(msgs: &[BackendMessage]) -> &ErrorFields {
    match msgs.last() {
        Some(BackendMessage::ErrorResponse(e)) => e,
        other => panic!("expected an ErrorResponse, got {other:?}"),
    }
}

/// A fake target with trust auth that answers every Query with a NoticeResponse echoing it.
async fn trusting_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(first) = wire::read_startup(&mut s).await else {
                    return;
                };
                if let StartupPacket::CancelRequest { .. } = first {
                    return;
                }
                let mut buf = BytesMut::new();
                Authentication::Ok.encode(&mut buf).unwrap();
                ParameterStatus {
                    name: "server_version".into(),
                    value: "15.0".into(),
                }
                .encode(&mut buf)
                .unwrap();
                BackendKeyData { pid: 10, key: 20 }.encode(&mut buf);
                ReadyForQuery::Idle.encode(&mut buf);
                s.write_all(&buf).await.unwrap();
                while let Ok((t, body)) = wire::read_message(&mut s, MAX_LOGIN_MESSAGE).await {
                    if t != codec::tag::QUERY {
                        return;
                    }
                    let q = Query::decode(&body).unwrap();
                    let mut buf = BytesMut::new();
                    ErrorFields::new(Severity::Notice, "00000", q.sql)
                        .encode_notice(&mut buf)
                        .unwrap();
                    ReadyForQuery::Idle.encode(&mut buf);
                    s.write_all(&buf).await.unwrap();
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_session_logs_in_with_the_broker_key_and_relays() {
    let address = trusting_target().await;
    let cancels = CancelRegistry::new();
    let (mut app, mut broker) = duplex(64 * 1024);
    let reg = cancels.clone();
    let task = tokio::spawn(async move {
        serve(
            &mut broker,
            params(&address),
            &reg,
            Lease::unbounded(),
            &mut AsGiven,
        )
        .await
    });
    login(&mut app, Some("appdb")).await;
    let msgs = read_until_ready(&mut app).await;
    assert_eq!(
        msgs[0],
        BackendMessage::Authentication(Authentication::CleartextPassword)
    );
    assert_eq!(msgs[1], BackendMessage::Authentication(Authentication::Ok));
    assert_eq!(
        msgs[2],
        BackendMessage::ParameterStatus(ParameterStatus {
            name: "server_version".into(),
            value: "15.0".into()
        })
    );
    let BackendMessage::BackendKeyData(key) = msgs[3] else {
        panic!("{:?}", msgs[3])
    };
    assert_ne!(
        (key.pid, key.key),
        (10, 20),
        "the real key must not reach the client"
    );
    assert_eq!(msgs[4], BackendMessage::ReadyForQuery(ReadyForQuery::Idle));
    assert_eq!(cancels.len(), 1);

    let mut buf = BytesMut::new();
    Query {
        sql: "select 1".into(),
    }
    .encode(&mut buf)
    .unwrap();
    app.write_all(&buf).await.unwrap();
    let (t, body) = wire::read_message(&mut app, MAX_LOGIN_MESSAGE)
        .await
        .unwrap();
    assert_eq!(t, b'N');
    assert_eq!(
        ErrorFields::decode(&body).unwrap().message(),
        Some("select 1")
    );

    drop(app);
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.kind, SessionKind::Query);
    assert_eq!(summary.relay.unwrap().end, RelayEnd::Closed);
    assert!(cancels.is_empty(), "the session's key dies with it");
}

#[tokio::test]
async fn the_libpq_default_database_is_served() {
    let address = trusting_target().await;
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let task = tokio::spawn(async move {
        serve(
            &mut broker,
            params(&address),
            &cancels,
            Lease::unbounded(),
            &mut AsGiven,
        )
        .await
    });
    login(&mut app, Some("alice")).await;
    let msgs = read_until_ready(&mut app).await;
    assert!(
        matches!(msgs.last(), Some(BackendMessage::ReadyForQuery(_))),
        "{msgs:?}"
    );
    drop(app);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn another_database_is_refused_with_3d000() {
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let task = tokio::spawn(async move {
        serve(
            &mut broker,
            params(&free_address()),
            &cancels,
            Lease::unbounded(),
            &mut AsGiven,
        )
        .await
    });
    login(&mut app, Some("postgres")).await;
    let msgs = read_until_ready(&mut app).await;
    let e = last_error(&msgs);
    assert_eq!(e.code(), Some("3D000"));
    assert!(e.message().unwrap().contains("\"appdb\""), "{e:?}");
    assert!(matches!(task.await.unwrap(), Err(SessionError::Refused(_))));
}

#[tokio::test]
async fn a_wrong_secret_is_auth_failed() {
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let task = tokio::spawn(async move {
        let mut p = params(&free_address());
        p.tunnel_secret = Secret::new("other".into());
        serve(&mut broker, p, &cancels, Lease::unbounded(), &mut AsGiven).await
    });
    login(&mut app, None).await;
    let msgs = read_until_ready(&mut app).await;
    assert_eq!(last_error(&msgs).code(), Some("28P01"));
    assert!(matches!(task.await.unwrap(), Err(SessionError::AuthFailed)));
}

#[tokio::test]
async fn an_unreachable_target_is_08001_naming_the_address() {
    let address = free_address();
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let a = address.clone();
    let task = tokio::spawn(async move {
        serve(
            &mut broker,
            params(&a),
            &cancels,
            Lease::unbounded(),
            &mut AsGiven,
        )
        .await
    });
    login(&mut app, None).await;
    let msgs = read_until_ready(&mut app).await;
    let e = last_error(&msgs);
    assert_eq!(e.code(), Some("08001"));
    assert_eq!(e.severity(), Some("FATAL"));
    let m = e.message().unwrap();
    assert!(
        m.starts_with(&format!(
            "sluice: cannot reach the target of this resource ({address}): "
        )),
        "{m}"
    );
    assert!(matches!(
        task.await.unwrap(),
        Err(SessionError::Upstream(_))
    ));
}

#[tokio::test]
async fn an_ended_lease_refuses_the_session() {
    let handle = LeaseHandle::new();
    handle.end("grant expired");
    let lease = handle.lease();
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let task = tokio::spawn(async move {
        serve(
            &mut broker,
            params(&free_address()),
            &cancels,
            lease,
            &mut AsGiven,
        )
        .await
    });
    login(&mut app, None).await;
    let msgs = read_until_ready(&mut app).await;
    let e = last_error(&msgs);
    assert_eq!(e.code(), Some("57P01"));
    assert!(e.message().unwrap().contains("grant expired"));
    assert!(matches!(task.await.unwrap(), Err(SessionError::Revoked(_))));
}

#[tokio::test]
async fn a_lease_ending_during_login_cuts_it_short() {
    // A target that accepts and then says nothing: login would wait for LOGIN_TIMEOUT.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        accepted_tx.send(()).unwrap();
        let mut s = s;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let handle = LeaseHandle::new();
    let lease = handle.lease();
    let (mut app, mut broker) = duplex(64 * 1024);
    let cancels = CancelRegistry::new();
    let task = tokio::spawn(async move {
        serve(&mut broker, params(&address), &cancels, lease, &mut AsGiven).await
    });
    login(&mut app, None).await;
    accepted_rx.await.unwrap();
    handle.end("revoked by bob");
    let msgs = tokio::time::timeout(Duration::from_secs(5), read_until_ready(&mut app))
        .await
        .unwrap();
    assert_eq!(last_error(&msgs).code(), Some("57P01"));
    assert!(matches!(task.await.unwrap(), Err(SessionError::Revoked(r)) if r == "revoked by bob"));
}

#[tokio::test]
async fn a_cancel_request_is_a_cancel_session() {
    let cancels = CancelRegistry::new();
    let (mut app, mut broker) = duplex(1024);
    let mut buf = BytesMut::new();
    StartupPacket::CancelRequest { pid: 1, key: 2 }
        .encode(&mut buf)
        .unwrap();
    app.write_all(&buf).await.unwrap();
    let summary = serve(
        &mut broker,
        params(&free_address()),
        &cancels,
        Lease::unbounded(),
        &mut AsGiven,
    )
    .await
    .unwrap();
    assert_eq!(
        summary,
        SessionSummary {
            kind: SessionKind::Cancel { forwarded: false },
            relay: None
        }
    );
}
