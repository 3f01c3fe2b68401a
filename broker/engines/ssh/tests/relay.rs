//! The SSH engine between the real `ssh` client and a real OpenSSH `sshd`: exec with separate
//! stdout, stderr and exit codes; refused commands that never run; an exec-only role; a wrong
//! host key and a wrong client key refused with one clear line.

mod support;

use sluice_engine_ssh::{ExecRule, ExecRules, HostKey, Policy};
use std::process::Command;
use std::sync::Arc;
use support::{blocking, broker, client_key, setup, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_passes_stdout_stderr_stdin_and_the_exit_code() {
    let setup = Arc::new(setup());
    let port = broker(setup.params(Policy::default(), setup.pinned())).await;
    let s = Arc::clone(&setup);
    let out = blocking(move || s.ssh(port, &s.client, &["echo out; echo err >&2; exit 3"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "out");
    assert!(text(&out.stderr).contains("err"));

    // stdin reaches the command: sent before the host even answered.
    let s = Arc::clone(&setup);
    let piped = blocking(move || {
        let known = s.dir.path().join("known_hosts");
        let _ = s.ssh(port, &s.client, &["true"]);
        let mut child = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args(["-o", "IdentitiesOnly=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .arg("-i")
            .arg(&s.client)
            .args([
                "-p",
                &port.to_string(),
                "sluice@127.0.0.1",
                "cat | sha256sum",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ssh");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"x\n")
            .expect("write");
        child.wait_with_output().expect("wait")
    })
    .await;
    assert!(
        text(&piped.stdout)
            .starts_with("73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac"),
        "{}",
        text(&piped.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_never_runs_and_says_which_rule() {
    let setup = Arc::new(setup());
    let marker = setup.dir.path().join("marker");
    let policy = Policy {
        shell: false,
        exec: ExecRules {
            allow: vec![ExecRule {
                name: "listing".into(),
                commands: vec!["ls".into(), "ls *".into(), "echo *".into()],
            }],
            ..ExecRules::default()
        },
        ..Policy::default()
    };
    let port = broker(setup.params(policy, setup.pinned())).await;
    for attack in [
        format!("ls /tmp; touch {}", marker.display()),
        format!("ls $(touch {})", marker.display()),
        format!("ls `touch {}`", marker.display()),
        format!("ls /tmp && touch {}", marker.display()),
        format!("ls /tmp\ntouch {}", marker.display()),
        format!("sh -c 'touch {}'", marker.display()),
        format!("'t''ouch' {}", marker.display()),
        format!("/usr/bin/../bin/touch {}", marker.display()),
    ] {
        let s = Arc::clone(&setup);
        let line = attack.clone();
        let out = blocking(move || s.ssh(port, &s.client, &[&line])).await;
        assert_eq!(
            out.status.code(),
            Some(126),
            "{attack}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("sluice: refused by rule"),
            "{}",
            text(&out.stderr)
        );
        assert!(!marker.exists(), "{attack} ran");
    }
    let s = Arc::clone(&setup);
    let ok = blocking(move || s.ssh(port, &s.client, &["echo allowed"])).await;
    assert_eq!(text(&ok.stdout).trim(), "allowed", "{}", text(&ok.stderr));
    // An exec-only role opens no shell.
    let s = Arc::clone(&setup);
    let shell = blocking(move || s.ssh(port, &s.client, &["-tt"])).await;
    assert_eq!(shell.status.code(), Some(126), "{}", text(&shell.stderr));
    assert!(
        text(&shell.stdout).contains("may not open an interactive shell")
            || text(&shell.stderr).contains("may not open an interactive shell")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_key_or_client_key_is_refused() {
    let setup = Arc::new(setup());
    let (other, _) = client_key(setup.dir.path(), "other_host");
    let other = russh::keys::load_secret_key(other, None).expect("key");
    let port =
        broker(setup.params(Policy::default(), HostKey::Key(other.public_key().clone()))).await;
    let s = Arc::clone(&setup);
    let out = blocking(move || s.ssh(port, &s.client, &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("another host key than the one pinned"),
        "{}",
        text(&out.stderr)
    );

    let port = broker(setup.params(Policy::default(), setup.pinned())).await;
    let (stranger, _) = client_key(setup.dir.path(), "stranger");
    let s = Arc::clone(&setup);
    let out = blocking(move || s.ssh(port, &stranger, &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_accepts_a_certificate_the_broker_signs_for_each_login() {
    let setup = Arc::new(setup());
    let ca = russh::keys::load_secret_key(setup.sshd.user_ca(), None).expect("ca");
    let mut params = setup.params(Policy::default(), setup.pinned());
    params.target.credential = sluice_engine_ssh::Credential::Ca {
        ca: Arc::new(ca),
        ttl: std::time::Duration::from_secs(300),
        key_id: "sluice:alice:g_test:web".into(),
    };
    let port = broker(params.clone()).await;
    let s = Arc::clone(&setup);
    let out = blocking(move || s.ssh(port, &s.client, &["echo certified"])).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "certified",
        "{}",
        text(&out.stderr)
    );
    let log = setup.sshd.log();
    assert!(
        log.contains("sluice:alice:g_test:web"),
        "sshd logs the certificate's key id: {log}"
    );

    // A CA the host does not trust: one clear line, nothing runs.
    let (untrusted, _) = client_key(setup.dir.path(), "untrusted_ca");
    let untrusted = russh::keys::load_secret_key(untrusted, None).expect("untrusted ca");
    params.target.credential = sluice_engine_ssh::Credential::Ca {
        ca: Arc::new(untrusted),
        ttl: std::time::Duration::from_secs(300),
        key_id: "sluice:alice:g_test:web".into(),
    };
    let port = broker(params).await;
    let s = Arc::clone(&setup);
    let out = blocking(move || s.ssh(port, &s.client, &["echo never"])).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused a certificate from the broker's CA"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_the_role_does_not_list_is_refused_with_the_ones_it_may_use() {
    let setup = Arc::new(setup());
    let port = broker(setup.params(Policy::default(), setup.pinned())).await;
    let s = Arc::clone(&setup);
    let out = blocking(move || {
        let mut args = s.options(port);
        args.extend([
            "-p".into(),
            port.to_string(),
            "nobody@127.0.0.1".into(),
            "id".into(),
        ]);
        support::run("ssh", &args)
    })
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("this role may not log in as nobody; it may use"),
        "{}",
        text(&out.stderr)
    );
}
