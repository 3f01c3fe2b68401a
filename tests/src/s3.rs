//! `moto_server` (from PyPI) as a real S3-compatible object store on 127.0.0.1, with one
//! bucket `recs`: where brokers write recordings in the tests that need a bucket.

use crate::util::free_port;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `moto_server` on a free port with bucket `recs`; killed on drop.
#[derive(Debug)]
pub struct S3 {
    child: Child,
    port: u16,
}

/// The access key the tests give the brokers (moto accepts any).
pub const KEY_ID: &str = "testing-key-id";
/// The secret access key the tests give the brokers; must never appear in what they write.
pub const SECRET: &str = "testing-secret-access-key";

impl S3 {
    /// Starts the server and creates the bucket. A port picked free can be taken by a parallel
    /// test before moto binds it (moto then exits, and whoever took it answers the connect):
    /// readiness is the bucket created over HTTP by a moto still running, with a fresh port when
    /// it is not.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server (pip install 'moto[server]'; scripts/deps.sh installs it)");
            let mut s3 = Self { child, port };
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(status)) = s3.child.try_wait() {
                    last = format!("moto_server on port {port} exited: {status}");
                    break;
                }
                let made = s3.curl(&["-X", "PUT", &s3.url("/recs")]);
                if made.status.success() {
                    return s3;
                }
                last = format!("creating the bucket on port {port}: {made:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not serve a bucket in three tries; last: {last}");
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `recording:` section that sends a broker's recordings to the bucket (credentials
    /// from `S3_KEY_ID` and `S3_SECRET`, see [`Self::env`]), keys under `prefix`.
    pub fn recording_yaml(&self, prefix: &str) -> String {
        format!(
            "recording:\n  s3:\n    bucket: recs\n    endpoint: {}\n    prefix: {prefix}\n    access_key_id: env:S3_KEY_ID\n    secret_access_key: env:S3_SECRET\n",
            self.url("")
        )
    }

    /// The environment [`Self::recording_yaml`] reads.
    pub fn env() -> [(&'static str, &'static str); 2] {
        [("S3_KEY_ID", KEY_ID), ("S3_SECRET", SECRET)]
    }

    fn curl(&self, args: &[&str]) -> std::process::Output {
        Command::new("curl")
            .args(["-q", "-s", "-f", "--noproxy", "*"])
            .args(args)
            .output()
            .expect("curl")
    }

    /// The response headers of `HEAD` on object `key` of the bucket (signed, as a client with
    /// the brokers' key would).
    pub fn head(&self, key: &str) -> String {
        let user = format!("{KEY_ID}:{SECRET}");
        let out = self.curl(&[
            "-I",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
            &self.url(&format!("/recs/{key}")),
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The bucket's listing (S3's XML): every key in it.
    pub fn keys(&self) -> String {
        let out = self.curl(&[&self.url("/recs?list-type=2")]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
