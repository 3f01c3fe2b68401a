//! File transfers through the SSH engine with the real OpenSSH tools against a real sshd: SFTP
//! per operation with path rules (symlinks and `..` judged where they lead), `scp` in both
//! modes, `rsync` trees, `git` clone and push, and local forwards.

mod support;

use sluice_engine_ssh::{FileRules, Policy};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{Captured, Setup, blocking, broker, broker_with_lease, run, setup, sha256, text};

/// A host tree: `allowed/` (with `hello.txt`, `secret/key.txt`, a symlink `link -> ../denied`
/// and a dangling `dangling -> ../denied/new.bin`), `denied/d.txt`, and a local directory.
struct Tree {
    root: PathBuf,
    local: PathBuf,
}

fn tree(setup: &Setup) -> Tree {
    let root = std::fs::canonicalize(setup.dir.path())
        .expect("canonical")
        .join("host");
    let local = setup.dir.path().join("local");
    for dir in ["allowed/secret", "denied"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::create_dir_all(&local).expect("local");
    std::fs::write(root.join("allowed/hello.txt"), "hello\n").expect("hello");
    std::fs::write(root.join("allowed/secret/key.txt"), "KEY-MATERIAL\n").expect("key");
    std::fs::write(root.join("denied/d.txt"), "denied\n").expect("d");
    std::os::unix::fs::symlink("../denied", root.join("allowed/link")).expect("link");
    std::os::unix::fs::symlink("../denied/new.bin", root.join("allowed/dangling"))
        .expect("dangling");
    let mut data = vec![0u8; 3 * 1024 * 1024 + 17];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::write(local.join("up.bin"), &data).expect("up.bin");
    Tree { root, local }
}

fn rules(tree: &Tree) -> FileRules {
    FileRules {
        read_only: false,
        allow: vec![tree.root.join("allowed").display().to_string()],
        deny: vec![tree.root.join("allowed/secret").display().to_string()],
    }
}

/// A broker with `files` (and `forwards`), journaling into the returned capture.
async fn serve(
    setup: &Setup,
    files: Option<FileRules>,
    forwards: Vec<String>,
) -> (u16, Arc<Captured>) {
    let captured = Arc::new(Captured::default());
    let mut params = setup.params(
        Policy {
            shell: true,
            files,
            forwards,
            ..Policy::default()
        },
        setup.pinned(),
    );
    params.journal = Some(Arc::clone(&captured) as Arc<dyn sluice_engine_ssh::Journal>);
    (broker(params).await, captured)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_judges_every_operation_where_its_path_leads_and_the_batch_goes_on() {
    let setup = Arc::new(setup());
    let t = tree(&setup);
    let (port, journal) = serve(&setup, Some(rules(&t)), Vec::new()).await;
    let (root, local) = (&t.root, &t.local);
    let batch = [
        format!(
            "-put {} {}",
            p(&local.join("up.bin")),
            p(&root.join("allowed/up.bin"))
        ),
        format!(
            "-get {} {}",
            p(&root.join("allowed/hello.txt")),
            p(&local.join("hello.txt"))
        ),
        format!(
            "-rename {} {}",
            p(&root.join("allowed/up.bin")),
            p(&root.join("allowed/moved.bin"))
        ),
        format!("-mkdir {}", p(&root.join("allowed/newdir"))),
        format!("-rm {}", p(&root.join("allowed/moved.bin"))),
        // Refused: a denied subtree, outside the allowed tree, `..`, a symlink, a dangling one.
        format!(
            "-get {} {}",
            p(&root.join("allowed/secret/key.txt")),
            p(&local.join("key.txt"))
        ),
        format!(
            "-put {} {}",
            p(&local.join("up.bin")),
            p(&root.join("denied/x.bin"))
        ),
        format!(
            "-get {}/allowed/../denied/d.txt {}",
            p(root),
            p(&local.join("d1.txt"))
        ),
        format!(
            "-get {} {}",
            p(&root.join("allowed/link/d.txt")),
            p(&local.join("d2.txt"))
        ),
        format!(
            "-put {} {}",
            p(&local.join("up.bin")),
            p(&root.join("allowed/dangling"))
        ),
        format!(
            "-rename {} {}",
            p(&root.join("allowed/hello.txt")),
            p(&root.join("denied/h.txt"))
        ),
        // And the session goes on.
        format!(
            "-get {} {}",
            p(&root.join("allowed/hello.txt")),
            p(&local.join("after.txt"))
        ),
    ];
    let batch_file = setup.dir.path().join("batch");
    std::fs::write(&batch_file, batch.join("\n") + "\n").expect("batch");
    let s = Arc::clone(&setup);
    let out = blocking(move || {
        let mut args = s.options(port);
        args.extend(["-P".into(), port.to_string(), "-b".into(), p(&batch_file)]);
        args.push("sluice@127.0.0.1".into());
        run("sftp", &args)
    })
    .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(
        sha256(&root.join("allowed/hello.txt")),
        sha256(&local.join("after.txt")),
        "the batch went on after the refusals"
    );
    assert!(root.join("allowed/newdir").is_dir());
    assert!(!root.join("allowed/moved.bin").exists(), "rm ran");
    for absent in [
        local.join("key.txt"),
        local.join("d1.txt"),
        local.join("d2.txt"),
        root.join("denied/x.bin"),
        root.join("denied/new.bin"),
        root.join("denied/h.txt"),
    ] {
        assert!(!absent.exists(), "{} exists: {stderr}", absent.display());
    }
    assert!(
        root.join("allowed/hello.txt").exists(),
        "the refused rename did not run"
    );
    let lines = journal.lines();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    let allowed = p(&root.join("allowed"));
    assert!(
        has(&format!(
            "file write {allowed}/up.bin {} bytes Done",
            3 * 1024 * 1024 + 17
        )),
        "{lines:#?}"
    );
    assert!(
        has(&format!("file read {allowed}/hello.txt 6 bytes Done")),
        "{lines:#?}"
    );
    assert!(
        has(&format!(
            "file rename {allowed}/up.bin -> {allowed}/moved.bin Done"
        )),
        "{lines:#?}"
    );
    assert!(
        has(&format!("file mkdir {allowed}/newdir Done")),
        "{lines:#?}"
    );
    assert!(
        has(&format!("file remove {allowed}/moved.bin Done")),
        "{lines:#?}"
    );
    let denied = p(&root.join("denied"));
    // A get is refused at its first look (stat), a put at the open.
    for refused in [
        format!(" {allowed}/secret/key.txt Refused"),
        format!("file open-write {denied}/x.bin Refused"),
        format!(" {denied}/d.txt Refused"),
        format!("file open-write {denied}/new.bin Refused"),
        format!("file rename {denied}/h.txt Refused"),
    ] {
        assert!(has(&refused), "{refused} missing: {lines:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_in_both_modes_rsync_and_git_move_files_within_the_rules() {
    let setup = Arc::new(setup());
    let t = tree(&setup);
    let (port, journal) = serve(&setup, Some(rules(&t)), Vec::new()).await;
    let (root, local) = (t.root.clone(), t.local.clone());
    let up = local.join("up.bin");
    let s = Arc::clone(&setup);
    let (r, l) = (root.clone(), local.clone());
    let outs = blocking(move || {
        let scp = |extra: &[&str], from: String, to: String| {
            let mut args = s.options(port);
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            args.extend(["-P".into(), port.to_string(), from, to]);
            run("scp", &args)
        };
        let remote = |path: &Path| format!("sluice@127.0.0.1:{}", p(path));
        vec![
            scp(
                &[],
                p(&l.join("up.bin")),
                remote(&r.join("allowed/sftp.bin")),
            ),
            scp(
                &[],
                remote(&r.join("allowed/sftp.bin")),
                p(&l.join("sftp-back.bin")),
            ),
            scp(
                &["-O"],
                p(&l.join("up.bin")),
                remote(&r.join("allowed/legacy.bin")),
            ),
            scp(
                &["-O"],
                remote(&r.join("allowed/legacy.bin")),
                p(&l.join("legacy-back.bin")),
            ),
            scp(
                &["-O"],
                p(&l.join("up.bin")),
                remote(&r.join("denied/legacy.bin")),
            ),
            scp(
                &["-O"],
                remote(&r.join("allowed/secret/key.txt")),
                p(&l.join("k.txt")),
            ),
            scp(
                &["-O", "-r"],
                remote(&r.join("allowed")),
                p(&l.join("whole")),
            ),
        ]
    })
    .await;
    for (i, out) in outs.iter().take(4).enumerate() {
        assert!(out.status.success(), "scp {i}: {}", text(&out.stderr));
    }
    for name in ["sftp-back.bin", "legacy-back.bin"] {
        assert_eq!(sha256(&up), sha256(&local.join(name)), "{name}");
    }
    for (i, out) in outs.iter().enumerate().skip(4) {
        assert!(!out.status.success(), "scp {i} should be refused");
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "scp {i}: {}",
            text(&out.stderr)
        );
    }
    assert!(!root.join("denied/legacy.bin").exists());
    assert!(!local.join("k.txt").exists());
    assert!(
        !local.join("whole").exists(),
        "a tree holding a denied path"
    );

    // rsync: a tree up into the allowed area; the allowed area back down holds the denied
    // subtree, so it is refused as a whole.
    let tree_dir = local.join("tree/sub");
    std::fs::create_dir_all(&tree_dir).expect("tree");
    std::fs::write(tree_dir.join("a.txt"), "a\n").expect("a");
    let s = Arc::clone(&setup);
    let (r, l) = (root.clone(), local.clone());
    let (synced, refused) = blocking(move || {
        let rsync = |from: String, to: String| {
            run(
                "rsync",
                &["-a".into(), "-e".into(), s.ssh_command(port), from, to],
            )
        };
        (
            rsync(
                format!("{}/", p(&l.join("tree"))),
                format!("sluice@127.0.0.1:{}/", p(&r.join("allowed/tree"))),
            ),
            rsync(
                format!("sluice@127.0.0.1:{}/", p(&r.join("allowed"))),
                p(&l.join("all")),
            ),
        )
    })
    .await;
    assert!(synced.status.success(), "{}", text(&synced.stderr));
    assert_eq!(
        std::fs::read_to_string(root.join("allowed/tree/sub/a.txt")).expect("synced"),
        "a\n"
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Permission denied"),
        "{}",
        text(&refused.stderr)
    );

    // git: clone and push a bare repository in the allowed area.
    let bare = root.join("allowed/repo.git");
    let init = run(
        "git",
        &["init".into(), "-q".into(), "--bare".into(), p(&bare)],
    );
    assert!(init.status.success());
    let s = Arc::clone(&setup);
    let l = local.clone();
    let url = format!("ssh://sluice@127.0.0.1:{port}{}", p(&bare));
    let denied_url = format!("ssh://sluice@127.0.0.1:{port}{}", p(&root.join("denied")));
    let (pushed, refused) = blocking(move || {
        let git = |dir: &Path, args: &[&str]| {
            std::process::Command::new("git")
                .current_dir(dir)
                .env("GIT_SSH_COMMAND", s.ssh_command(port))
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .args(args)
                .output()
                .expect("git")
        };
        let cloned = git(&l, &["clone", "-q", &url, "work"]);
        assert!(cloned.status.success(), "{}", text(&cloned.stderr));
        let work = l.join("work");
        std::fs::write(work.join("f.txt"), "f\n").expect("f");
        assert!(git(&work, &["add", "f.txt"]).status.success());
        assert!(
            git(&work, &["commit", "-q", "-m", "through sluice"])
                .status
                .success()
        );
        let pushed = git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
        let refused = git(&l, &["clone", "-q", &denied_url, "nope"]);
        (pushed, refused)
    })
    .await;
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let log = run(
        "git",
        &[
            format!("--git-dir={}", p(&bare)),
            "log".into(),
            "--format=%s".into(),
            "main".into(),
        ],
    );
    assert_eq!(text(&log.stdout).trim(), "through sluice");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Permission denied"),
        "{}",
        text(&refused.stderr)
    );

    let lines = journal.lines();
    let allowed = p(&root.join("allowed"));
    for needle in [
        format!("file scp-upload {allowed}/legacy.bin "),
        format!("file rsync-upload {allowed}/tree"),
        format!("file git-download {allowed}/repo.git"),
        format!("file git-upload {allowed}/repo.git"),
        format!(
            "file scp-upload {} Refused",
            p(&root.join("denied/legacy.bin"))
        ),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&needle)),
            "{needle}: {lines:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_file_rules_no_transfer_starts() {
    let setup = Arc::new(setup());
    let t = tree(&setup);
    let (port, _journal) = serve(&setup, None, Vec::new()).await;
    let s = Arc::clone(&setup);
    let hello = p(&t.root.join("allowed/hello.txt"));
    let l = t.local.clone();
    let (sftp, legacy) = blocking(move || {
        let scp = |extra: &[&str]| {
            let mut args = s.options(port);
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            args.extend([
                "-P".into(),
                port.to_string(),
                format!("sluice@127.0.0.1:{hello}"),
                p(&l.join("x")),
            ]);
            run("scp", &args)
        };
        (scp(&[]), scp(&["-O"]))
    })
    .await;
    assert!(!sftp.status.success());
    assert!(!legacy.status.success());
    assert!(
        text(&legacy.stderr).contains("may not transfer files"),
        "{}",
        text(&legacy.stderr)
    );
    assert!(!t.local.join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forwards_reach_listed_targets_only_and_remote_forwards_are_refused() {
    let setup = Arc::new(setup());
    // A target that speaks first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.write_all(b"220 banner from the target\r\n");
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        }
    });
    let unlisted = sluice_tests::free_port();
    let (port, journal) = serve(&setup, None, vec![format!("127.0.0.1:{target}")]).await;
    let s = Arc::clone(&setup);
    let (reached, refused, remote) = blocking(move || {
        let ssh = |extra: Vec<String>, command: &[&str]| {
            let mut args = s.options(port);
            args.extend(extra);
            args.extend(["-p".into(), port.to_string(), "sluice@127.0.0.1".into()]);
            args.extend(command.iter().map(|c| (*c).to_owned()));
            let mut child = std::process::Command::new("ssh")
                .args(&args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ssh");
            // -W ends when the target closes; the guard ends it otherwise.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while child.try_wait().expect("wait").is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            child.wait_with_output().expect("output")
        };
        (
            ssh(vec!["-W".into(), format!("127.0.0.1:{target}")], &[]),
            ssh(vec!["-W".into(), format!("127.0.0.1:{unlisted}")], &[]),
            ssh(
                vec![
                    "-o".into(),
                    "ExitOnForwardFailure=yes".into(),
                    "-R".into(),
                    format!("0:127.0.0.1:{target}"),
                ],
                &["true"],
            ),
        )
    })
    .await;
    assert!(
        text(&reached.stdout).contains("220 banner from the target"),
        "{}",
        text(&reached.stderr)
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("administratively prohibited"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!remote.status.success(), "{}", text(&remote.stderr));
    assert!(
        text(&remote.stderr).contains("remote port forwarding failed"),
        "{}",
        text(&remote.stderr)
    );
    let lines = journal.lines();
    assert!(
        lines.contains(&format!("forward 127.0.0.1:{target} true")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("forward 127.0.0.1:{unlisted} false")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_may_allow_remote_forwards_and_agent_forwarding() {
    let setup = Arc::new(setup());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.write_all(b"220 through the remote forward\r\n");
        }
    });
    let captured = Arc::new(Captured::default());
    let mut params = setup.params(
        Policy {
            shell: true,
            remote_forward: true,
            agent: true,
            ..Policy::default()
        },
        setup.pinned(),
    );
    params.journal = Some(Arc::clone(&captured) as Arc<dyn sluice_engine_ssh::Journal>);
    let port = broker(params).await;

    // -R: the host listens on `remote`; a connection there reaches the target through the
    // client.
    let remote = sluice_tests::free_port();
    let mut args = setup.options(port);
    args.extend([
        "-N".into(),
        "-o".into(),
        "ExitOnForwardFailure=yes".into(),
        "-R".into(),
        format!("{remote}:127.0.0.1:{target}"),
        "-p".into(),
        port.to_string(),
        "sluice@127.0.0.1".into(),
    ]);
    let mut forwarding = std::process::Command::new("ssh")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ssh -R");
    let banner = blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", remote)) {
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).unwrap_or(0);
                if n > 0 {
                    return String::from_utf8_lossy(&buf[..n]).into_owned();
                }
            }
            assert!(std::time::Instant::now() < deadline, "no remote forward");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await;
    let _ = forwarding.kill();
    let _ = forwarding.wait();
    assert!(
        banner.contains("220 through the remote forward"),
        "{banner}"
    );
    assert!(
        captured
            .lines()
            .contains(&format!("forward remote 127.0.0.1:{remote} true"))
            || captured
                .lines()
                .iter()
                .any(|l| l.starts_with("forward remote") && l.ends_with("true")),
        "{:?}",
        captured.lines()
    );

    // -A: the host sees the client's agent and the key in it.
    let socket = setup.dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let refusing = broker(setup.params(
        Policy {
            shell: true,
            ..Policy::default()
        },
        setup.pinned(),
    ))
    .await;
    let s = Arc::clone(&setup);
    let sock = socket.clone();
    let (listed, refused) = blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !sock.exists() {
            assert!(std::time::Instant::now() < deadline, "no agent socket");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let added = std::process::Command::new("ssh-add")
            .arg(&s.client)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .expect("ssh-add");
        assert!(added.status.success(), "{}", text(&added.stderr));
        let list_keys = |port: u16| {
            let mut args = s.options(port);
            args.extend([
                "-A".into(),
                "-p".into(),
                port.to_string(),
                "sluice@127.0.0.1".into(),
                "ssh-add -l".into(),
            ]);
            std::process::Command::new("ssh")
                .args(&args)
                .env("SSH_AUTH_SOCK", &sock)
                .output()
                .expect("ssh -A")
        };
        (list_keys(port), list_keys(refusing))
    })
    .await;
    // A role that does not allow it: the host has no agent.
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    assert!(!text(&refused.stdout).contains("ED25519"));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains("ED25519"),
        "{}",
        text(&listed.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_ends_a_running_scp_and_an_open_forward_within_a_second() {
    let setup = Arc::new(setup());
    let t = tree(&setup);
    // A target that speaks first and then stays open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.write_all(b"220 hello\r\n");
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let mut params = setup.params(
        Policy {
            shell: true,
            files: Some(rules(&t)),
            forwards: vec![format!("127.0.0.1:{target}")],
            ..Policy::default()
        },
        setup.pinned(),
    );
    params.journal = None;
    let (port, lease) = broker_with_lease(params).await;

    // An scp upload that would take half a minute (20 MB at scp's -l 4000 kbit/s).
    let big = t.local.join("big.bin");
    std::fs::write(&big, vec![5u8; 20 * 1024 * 1024]).expect("big");
    let mut scp_args = setup.options(port);
    scp_args.extend([
        "-O".into(),
        "-l".into(),
        "4000".into(),
        "-P".into(),
        port.to_string(),
        p(&big),
        format!("sluice@127.0.0.1:{}", p(&t.root.join("allowed/slow.bin"))),
    ]);
    let mut forward_args = setup.options(port);
    forward_args.extend([
        "-W".into(),
        format!("127.0.0.1:{target}"),
        "-p".into(),
        port.to_string(),
        "sluice@127.0.0.1".into(),
    ]);
    let spawn = |program: &str, args: &[String]| {
        std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect(program)
    };
    let mut forward = spawn("ssh", &forward_args);
    let mut scp = spawn("scp", &scp_args);
    // Both are running: the forward read the banner.
    let mut stdout = forward.stdout.take().expect("stdout");
    let banner = blocking(move || {
        let mut buf = [0u8; 16];
        let n = stdout.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await;
    assert!(banner.starts_with("220"), "{banner}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(scp.try_wait().expect("wait").is_none(), "scp ended early");
    let revoked = std::time::Instant::now();
    lease.end("the grant was revoked");
    let ended = blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let forward_done = forward.try_wait().expect("wait").is_some();
            let scp_done = scp.try_wait().expect("wait").is_some();
            if forward_done && scp_done {
                return true;
            }
            if std::time::Instant::now() > deadline {
                let _ = forward.kill();
                let _ = scp.kill();
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
    .await;
    assert!(ended, "a revoked session kept running");
    // Not a timing threshold on the product: a generous bound that only a hang exceeds.
    assert!(revoked.elapsed() < std::time::Duration::from_secs(10));
}
