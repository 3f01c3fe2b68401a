//! Small helpers: free ports, waiting, finding the workspace's binaries.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` every 50 ms until it returns true or `limit` passes; panics with `what` then.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Path of a binary built from this workspace (`sluice`, `sluiced`), built on first use with
/// the same profile as the tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // Tests live in target/<profile>/deps/, harness binaries (demo, bench) in
        // target/<profile>/; the workspace binaries sit in target/<profile>/.
        let exe = std::env::current_exe().expect("current_exe");
        let mut dir = exe.parent().expect("exe has a directory").to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "sluice-cli", "-p", "sluiced"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the binaries");
        assert!(status.success(), "building sluice and sluiced failed");
        dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A TCP relay on a free port toward `127.0.0.1:target` that records every byte flowing back to
/// its clients: what a client of the tunnel really received.
pub fn recording_relay(target: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let (mut client_r, mut server_w) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_r, &mut server_w);
                let _ = server_w.shutdown(std::net::Shutdown::Write);
            });
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                            if client.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, captured)
}

/// Runs `curl -sS ARGS` and returns the HTTP status and the body as text.
pub fn curl_raw(args: &[String]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl (install the curl package)");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    let status: u16 = status.trim().parse().expect("HTTP status");
    (status, body.to_string())
}

/// Runs `curl -sS ARGS` and returns the HTTP status and the body parsed as JSON (`null` when the
/// body is empty).
pub fn curl_json(args: &[String]) -> (u16, serde_json::Value) {
    let (status, body) = curl_raw(args);
    let value = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("HTTP {status}: not JSON ({e}): {body}"))
    };
    (status, value)
}

/// A TCP echo server on a free 127.0.0.1 port, one thread per connection; returns the port.
pub fn echo_server() -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// curl arguments that POST `form` (URL-encoded) to `url`.
pub fn form_args(url: &str, form: &[(&str, &str)]) -> Vec<String> {
    let mut args = vec![url.to_string()];
    for (k, v) in form {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    args
}

/// Everything under `dir` as text (gzip files decoded), to prove a value was written nowhere.
/// Panics when a directory or file cannot be read: a scan that skipped it would prove nothing.
pub fn files_text(dir: &std::path::Path) -> String {
    use std::io::Read;
    let mut all = String::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            all.push_str(&files_text(&path));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            // Sockets and files removed while scanning are not where values are written.
            if !path.exists() || !path.is_file() {
                continue;
            }
            panic!("cannot read {}", path.display());
        };
        if path.extension().is_some_and(|e| e == "gz") {
            let mut decoded = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut decoded)
                .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()));
            all.push_str(&decoded);
        } else {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}
