//! A throwaway OpenSSH `sshd` on 127.0.0.1: its own host key, one authorized key (the one a
//! broker would hold) and one trusted user CA, the current OS user as the login, SFTP through
//! `internal-sftp`.
//! Stopped on drop.
//!
//! ```text
//!  Sshd::start() ── ssh-keygen: host key, client key ──▶ sshd_config (port, keys, no passwords)
//!                └─ /usr/sbin/sshd -D -e -f CONFIG (a child; its log in DIR/sshd.log)
//! ```

use crate::util::{free_port, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Where Debian's openssh-server puts the daemon.
const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed and its directory removed on drop.
#[derive(Debug)]
pub struct Sshd {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The login user (the OS user running the tests).
    pub user: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sshd {
    /// Generates keys, writes a config that accepts only the client key, and starts sshd.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-sshd-")
            .tempdir()
            .expect("tempdir");
        for name in ["host_ed25519", "client_ed25519", "user_ca"] {
            keygen(&dir.path().join(name));
        }
        std::fs::copy(
            dir.path().join("client_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        // Privilege separation needs its directory when sshd starts as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nPidFile {dir}/sshd.pid\n\
             LogLevel VERBOSE\nSubsystem sftp internal-sftp\nAllowTcpForwarding yes\n\
             X11Forwarding no\nMaxStartups 100\nTrustedUserCAKeys {dir}/user_ca.pub\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {SSHD} (apt-get install openssh-server): {e}")
            });
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .expect("user name")
        .trim()
        .to_owned();
        let sshd = Self {
            port,
            user,
            dir,
            child,
        };
        wait_for("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        sshd
    }

    /// `host:port` to give a broker.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The private key sshd accepts (what a broker holds).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// The host's public key, `ssh-ed25519 AAAA…`.
    pub fn host_key(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).expect("host key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A known_hosts file that pins the host key for this sshd's address.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key()),
        )
        .expect("known_hosts");
        path
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Runs the system `ssh` straight at this sshd with the client key and strict host key
    /// checking; `args` are the remote command.
    pub fn ssh_direct(&self, args: &[&str]) -> Output {
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .arg("-i")
            .arg(self.client_key())
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.user))
            .args(args)
            .output()
            .expect("run ssh")
    }

    /// The private key of a user certificate authority this sshd trusts (`TrustedUserCAKeys`).
    pub fn user_ca(&self) -> PathBuf {
        self.dir.path().join("user_ca")
    }

    /// The directory sshd's files live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "sluice-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
