//! `sluice ssh` end to end: the real `ssh` client, `sluice proxy ssh` as its ProxyCommand, the
//! broker's SSH engine, and a real OpenSSH `sshd` that trusts only the broker's key.

use sluice_tests::{Broker, BrokerBuilder, Cli, Sshd};
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn setup(sshd: &Sshd, builder: BrokerBuilder) -> (Broker, Cli) {
    let broker = builder
        .role("ops", "      max_ttl: 1h\n")
        .role(
            "ci",
            "      max_ttl: 1h\n      ssh:\n        exec:\n          allow: [{name: listing, commands: ['ls *', 'echo *']}]\n",
        )
        .rule_with("eng", &[], &["eng"], &["web"], &["ops", "ci"], "")
        .start();
    let _ = sshd;
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (broker, cli)
}

fn ssh(cli: &Cli, role: &str, command: &str) -> Output {
    cli.run(&["ssh", "web", "--role", role, "--", command])
}

#[test]
fn commands_run_through_the_broker_with_their_output_and_exit_code() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let out = ssh(&cli, "ops", "echo out; echo err >&2; exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "out");
    assert!(text(&out.stderr).contains("err"));

    // The session is recorded: the command, its decision and the exit status.
    let sessions = cli.ended_sessions(1);
    let id = sessions[0]["id"].as_str().expect("a session").to_owned();
    assert_eq!(sessions[0]["kind"], "ssh");
    let shown = cli.run(&["sessions", "show", &id, "--output", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    let events = shown["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["type"] == "exec"
            && e["command"] == "echo out; echo err >&2; exit 3"
            && e["decision"]["outcome"] == "allowed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "exit" && e["status"] == 3),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e["type"] == "output"), "{events:?}");
}

#[test]
fn an_exec_only_role_refuses_what_it_does_not_allow_and_nothing_runs() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let marker = sshd.dir().join("marker");
    for attack in [
        format!("ls /tmp; touch {}", marker.display()),
        format!("ls $(touch {})", marker.display()),
        format!("echo x && touch {}", marker.display()),
        format!("sh -c 'touch {}'", marker.display()),
    ] {
        let out = ssh(&cli, "ci", &attack);
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
        assert!(!marker.exists(), "{attack} ran on the host");
    }
    let out = ssh(&cli, "ci", "echo allowed");
    assert_eq!(text(&out.stdout).trim(), "allowed", "{}", text(&out.stderr));
}

#[test]
fn a_host_presenting_another_key_is_refused_with_one_clear_line() {
    let sshd = Sshd::start();
    let other = Sshd::start();
    let (_broker, cli) = setup(
        &sshd,
        BrokerBuilder::new().ssh_pinned("web", &sshd, &other.host_key()),
    );
    let out = ssh(&cli, "ops", "true");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another host key than the one pinned"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn revoking_the_grant_ends_a_running_command_with_the_reason() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let mut running = cli
        .cmd()
        .args(["ssh", "web", "--role", "ops", "--", "sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice ssh");
    // Wait until the session is open on the broker, then revoke its grant.
    let mut grant = String::new();
    sluice_tests::wait_for(
        "the ssh session to open",
        std::time::Duration::from_secs(20),
        || {
            let list = cli.run(&["sessions", "list", "--output", "json"]);
            let list: serde_json::Value =
                serde_json::from_slice(&list.stdout).unwrap_or(serde_json::Value::Null);
            match list["sessions"][0]["grant"].as_str() {
                Some(g) => {
                    grant = g.to_owned();
                    true
                }
                None => false,
            }
        },
    );
    let revoked = cli.run(&["grant", "revoke", &grant, "--reason", "incident over"]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    sluice_tests::wait_for("ssh to end", std::time::Duration::from_secs(20), || {
        running.try_wait().ok().flatten().is_some()
    });
    let out = running.wait_with_output().expect("wait");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("access to this host ended"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_held_command_runs_once_approved_and_never_when_denied() {
    let sshd = Sshd::start();
    let broker = BrokerBuilder::new()
        .ssh("web", &sshd)
        .role(
            "deploy",
            "      max_ttl: 1h\n      ssh:\n        exec:\n          approve: [{name: touching, commands: ['touch *']}]\n          approvers: [dba]\n",
        )
        .rule_with("eng", &[], &["eng"], &["web"], &["deploy"], "")
        .start();
    let alice = Cli::new(&broker);
    alice.login(&broker.token("alice", &["eng"], "1h"));
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));

    let approved = sshd.dir().join("approved");
    let waiting = alice
        .cmd()
        .args(["ssh", "web", "--role", "deploy", "--"])
        .arg(format!("touch {}", approved.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice ssh");
    let hold = bob.first_hold();
    assert_eq!(hold["kind"], "exec");
    assert_eq!(hold["rule"], "touching");
    assert!(!approved.exists(), "ran before approval");
    let id = hold["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("ssh");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("waiting for approval"),
        "{}",
        text(&out.stderr)
    );
    assert!(approved.exists());

    let denied = sshd.dir().join("denied");
    let waiting = alice
        .cmd()
        .args(["ssh", "web", "--role", "deploy", "--"])
        .arg(format!("touch {}", denied.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice ssh");
    let id = bob.first_hold()["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["deny", &id, "--reason", "change freeze"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("ssh");
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("change freeze"),
        "{}",
        text(&out.stderr)
    );
    assert!(!denied.exists());
}

#[test]
fn a_terminal_session_exports_as_asciicast_and_as_json_lines() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let out = cli.run(&[
        "ssh",
        "web",
        "--role",
        "ops",
        "--ssh=-tt",
        "--",
        "stty cols 100 rows 30; echo hello-cast",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = cli.ended_sessions(1)[0]["id"]
        .as_str()
        .expect("a session")
        .to_owned();

    let cast = cli.run(&["sessions", "export", &id, "--format", "asciicast"]);
    assert!(cast.status.success(), "{}", text(&cast.stderr));
    let cast = text(&cast.stdout);
    let mut lines = cast.lines();
    let header: serde_json::Value =
        serde_json::from_str(lines.next().expect("a header")).expect("header json");
    assert_eq!(header["version"], 2);
    assert!(header["width"].as_u64().is_some_and(|w| w > 0), "{header}");
    let events: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e[1] == "o" && e[2].as_str().is_some_and(|t| t.contains("hello-cast"))),
        "{cast}"
    );
    assert!(events.iter().all(|e| e[0].as_f64().is_some()), "{cast}");

    let jsonl = cli.run(&["sessions", "export", &id, "--format", "jsonl"]);
    assert!(jsonl.status.success());
    let jsonl = text(&jsonl.stdout);
    let first: serde_json::Value =
        serde_json::from_str(jsonl.lines().next().expect("line")).expect("json");
    assert_eq!(first["id"], id.as_str());
    assert!(jsonl.lines().count() > 2);
}

/// `sluice connect` on an ssh resource listens on 127.0.0.1 for clients that cannot use a
/// ProxyCommand; they must present the per-connect key it made.
#[test]
fn connect_listens_for_ssh_clients_holding_the_per_connect_key() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let other = sshd.dir().join("not_the_connect_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let script = format!(
        "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile=\"$SLUICE_SSH_KNOWN_HOSTS\" -i \"$SLUICE_SSH_KEY\" \
         -p \"$SLUICE_PORT\" sluice@127.0.0.1 echo via-connect; \
         ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes \
         -o UserKnownHostsFile=\"$SLUICE_SSH_KNOWN_HOSTS\" -i {} \
         -p \"$SLUICE_PORT\" sluice@127.0.0.1 echo stranger; echo \"other key: $?\"",
        other.display()
    );
    let out = cli.run(&[
        "connect", "web", "--role", "ops", "--exec", "sh", "-c", &script,
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("via-connect"), "{stdout}{stderr}");
    assert!(!stdout.contains("stranger"), "{stdout}");
    assert!(stdout.contains("other key: 255"), "{stdout}{stderr}");
}

/// What is typed is never recorded: a secret typed at a prompt that does not echo (`read -s`,
/// a `sudo` password) reaches the host but not the recording.
#[test]
fn typed_input_is_not_recorded() {
    use std::io::{BufRead, BufReader, Write};
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let secret = "hunter2-typed-secret";
    let mut child = cli
        .cmd()
        .args([
            "ssh",
            "web",
            "--role",
            "ops",
            "--ssh=-tt",
            "--",
            "stty -echo; echo READY; read -r x; echo got-${#x}",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice ssh");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    // Echo is off on the host's terminal once READY shows; only then is the secret typed.
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read");
        assert!(n > 0, "ssh ended before READY: {seen}");
        seen.push_str(&line);
        if line.contains("READY") {
            break;
        }
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{secret}\n").as_bytes())
        .expect("type");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest");
    let status = child.wait().expect("wait");
    seen.push_str(&rest);
    assert!(status.success(), "{seen}");
    assert!(seen.contains(&format!("got-{}", secret.len())), "{seen}");

    let id = cli.ended_sessions(1)[0]["id"]
        .as_str()
        .expect("a session")
        .to_owned();
    let recorded = text(
        &cli.run(&["sessions", "export", &id, "--format", "jsonl"])
            .stdout,
    );
    assert!(
        recorded.contains("READY") || recorded.contains("UkVBRFk"),
        "{recorded}"
    );
    use base64_forms::forms;
    for form in forms(secret) {
        assert!(!recorded.contains(&form), "the recording holds {form:?}");
    }
}

/// The secret as it could appear in a recording: raw, and base64 at each of the three byte
/// alignments (terminal output is stored as base64).
mod base64_forms {
    pub fn forms(secret: &str) -> Vec<String> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let encode = |bytes: &[u8]| {
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                if chunk.len() < 3 {
                    break;
                }
                let n =
                    (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
                for i in 0..4 {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        let mut forms = vec![secret.to_owned()];
        for skip in 0..3 {
            let encoded = encode(&secret.as_bytes()[skip..]);
            // The middle of the encoding does not depend on what came before.
            if encoded.len() > 8 {
                forms.push(encoded[4..encoded.len() - 4].to_owned());
            }
        }
        forms
    }
}

#[test]
fn plain_ssh_and_scp_in_both_modes_work_through_the_generated_config() {
    let sshd = Sshd::start();
    let (_broker, cli) = setup(&sshd, BrokerBuilder::new().ssh("web", &sshd));
    let config = cli.state_dir().join("ssh_config");
    let written = cli.run(&["config", "ssh", "--output", &config.display().to_string()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(
        text(&written.stderr).contains("Include"),
        "{}",
        text(&written.stderr)
    );
    let block = std::fs::read_to_string(&config).expect("config");
    assert!(block.contains("Host *.sluice"), "{block}");
    assert!(block.contains("StrictHostKeyChecking yes"), "{block}");
    let tool = |program: &str, args: &[String]| {
        let mut cmd = std::process::Command::new(program);
        for (k, v) in cli.env() {
            cmd.env(k, v);
        }
        cmd.arg("-F")
            .arg(&config)
            .args(["-o", "BatchMode=yes"])
            .args(args)
            .output()
            .expect(program)
    };
    let out = tool(
        "ssh",
        &["web.sluice".into(), "echo through-the-config".into()],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "through-the-config",
        "{}",
        text(&out.stderr)
    );

    let local = sshd.dir().join("local.bin");
    std::fs::write(&local, vec![7u8; 300_000]).expect("local");
    let remote = sshd.dir().join("remote.bin");
    let back = sshd.dir().join("back.bin");
    let up = tool(
        "scp",
        &[
            local.display().to_string(),
            format!("web.sluice:{}", remote.display()),
        ],
    );
    assert!(up.status.success(), "{}", text(&up.stderr));
    let down = tool(
        "scp",
        &[
            "-O".into(),
            format!("web.sluice:{}", remote.display()),
            back.display().to_string(),
        ],
    );
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_eq!(
        std::fs::read(&back).expect("back"),
        vec![7u8; 300_000],
        "the file came back whole"
    );

    // The broker recorded the SFTP write with its path and bytes (the echo, the upload and the
    // download are three sessions).
    let sessions = cli.ended_sessions(3);
    let files: Vec<serde_json::Value> = sessions
        .iter()
        .filter_map(|s| s["id"].as_str())
        .flat_map(|id| {
            let shown = cli.run(&["sessions", "show", id, "--output", "json"]);
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
            shown["events"].as_array().cloned().unwrap_or_default()
        })
        .filter(|e| e["type"] == "file")
        .collect();
    let remote = remote.display().to_string();
    assert!(
        files
            .iter()
            .any(|e| e["op"] == "write" && e["path"] == remote.as_str() && e["bytes"] == 300_000),
        "{files:#?}"
    );
    assert!(
        files
            .iter()
            .any(|e| e["op"] == "scp-download" && e["path"] == remote.as_str()),
        "{files:#?}"
    );
}
