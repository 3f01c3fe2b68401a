//! End to end through a real broker to a real PostgreSQL, driven by real psql.

use sluice_tests::postgres::psql;
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::{Command, Stdio};
use std::time::Duration;

fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg-main", &pg)
        .rule("dba", &[], &["dba"], &["*"])
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["dba"], "1h"));
    (pg, broker, cli)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_query_runs_through_connect_exec_psql() {
    let (_pg, _broker, cli) = setup();
    let out = cli.run(&[
        "connect",
        "pg-main",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select count(*), current_user, current_database() from customers",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "100|app|appdb");
}

#[test]
fn exec_passes_the_commands_exit_code_through() {
    let (_pg, _broker, cli) = setup();
    let out = cli.run(&[
        "connect",
        "pg-main",
        "--exec",
        "psql",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "select 1/0",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "psql exits 1 when a -c command fails: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("division by zero"));
    let out = cli.run(&["connect", "pg-main", "--exec", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn fifty_concurrent_psql_sessions_share_one_connect() {
    let (_pg, _broker, cli) = setup();
    let connect = cli.connect("pg-main");
    let uri = connect.uri();
    let children: Vec<_> = (0..50)
        .map(|i| {
            Command::new(psql())
                .args(["-X", "-A", "-t", "-d", &uri, "-c"])
                .arg(format!("select pg_backend_pid(), {i}, pg_sleep(1)"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn psql")
        })
        .collect();
    let mut pids = std::collections::HashSet::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("psql");
        assert!(out.status.success(), "session {i}: {}", stderr(&out));
        let line = stdout(&out);
        let mut fields = line.trim().split('|');
        pids.insert(fields.next().expect("pid").to_string());
        assert_eq!(fields.next(), Some(i.to_string().as_str()));
    }
    assert_eq!(pids.len(), 50, "every session had its own backend");
}

#[test]
fn ctrl_c_in_psql_cancels_the_running_query_upstream() {
    let (pg, broker, cli) = setup();
    let connect = cli.connect("pg-main");
    let child = Command::new(psql())
        .args(["-X", "-d", &connect.uri(), "-c", "select pg_sleep(30)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    // Wait until the query runs upstream, then press Ctrl-C the way a terminal does.
    sluice_tests::wait_for("pg_sleep to run", Duration::from_secs(20), || {
        pg.admin_sql("postgres", "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")
            .trim()
            == "1"
    });
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("psql");
    assert!(
        stderr(&out).contains("canceling statement due to user request"),
        "psql stderr: {}",
        stderr(&out)
    );
    let still = pg.admin_sql("postgres", "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'");
    assert_eq!(still.trim(), "0");
    // The Ctrl-C was a cancel, audited as one, not a second session with its own record.
    let listed = cli.run(&["sessions", "list", "--output", "json"]);
    let sessions: serde_json::Value = serde_json::from_slice(&listed.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&listed)));
    let sessions = sessions["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let log = broker.log();
    assert_eq!(log.matches("\"session.started.v1\"").count(), 1, "{log}");
    let cancel = log
        .lines()
        .find(|l| l.contains("\"cancel.requested.v1\""))
        .unwrap_or_else(|| panic!("no cancel audit event:\n{log}"));
    assert!(
        cancel.contains("forwarded") && cancel.contains("true"),
        "{cancel}"
    );
    assert!(cancel.contains("alice"), "{cancel}");
}

#[test]
fn a_wrong_one_time_secret_is_refused_and_the_tunnel_keeps_working() {
    let (_pg, _broker, cli) = setup();
    let connect = cli.connect("pg-main");
    let out = Command::new(psql())
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &connect.port().to_string(),
            "-U",
            "alice",
            "-d",
            "appdb",
            "-c",
            "select 1",
        ])
        .env("PGPASSWORD", "not-the-secret")
        .env("PGSSLMODE", "disable")
        .output()
        .expect("psql");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("tunnel secret is wrong"),
        "stderr: {}",
        stderr(&out)
    );
    // No password at all: psql cannot prompt (stdin is not a terminal) and fails.
    let out = Command::new(psql())
        .args([
            "-X",
            "-w",
            "-h",
            "127.0.0.1",
            "-p",
            &connect.port().to_string(),
            "-U",
            "alice",
            "-d",
            "appdb",
            "-c",
            "select 1",
        ])
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql");
    assert!(!out.status.success());
    let out = Command::new(psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &connect.uri(),
            "-c",
            "select 'still fine'",
        ])
        .output()
        .expect("psql");
    assert_eq!(stdout(&out).trim(), "still fine", "{}", stderr(&out));
}

#[test]
fn a_client_asking_for_another_database_is_refused_with_the_reason() {
    let (_pg, _broker, cli) = setup();
    let out = cli.run(&[
        "connect", "pg-main", "--exec", "psql", "-X", "-d", "postgres", "-c", "select 1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("appdb"),
        "names the database the resource allows: {}",
        stderr(&out)
    );
}

#[test]
fn the_target_password_never_reaches_the_client_its_env_or_the_logs() {
    let (pg, broker, cli) = setup();
    let dump = cli.state_dir().join("env.txt");
    // The launched command sees the environment the CLI set; psql runs queries that make the
    // server talk a lot (settings, errors, notices) through the tunnel.
    let script = format!(
        "env > {dump}; psql -X -c 'show all' -c 'select * from pg_settings' -c 'select 1/0' -c \"do \\$\\$ begin raise notice 'hi'; end \\$\\$\" -c 'select * from customers'; true",
        dump = dump.display()
    );
    let token = std::fs::read_to_string(cli.state_dir().join("session-token")).expect("token");
    let out = cli
        .cmd()
        .args(["connect", "pg-main", "--exec", "sh", "-c", &script])
        .env("SLUICE_TOKEN", token.trim())
        .output()
        .expect("run sluice");
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(&dump).expect("env dump");
    for (what, text) in [
        (
            "psql output (bytes the client received, rendered)",
            stdout(&out),
        ),
        ("CLI stderr", stderr(&out)),
        ("environment of the launched command", env.clone()),
        ("broker log", broker.log()),
    ] {
        assert!(
            !text.contains(&pg.app_password),
            "the target password leaked into the {what}"
        );
    }
    assert!(
        env.contains("PGPASSWORD="),
        "the one-time secret is passed on"
    );
    assert!(
        !env.contains(token.trim()),
        "the session token is not passed on to the command"
    );
    assert!(
        !broker.log().contains(
            env.lines()
                .find(|l| l.starts_with("PGPASSWORD="))
                .unwrap()
                .trim_start_matches("PGPASSWORD=")
        ),
        "the one-time secret is not logged"
    );
}

#[test]
fn the_raw_bytes_sent_to_the_client_never_hold_the_target_password() {
    let (pg, _broker, cli) = setup();
    let connect = cli.connect("pg-main");
    // A recording relay between psql and the tunnel captures every byte the client receives.
    let (relay_port, captured) = sluice_tests::util::recording_relay(connect.port());
    let uri = connect
        .uri()
        .replace(&format!(":{}/", connect.port()), &format!(":{relay_port}/"));
    let out = Command::new(psql())
        .args([
            "-X",
            "-d",
            &uri,
            "-c",
            "show all",
            "-c",
            "select 1/0",
            "-c",
            "select current_setting('application_name')",
        ])
        .output()
        .expect("psql");
    assert!(
        stdout(&out).contains("application_name"),
        "{}",
        stderr(&out)
    );
    let bytes = captured.lock().expect("lock").clone();
    assert!(bytes.len() > 1000, "the relay saw the session");
    let needle = pg.app_password.as_bytes();
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the target password was sent to the client"
    );
}

#[test]
fn a_stopped_target_is_reported_at_connect_and_to_psql() {
    let (pg, _broker, cli) = setup();
    let connect = cli.connect("pg-main");
    pg.stop();
    let out = Command::new(psql())
        .args(["-X", "-d", &connect.uri(), "-c", "select 1"])
        .output()
        .expect("psql");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the target"),
        "psql shows why: {}",
        stderr(&out)
    );
    let out = cli.run(&["connect", "pg-main", "--exec", "true"]);
    assert_eq!(out.status.code(), Some(14), "{}", stderr(&out));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}

#[test]
fn tunnels_work_again_after_the_broker_restarts() {
    let (_pg, mut broker, cli) = setup();
    let connect = cli.connect("pg-main");
    broker.kill();
    let out = Command::new(psql())
        .args(["-X", "-d", &connect.uri(), "-c", "select 1"])
        .output()
        .expect("psql");
    assert!(
        !out.status.success(),
        "nothing gets through while the broker is down"
    );
    assert!(
        stderr(&out).contains("cannot reach the broker"),
        "psql shows why: {}",
        stderr(&out)
    );
    broker.restart();
    let out = Command::new(psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &connect.uri(),
            "-c",
            "select 'back'",
        ])
        .output()
        .expect("psql");
    assert_eq!(stdout(&out).trim(), "back", "{}", stderr(&out));
}
