//! What the SSH engine's tests share: a real sshd, keys, a broker-side listener serving
//! `sluice_engine_ssh::serve`, and the system OpenSSH tools pointed at it.

#![allow(dead_code)]

use russh::keys::ssh_key::PrivateKey;
use sluice_engine::LeaseHandle;
use sluice_engine_ssh::{HostKey, Params, Policy, Target, serve};
use sluice_tests::Sshd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// A broker-side listener serving every connection with `params`; its port.
pub async fn broker(params: Params) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let params = params.clone();
            tokio::spawn(async move {
                let handle = LeaseHandle::new();
                let _summary = serve(stream, params, handle.lease()).await;
            });
        }
    });
    port
}

/// A broker-side listener whose every session holds one lease: ending `lease` revokes them
/// all, as a revoked grant does.
pub async fn broker_with_lease(params: Params) -> (u16, Arc<LeaseHandle>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = Arc::new(LeaseHandle::new());
    let shared = Arc::clone(&handle);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let params = params.clone();
            let lease = shared.lease();
            tokio::spawn(async move {
                let _summary = serve(stream, params, lease).await;
            });
        }
    });
    (port, handle)
}

/// An ed25519 key pair on disk for the client, and its public key.
pub fn client_key(dir: &Path, name: &str) -> (PathBuf, russh::keys::PublicKey) {
    let path = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("pub");
    (
        path,
        russh::keys::PublicKey::from_openssh(public.trim()).expect("public key"),
    )
}

pub struct Setup {
    pub sshd: Sshd,
    pub dir: tempfile::TempDir,
    pub broker_key: PrivateKey,
    pub client: PathBuf,
    pub client_public: russh::keys::PublicKey,
}

pub fn setup() -> Setup {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, client_public) = client_key(dir.path(), "client");
    let (host, _) = client_key(dir.path(), "broker_host");
    let broker_key = russh::keys::load_secret_key(host, None).expect("host key");
    Setup {
        sshd,
        dir,
        broker_key,
        client,
        client_public,
    }
}

impl Setup {
    pub fn params(&self, policy: Policy, host_key: HostKey) -> Params {
        let key = russh::keys::load_secret_key(self.sshd.client_key(), None).expect("broker key");
        Params {
            client_key: self.client_public.clone(),
            host_key: self.broker_key.clone(),
            target: Target {
                address: self.sshd.address(),
                user: self.sshd.user.clone(),
                credential: sluice_engine_ssh::Credential::Key(Arc::new(key)),
                host_key,
            },
            policy,
            journal: None,
            approvals: None,
        }
    }

    pub fn pinned(&self) -> HostKey {
        HostKey::parse(&self.sshd.host_key()).expect("host key")
    }

    /// The options every OpenSSH tool needs to reach the broker on `port` with the client key
    /// and the broker's host key pinned (`-o …`, `-i KEY`), for `ssh`, `scp`, `sftp`, and in
    /// `rsync -e`/`GIT_SSH_COMMAND`.
    pub fn options(&self, port: u16) -> Vec<String> {
        let known = self.dir.path().join("known_hosts");
        std::fs::write(
            &known,
            format!(
                "[127.0.0.1]:{port} {}\n",
                self.broker_key.public_key().to_openssh().expect("openssh")
            ),
        )
        .expect("known_hosts");
        [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([
            format!("UserKnownHostsFile={}", known.display()),
            "-i".into(),
            self.client.display().to_string(),
        ])
        .collect()
    }

    /// `ssh OPTIONS -p PORT` as one shell word list, for `rsync -e` and `GIT_SSH_COMMAND`.
    pub fn ssh_command(&self, port: u16) -> String {
        let mut words = vec!["ssh".to_owned()];
        words.extend(self.options(port));
        words.push("-p".into());
        words.push(port.to_string());
        words.join(" ")
    }

    /// The system ssh at the broker on `port`, pinning the broker's host key, with `key`.
    pub fn ssh(&self, port: u16, key: &Path, args: &[&str]) -> Output {
        let known = self.dir.path().join("known_hosts");
        std::fs::write(
            &known,
            format!(
                "[127.0.0.1]:{port} {}\n",
                self.broker_key.public_key().to_openssh().expect("openssh")
            ),
        )
        .expect("known_hosts");
        Command::new("ssh")
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
            .arg(key)
            .args(["-p", &port.to_string(), "sluice@127.0.0.1"])
            .args(args)
            .output()
            .expect("ssh")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Every event the engine journals, as one line each, for assertions.
#[derive(Debug, Default)]
pub struct Captured {
    pub lines: std::sync::Mutex<Vec<String>>,
}

impl Captured {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn push(&self, line: String) {
        self.lines.lock().expect("lines").push(line);
    }
}

impl sluice_engine_ssh::Journal for Captured {
    fn output(&self, _data: &[u8], _stderr: bool) {}
    fn resize(&self, _cols: u32, _rows: u32) {}
    fn input(&self, data: &[u8]) {
        self.push(format!("input {}", String::from_utf8_lossy(data)));
    }
    fn command(&self, command: &str, judgement: &sluice_engine_ssh::Judgement) {
        self.push(format!("exec {command} {judgement:?}"));
    }
    fn held(&self, command: &str, rule: &str, _request: &str, outcome: Result<&str, &str>) {
        self.push(format!("held {command} {rule} {outcome:?}"));
    }
    fn shell(&self, allowed: bool) {
        self.push(format!("shell {allowed}"));
    }
    fn exit(&self, status: u32) {
        self.push(format!("exit {status}"));
    }
    fn file(&self, event: &sluice_engine_ssh::FileEvent<'_>) {
        self.push(format!(
            "file {} {}{}{} {:?}",
            event.op,
            event.path,
            event.to.map(|to| format!(" -> {to}")).unwrap_or_default(),
            event
                .bytes
                .map(|b| format!(" {b} bytes"))
                .unwrap_or_default(),
            event.outcome
        ));
    }
    fn forward(&self, to: &str, allowed: bool) {
        self.push(format!("forward {to} {allowed}"));
    }
    fn note(&self, message: &str) {
        self.push(format!("note {message}"));
    }
}

/// Runs `program args` and returns its output.
pub fn run(program: &str, args: &[String]) -> Output {
    Command::new(program).args(args).output().expect(program)
}

/// The SHA-256 of a file, as hex.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
