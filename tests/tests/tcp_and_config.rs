//! The TCP engine, malformed input on a postgres tunnel, and the broker's config commands.

use sluice_tests::{BrokerBuilder, Cli, Postgres, workspace_bin};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_tcp_resource_relays_bytes_both_ways() {
    let port = sluice_tests::util::echo_server();
    let broker = BrokerBuilder::new()
        .tcp("echo", &format!("127.0.0.1:{port}"))
        .rule("ops", &[], &["ops"], &["echo"])
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("bob", &["ops"], "1h"));
    let connect = cli.connect("echo");
    assert_eq!(connect.details["kind"], "tcp");
    assert!(connect.details.get("uri").is_none(), "no secret for tcp");
    let mut conn = TcpStream::connect(("127.0.0.1", connect.port())).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = conn.try_clone().expect("clone");
    let sent = payload.clone();
    let t = std::thread::spawn(move || writer.write_all(&sent).expect("write"));
    let mut got = vec![0u8; payload.len()];
    conn.read_exact(&mut got).expect("read echo");
    t.join().expect("writer");
    assert_eq!(got, payload);

    // --exec gets SLUICE_HOST/SLUICE_PORT
    let out = cli.run(&[
        "connect",
        "echo",
        "--exec",
        "sh",
        "-c",
        "echo $SLUICE_HOST:$SLUICE_PORT",
    ]);
    assert!(out.status.success());
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
}

#[test]
fn garbage_on_a_postgres_tunnel_is_refused_and_the_broker_keeps_serving() {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .rule("all", &["alice"], &[], &["*"])
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &[], "1h"));
    let connect = cli.connect("pg");
    for junk in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        vec![0, 0, 0, 3],                         // length below the minimum
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0], // length far above the startup limit
        vec![0, 0, 0, 8, 0, 2, 0, 0],             // protocol 2.0
    ] {
        let mut conn = TcpStream::connect(("127.0.0.1", connect.port())).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        conn.write_all(&junk).expect("write");
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        // Either closed or an ErrorResponse: never a hang, never a login.
        assert!(
            answer.is_empty() || answer[0] == b'E',
            "answer to {junk:?}: {answer:?}"
        );
    }
    let out = Command::new(sluice_tests::postgres::psql())
        .args(["-X", "-A", "-t", "-d", &connect.uri(), "-c", "select 'ok'"])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_writes_a_config_that_checks_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(workspace_bin("sluiced"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "sluice.yaml",
        "tls/ca.crt",
        "tls/server.crt",
        "tls/server.key",
        "keys/session-signing.pem",
    ] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("keys/session-signing.pem"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the signing key is private");
    let out = Command::new(workspace_bin("sluiced"))
        .args(["check-config", "--config"])
        .arg(dir.path().join("sluice.yaml"))
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second init refuses to overwrite.
    let out = Command::new(workspace_bin("sluiced"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .expect("init");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn check_config_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: not-an-address\ntls:\n  cert: c.pem\n  key: k.pem\ntokens:\n  signing_key: s.pem\nstore:\n  sqlite: x.db\nresources:\n  pg:\n    kind: postgres\n    address: 127.0.0.1:5432\n    database: app\n    user: app\n    password: hunter2\n    colour: blue\npolicy:\n  rules:\n    - name: r\n      groups: [dba]\n      resources: [missing]\n",
    )
    .expect("write");
    let out = Command::new(workspace_bin("sluiced"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (line, key) in [
        (1, "listen"),
        (15, "password"),
        (16, "colour"),
        (21, "resources"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(key)),
            "expected an error at line {line} about {key}:\n{err}"
        );
    }
    assert!(
        !err.contains("hunter2"),
        "an inline secret is never echoed back"
    );
}

#[test]
fn check_config_reports_missing_files_and_unset_credentials() {
    let broker = BrokerBuilder::new()
        .postgres_at("pg", "127.0.0.1:5432", "app", "app", "pw")
        .start();
    // The check runs without the broker's environment: the credential variable is unset.
    let out = Command::new(workspace_bin("sluiced"))
        .args(["check-config", "--config"])
        .arg(broker.config())
        .env_remove("SLUICE_TEST_PW_PG")
        .output()
        .expect("check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLUICE_TEST_PW_PG"), "{err}");
    assert!(err.contains("password"), "{err}");
}
