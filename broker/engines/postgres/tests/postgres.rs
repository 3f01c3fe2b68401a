//! End-to-end tests of `serve` against a real PostgreSQL 15 (started per test as the
//! `postgres` OS user). They fail, never skip, when PostgreSQL is not installed.

#![allow(clippy::unwrap_used)]

mod support;

use sluice_engine::RelayEnd;
use sluice_engine_postgres::{
    AuthMethod, CancelRegistry, SessionError, SessionKind, Target, TargetTls, UpstreamError,
    connect,
};
use sluice_shared::Secret;
use std::time::{Duration, Instant};
use support::client::{self, TUNNEL_SECRET};
use support::cluster::{self, APP_PASSWORD, CLEARTEXT_PASSWORD, Cluster, DATABASE, MD5_PASSWORD};

/// Runs a test body with a deadline, so a hang fails the test (and the cluster is still
/// stopped by its drop) instead of blocking the run.
async fn within<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("test did not finish within 120s");
}

fn target(cluster: &Cluster, user: &str, password: &str, tls: TargetTls) -> Target {
    Target {
        address: cluster.address(),
        database: DATABASE.to_owned(),
        user: user.to_owned(),
        password: Secret::new(password.to_owned()),
        tls,
        settings: Vec::new(),
    }
}

/// Every target credential, and the MD5 forms PostgreSQL stores and exchanges.
fn forbidden() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (user, password) in [
        ("app", APP_PASSWORD),
        ("md5user", MD5_PASSWORD),
        ("pwuser", CLEARTEXT_PASSWORD),
        ("app", "wrong-target-password-Zq8"),
    ] {
        v.push(password.as_bytes().to_vec());
        let stored = postgres_protocol::password::md5(password.as_bytes(), user);
        v.push(stored.as_bytes().to_vec());
        v.push(stored.as_bytes()[3..].to_vec());
    }
    v
}

fn assert_no_credential(what: &str, bytes: &[u8]) {
    for needle in forbidden() {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{what} contains a target credential ({})",
            String::from_utf8_lossy(&needle)
        );
    }
}

