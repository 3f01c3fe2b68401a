//! A real OpenID provider on 127.0.0.1: the npm package `oidc-provider`, run by Node from
//! `tests/oidc/provider.mjs`, with the device flow (RFC 8628), refresh tokens and revocation.
//!
//! Its public client is [`CLIENT_ID`]; its users are `alice` (groups `dba`, `dev`), `bob`
//! (`dev`) and `mallory` (none), and any password signs them in. ID tokens carry
//! `preferred_username`, `email` and `groups` when the matching scopes are asked for.
//! [`OidcProvider::approve`] does the user's part of a device flow by driving the provider's own
//! pages over HTTP (`tests/oidc/approve.mjs`), as a browser would.
//!
//! Node.js (>= 20) is required: without it the tests fail, saying how to install it. The npm
//! packages are installed with `npm ci` on first use (once per machine; `scripts/deps.sh` does it
//! too).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The public client the CLI uses (no secret; device_code and refresh_token grants).
pub const CLIENT_ID: &str = "sluice-cli";

/// The users the provider knows, with their groups.
pub const USERS: &[(&str, &[&str])] = &[
    ("alice", &["dba", "dev"]),
    ("bob", &["dev"]),
    ("mallory", &[]),
];

/// The scopes a device flow should ask for to get an ID token with groups and a refresh token.
pub const SCOPES: &str = "openid profile email groups offline_access";

const START_LIMIT: Duration = Duration::from_secs(30);
const NODE_HELP: &str = "Node.js >= 20 (`node` and `npm` on PATH) is needed for the OIDC tests: \
     run `bash scripts/deps.sh`, or `apt-get install -y nodejs npm`";

/// A running provider; killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    issuer: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// Starts a provider with the default token lifetimes (300 s).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a provider with extra environment for `provider.mjs`, e.g.
    /// `("OIDC_ID_TOKEN_TTL", "5")`, `("OIDC_ACCESS_TOKEN_TTL", "5")`,
    /// `("OIDC_REFRESH_TOKEN_TTL", "60")`, `("OIDC_DEVICE_CODE_TTL", "30")`,
    /// `("OIDC_DEVICE_POLL_INTERVAL", "0")` (no `interval` in the device authorization response;
    /// the default is 1).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let node = node();
        ensure_node_modules();
        let dir = oidc_dir();
        // Port 0: the provider picks a free port and reports it, so no port can be stolen
        // between choosing it and listening on it.
        let mut child = Command::new(&node)
            .arg(dir.join("provider.mjs"))
            .arg("0")
            .current_dir(&dir)
            .env("OIDC_EXIT_ON_STDIN_EOF", "1")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} provider.mjs: {e}\n{NODE_HELP}", node.display()));

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = {
            let sink = stderr.clone();
            let mut pipe = child.stderr.take().expect("stderr piped");
            let (tx, rx) = mpsc::channel::<()>();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sink
                            .lock()
                            .expect("stderr lock")
                            .push_str(&String::from_utf8_lossy(&buf[..n])),
                    }
                }
                let _ = tx.send(());
            });
            rx
        };
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            // Keep reading after READY so the pipe never fills.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(issuer.trim().to_string());
                }
            }
        });

        let started = Instant::now();
        let issuer = loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(issuer) => break issuer,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // stdout closed: the process is exiting; give it a moment to be reaped.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > START_LIMIT {
                let why = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("was not ready after {START_LIMIT:?}"),
                };
                let _ = child.kill();
                let _ = child.wait();
                let _ = stderr_done.recv_timeout(Duration::from_secs(2));
                panic!(
                    "the OIDC provider (node provider.mjs) {why}; its stderr:\n{}",
                    stderr.lock().expect("stderr lock")
                );
            }
        };
        Self {
            issuer,
            child,
            stderr,
        }
    }

    /// `http://127.0.0.1:PORT`, the issuer (`iss`) and base URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public client's id, [`CLIENT_ID`].
    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    /// The issuer joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer has a port")
    }

    /// What the provider printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// As `user` in a browser: opens the verification page for `user_code`, confirms it, signs
    /// in and consents. Panics with the script's output if the provider does not end on its
    /// success page.
    pub fn approve(&self, user_code: &str, user: &str) {
        if let Err(e) = self.try_approve(user_code, user) {
            panic!("approving {user_code} as {user} failed: {e}");
        }
    }

    /// As [`approve`](Self::approve), but returns the failure (e.g. an unknown, expired or used
    /// code, or an unknown user).
    pub fn try_approve(&self, user_code: &str, user: &str) -> Result<(), String> {
        self.browse(&[user_code, user])
    }

    /// As `alice` in a browser: opens the verification page, confirms the code, signs in, then
    /// aborts at the consent prompt, so the device's polling gets `access_denied`.
    pub fn deny(&self, user_code: &str) {
        if let Err(e) = self.browse(&[user_code, "alice", "deny"]) {
            panic!("denying {user_code} failed: {e}");
        }
    }

    fn browse(&self, args: &[&str]) -> Result<(), String> {
        let out: Output = Command::new(node())
            .arg(oidc_dir().join("approve.mjs"))
            .args(args)
            .current_dir(oidc_dir())
            .env("OIDC_ISSUER", &self.issuer)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run node approve.mjs: {e}\n{NODE_HELP}"));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "node approve.mjs {} ({}):\n{}{}\n--- provider stderr ---\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.stderr()
            ))
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The claims of a JWT (its middle segment), unverified: for asserting what a provider issued.
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {jwt:?}"));
    let bytes = base64url_decode(payload).unwrap_or_else(|| panic!("bad base64url in {jwt:?}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT payload is not JSON: {e}"))
}

