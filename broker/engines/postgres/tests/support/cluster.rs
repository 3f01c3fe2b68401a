//! A throwaway PostgreSQL cluster on 127.0.0.1, with TLS (a test CA and a leaf for
//! `localhost`) and one role per authentication method.
//!
//! initdb refuses to run as root and these tests do, so initdb and the server run as the
//! `postgres` OS user in a temporary directory chowned to it. The cluster is stopped
//! (`pg_ctl stop -m immediate`) when the value is dropped, also on panic.

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// Password of role `app` (SCRAM-stored, `scram-sha-256` in pg_hba). Long and distinctive so
/// a leak scan cannot miss it or match by accident.
pub const APP_PASSWORD: &str = "Tgt-pw-7f3a9c1e-scram-do-not-leak";
/// Password of role `md5user` (MD5-stored, `md5` in pg_hba).
pub const MD5_PASSWORD: &str = "Tgt-pw-0b5e2d44-md5-do-not-leak";
/// Password of role `pwuser` (`password` in pg_hba: cleartext on the wire).
pub const CLEARTEXT_PASSWORD: &str = "Tgt-pw-91c0aa37-clear-do-not-leak";
/// The database the resource points at.
pub const DATABASE: &str = "appdb";

/// Where the server binaries are; `PG_BIN_DIR` overrides.
fn bin_dir() -> PathBuf {
    std::env::var_os("PG_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A running cluster.
pub struct Cluster {
    /// Holds the data directory, socket and log; removed after the server stops.
    dir: tempfile::TempDir,
    bin: PathBuf,
    uid: u32,
    gid: u32,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server certificate.
    pub ca_der: Vec<u8>,
}

impl Cluster {
    /// initdb, configure, start, create roles and the database.
    pub fn start() -> Cluster {
        let bin = bin_dir();
        for tool in ["initdb", "pg_ctl", "postgres", "psql"] {
            assert!(
                bin.join(tool).is_file(),
                "PostgreSQL 15 server binaries are missing ({} not found): install postgresql \
                 (e.g. `apt-get install postgresql-15`) or set PG_BIN_DIR to its bin directory; \
                 these tests are not skipped",
                bin.join(tool).display()
            );
        }
        let (uid, gid) = postgres_user();
        let dir = tempfile::tempdir().unwrap();
        chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let data = dir.path().join("data");

        let out = as_postgres(uid, gid, dir.path(), &bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .unwrap();
        check(&out, "initdb");

        let port = free_port();
        let ca_der = write_tls_files(&data, uid, gid);
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                 fsync = off\nmax_connections = 30\nshared_buffers = 16MB\n",
                dir.path().display()
            ),
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all md5user 127.0.0.1/32 md5\n\
             host all pwuser 127.0.0.1/32 password\n\
             host all trustuser 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();

        let cluster = Cluster {
            dir,
            bin,
            uid,
            gid,
            port,
            ca_der,
        };
        let log = cluster.dir.path().join("server.log");
        let out = as_postgres(uid, gid, cluster.dir.path(), &cluster.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        if !out.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "pg_ctl start failed: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        cluster.psql(&[
            &format!("CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'"),
            &format!("CREATE DATABASE {DATABASE} OWNER app"),
            &format!("CREATE ROLE pwuser LOGIN PASSWORD '{CLEARTEXT_PASSWORD}'"),
            "CREATE ROLE trustuser LOGIN",
            &format!(
                "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD '{MD5_PASSWORD}'"
            ),
        ]);
        cluster
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA as a root store, for the verifying TLS modes.
    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(self.ca_der.clone()))
            .unwrap();
        Arc::new(roots)
    }

    /// Runs one query as the superuser and returns its output unaligned (`psql -At`).
    pub fn psql_value(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-At", "-U", "postgres", "-d", "postgres"])
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .unwrap();
        check(&out, "psql");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs SQL commands (each its own transaction) as the superuser over the Unix socket;
    /// setup only, never through the broker.
    pub fn psql(&self, commands: &[&str]) {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-h")
        .arg(self.dir.path())
        .args(["-p", &self.port.to_string()]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().unwrap();
        check(&out, "psql");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            self.uid,
            self.gid,
            self.dir.path(),
            &self.bin.join("pg_ctl"),
        )
        .arg("-D")
        .arg(self.dir.path().join("data"))
        .args(["-m", "immediate", "-w", "stop"])
        .output();
    }
}

fn as_postgres(uid: u32, gid: u32, cwd: &Path, program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).env_remove("PGDATA");
    // Only switch when running as root; as the postgres user itself nothing needs changing.
    if current_uid() == 0 {
        cmd.gid(gid).uid(uid);
    }
    cmd
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// uid and gid of the `postgres` OS user, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("no `postgres` OS user in /etc/passwd: install postgresql (it creates the user)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A CA and a leaf for `localhost` / 127.0.0.1, written as server.crt and server.key (owned
/// by postgres, key 0600 as the server insists). Returns the CA certificate (DER).
fn write_tls_files(data: &Path, uid: u32, gid: u32) -> Vec<u8> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

    let crt = data.join("server.crt");
    let key = data.join("server.key");
    std::fs::write(&crt, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    for f in [&crt, &key] {
        chown(f, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    ca.der().to_vec()
}