/// Logs in through `serve`, runs `select 41+1`, terminates; returns the client's bytes.
async fn forty_two(target: Target) -> Vec<u8> {
    let cancels = CancelRegistry::new();
    let (mut c, task) = client::open("alice", target, &cancels);
    c.login(TUNNEL_SECRET, DATABASE).await.unwrap();
    let rows = c.query("select 41+1").await.unwrap();
    assert_eq!(rows, vec![vec![Some("42".to_owned())]]);
    c.terminate().await;
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.kind, SessionKind::Query);
    assert_eq!(summary.relay.unwrap().end, RelayEnd::Closed);
    c.received
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_flow_with_every_auth_method() {
    within(async {
        let pg = Cluster::start();
        for (user, password, method) in [
            ("app", APP_PASSWORD, AuthMethod::ScramSha256),
            ("md5user", MD5_PASSWORD, AuthMethod::Md5),
            ("pwuser", CLEARTEXT_PASSWORD, AuthMethod::Cleartext),
            ("trustuser", "unused", AuthMethod::Trust),
        ] {
            let up = connect(&target(&pg, user, password, TargetTls::Disable), &[])
                .await
                .unwrap();
            assert_eq!(up.auth, method, "{user}");
            assert!(up.backend_key.is_some());
            let received = forty_two(target(&pg, user, password, TargetTls::Disable)).await;
            assert_no_credential(user, &received);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_params_reach_the_server_and_options_do_not() {
    within(async {
        let pg = Cluster::start();
        let cancels = CancelRegistry::new();
        let (mut c, task) = client::open(
            "alice",
            target(&pg, "app", APP_PASSWORD, TargetTls::Disable),
            &cancels,
        );
        c.login(TUNNEL_SECRET, DATABASE).await.unwrap();
        let rows = c
            .query("select current_user, current_database(), current_setting('application_name')")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![vec![
                Some("app".into()),
                Some(DATABASE.into()),
                Some("sluice-test".into())
            ]]
        );
        c.terminate().await;
        task.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_modes_and_channel_binding() {
    within(async {
        let pg = Cluster::start();
        let roots = pg.roots();

        let up = connect(
            &target(&pg, "app", APP_PASSWORD, TargetTls::Require { roots: None }),
            &[],
        )
        .await
        .unwrap();
        assert!(up.stream.is_tls());
        assert_eq!(up.auth, AuthMethod::ScramSha256Plus);

        let full = TargetTls::VerifyFull {
            roots: roots.clone(),
            server_name: "localhost".into(),
        };
        let up = connect(&target(&pg, "app", APP_PASSWORD, full.clone()), &[])
            .await
            .unwrap();
        assert_eq!(up.auth, AuthMethod::ScramSha256Plus);

        // Chain checked, name not: the address is an IP the certificate also names, but
        // `Require` must not care either way.
        let ca_only = TargetTls::Require {
            roots: Some(roots.clone()),
        };
        connect(&target(&pg, "app", APP_PASSWORD, ca_only), &[])
            .await
            .unwrap();

        let wrong_name = TargetTls::VerifyFull {
            roots: roots.clone(),
            server_name: "db.elsewhere.example".into(),
        };
        let err = connect(&target(&pg, "app", APP_PASSWORD, wrong_name), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Tls(_)), "{err:?}");

        let untrusted = TargetTls::VerifyFull {
            roots: std::sync::Arc::new({
                let mut r = rustls::RootCertStore::empty();
                r.add(rustls_pki_types::CertificateDer::from(
                    rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                        .unwrap()
                        .cert
                        .der()
                        .to_vec(),
                ))
                .unwrap();
                r
            }),
            server_name: "localhost".into(),
        };
        let err = connect(&target(&pg, "app", APP_PASSWORD, untrusted), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Tls(_)), "{err:?}");

        // MD5 and cleartext over TLS, and a whole session relayed over TLS.
        let up = connect(&target(&pg, "md5user", MD5_PASSWORD, full.clone()), &[])
            .await
            .unwrap();
        assert_eq!(up.auth, AuthMethod::Md5);
        let received = forty_two(target(&pg, "app", APP_PASSWORD, full)).await;
        assert_no_credential("TLS session", &received);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_target_password_is_28p01_without_the_password() {
    within(async {
        let pg = Cluster::start();
        let cancels = CancelRegistry::new();
        let wrong = "wrong-target-password-Zq8";
        for tls in [TargetTls::Disable, TargetTls::Require { roots: None }] {
            let (mut c, task) = client::open("alice", target(&pg, "app", wrong, tls), &cancels);
            let e = c.login(TUNNEL_SECRET, DATABASE).await.unwrap_err();
            c.drain().await;
            assert_eq!(e.code(), Some("28P01"));
            assert_eq!(e.severity(), Some("FATAL"));
            let m = e.message().unwrap();
            assert!(
                m.starts_with("sluice: the broker could not log in to the target: "),
                "{m}"
            );
            assert_no_credential("client bytes", &c.received);
            let err = task.await.unwrap().unwrap_err();
            assert!(matches!(err, SessionError::Upstream(_)), "{err:?}");
            assert_no_credential("error text", format!("{err} {err:?}").as_bytes());
        }
        // The MD5 path too: the salted response must not come back either.
        let (mut c, task) = client::open(
            "alice",
            target(&pg, "md5user", wrong, TargetTls::Disable),
            &cancels,
        );
        assert_eq!(
            c.login(TUNNEL_SECRET, DATABASE).await.unwrap_err().code(),
            Some("28P01")
        );
        c.drain().await;
        assert_no_credential("client bytes", &c.received);
        task.await.unwrap().unwrap_err();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_tunnel_secret_never_reaches_the_target() {
    within(async {
        let pg = Cluster::start();
        let cancels = CancelRegistry::new();
        let (mut c, task) = client::open(
            "alice",
            target(&pg, "app", APP_PASSWORD, TargetTls::Disable),
            &cancels,
        );
        let e = c.login("not-the-secret", DATABASE).await.unwrap_err();
        c.drain().await;
        assert_eq!(e.code(), Some("28P01"));
        assert!(e.message().unwrap().contains("tunnel secret is wrong"));
        assert!(matches!(task.await.unwrap(), Err(SessionError::AuthFailed)));
        assert_no_credential("client bytes", &c.received);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_is_down_is_08001() {
    within(async {
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = down.local_addr().unwrap().to_string();
        drop(down);
        let cancels = CancelRegistry::new();
        let t = Target {
            address: address.clone(),
            database: DATABASE.into(),
            user: "app".into(),
            password: Secret::new(APP_PASSWORD.into()),
            tls: TargetTls::Disable,
            settings: Vec::new(),
        };
        let (mut c, task) = client::open("alice", t, &cancels);
        let e = c.login(TUNNEL_SECRET, DATABASE).await.unwrap_err();
        c.drain().await;
        assert_eq!(e.code(), Some("08001"));
        assert!(
            e.message().unwrap().starts_with(&format!(
                "sluice: cannot reach the target of this resource ({address}): "
            )),
            "{e:?}"
        );
        assert!(matches!(
            task.await.unwrap(),
            Err(SessionError::Upstream(UpstreamError::Unreachable { .. }))
        ));
        assert_no_credential("client bytes", &c.received);
    })
    .await;
}

/// Runs `select pg_sleep(30)` in one session and cancels it through a second tunnel; checks
/// that another subject's cancel with the same key does nothing.
async fn cancel_through_the_broker(pg: &Cluster, tls: TargetTls) {
    let cancels = CancelRegistry::new();
    let (mut session, task) = client::open(
        "alice",
        target(pg, "app", APP_PASSWORD, tls.clone()),
        &cancels,
    );
    let key = session.login(TUNNEL_SECRET, DATABASE).await.unwrap();
    session.send_query("select pg_sleep(30)").await;
    // A cancel that arrives before the query starts cancels nothing: wait until it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql_value(
        "select count(*) from pg_stat_activity where state = 'active' and query = 'select pg_sleep(30)'",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the sleep query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut other, other_task) = client::open(
        "mallory",
        target(pg, "app", APP_PASSWORD, tls.clone()),
        &cancels,
    );
    other.cancel(key.pid, key.key).await;
    assert_eq!(
        other_task.await.unwrap().unwrap().kind,
        SessionKind::Cancel { forwarded: false }
    );
    assert!(
        other.received.is_empty(),
        "a cancel request is never answered"
    );
    let early = tokio::time::timeout(Duration::from_millis(700), session.recv()).await;
    assert!(
        early.is_err(),
        "another subject's cancel must not reach the target: {early:?}"
    );

    let started = Instant::now();
    let (mut canceller, cancel_task) =
        client::open("alice", target(pg, "app", APP_PASSWORD, tls), &cancels);
    canceller.cancel(key.pid, key.key).await;
    assert_eq!(
        cancel_task.await.unwrap().unwrap().kind,
        SessionKind::Cancel { forwarded: true }
    );
    let result = tokio::time::timeout(Duration::from_secs(10), session.read_result())
        .await
        .expect("the cancel did not stop the query");
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some("57014"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The session survives the cancel.
    assert_eq!(
        session.query("select 41+1").await.unwrap(),
        vec![vec![Some("42".into())]]
    );
    session.terminate().await;
    task.await.unwrap().unwrap();
    assert_no_credential("session bytes", &session.received);
    assert!(cancels.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_reaches_the_running_query_plain_and_tls() {
    within(async {
        let pg = Cluster::start();
        cancel_through_the_broker(&pg, TargetTls::Disable).await;
        cancel_through_the_broker(&pg, TargetTls::Require { roots: None }).await;
    })
    .await;
}

#[test]
fn the_harness_names_its_credentials_distinctly() {
    // Guards the leak scan: a short or shared password would make it meaningless.
    for p in [
        cluster::APP_PASSWORD,
        cluster::MD5_PASSWORD,
        cluster::CLEARTEXT_PASSWORD,
    ] {
        assert!(p.len() >= 24 && p != TUNNEL_SECRET);
    }
}