/// The header of a JWT (its first segment), unverified.
pub fn jwt_header(jwt: &str) -> serde_json::Value {
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = base64url_decode(header).unwrap_or_else(|| panic!("bad base64url in {jwt:?}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT header is not JSON: {e}"))
}

/// Decodes unpadded (or padded) base64url.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `tests/oidc`, where `package.json` and the scripts are.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// The `node` binary; panics with how to install it when missing.
fn node() -> PathBuf {
    let path = which("node").unwrap_or_else(|| panic!("`node` is not on PATH. {NODE_HELP}"));
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}. {NODE_HELP}", path.display()));
    let text = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let major: u32 = text
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "{} is Node.js {text:?}; {NODE_HELP}",
        path.display()
    );
    path
}

/// Runs `npm ci` in `tests/oidc` when its packages are missing: once per process (a static
/// mutex) and one process at a time (a lock file in the temp directory).
fn ensure_node_modules() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = oidc_dir();
    let installed = || dir.join("node_modules/oidc-provider/package.json").exists();
    if !installed() {
        let _lock = LockFile::acquire(&std::env::temp_dir().join("sluice-tests-npm-ci.lock"));
        if !installed() {
            let npm = which("npm").unwrap_or_else(|| panic!("`npm` is not on PATH. {NODE_HELP}"));
            let out = Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run npm ci in {}: {e}. {NODE_HELP}", dir.display()));
            assert!(
                out.status.success() && installed(),
                "npm ci in {} failed ({}):\n{}\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    *done = true;
}

/// A lock held by creating a file exclusively; removed on drop. A lock older than ten minutes is
/// taken as left behind by a killed process.
#[derive(Debug)]
struct LockFile(PathBuf);

impl LockFile {
    fn acquire(path: &Path) -> Self {
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Self(path.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_file(path);
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(900),
                        "waited 15 minutes for {} (another npm ci?)",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl OidcProvider {
    /// Runs a whole device flow for `user` (device authorization, the user's approval through
    /// the provider's pages, the token request) and returns the ID token.
    pub fn id_token_for(&self, user: &str) -> String {
        let (_, discovery) =
            crate::util::curl_json(&[self.url("/.well-known/openid-configuration")]);
        let endpoint = |key: &str| {
            discovery[key]
                .as_str()
                .unwrap_or_else(|| panic!("discovery has no {key}"))
                .to_string()
        };
        let form = |url: String, fields: &[(&str, &str)]| {
            crate::util::curl_json(&crate::util::form_args(&url, fields))
        };
        let (status, auth) = form(
            endpoint("device_authorization_endpoint"),
            &[("client_id", CLIENT_ID), ("scope", SCOPES)],
        );
        assert_eq!(status, 200, "device authorization: {auth}");
        let user_code = auth["user_code"].as_str().expect("user_code").to_string();
        let device_code = auth["device_code"]
            .as_str()
            .expect("device_code")
            .to_string();
        self.approve(&user_code, user);
        let (status, tokens) = form(
            endpoint("token_endpoint"),
            &[
                ("client_id", CLIENT_ID),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
            ],
        );
        assert_eq!(status, 200, "token request: {tokens}");
        tokens["id_token"].as_str().expect("id_token").to_string()
    }
}
