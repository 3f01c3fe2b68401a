//! A throwaway PostgreSQL cluster on 127.0.0.1.
//!
//! `initdb` refuses to run as root, so as root the cluster runs as the `postgres` OS user (the
//! Debian package creates it); otherwise as the current user.

use crate::util::free_port;
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Superuser of the test cluster; reachable only over the cluster's private Unix socket.
pub const ADMIN: &str = "sluice_admin";

/// A running cluster; stopped (immediate mode) and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The application role the broker logs in as.
    pub app_user: String,
    /// Its password: only the broker's config may know it.
    pub app_password: String,
    /// The database of the application.
    pub database: String,
    bin: PathBuf,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    /// Whether host connections must use TLS ([`Postgres::start_tls`]).
    tls: bool,
}

impl Postgres {
    /// initdb, start, create the application role and database with sample data.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Like [`Postgres::start`], but host connections must use TLS (`hostssl` only), with a
    /// server certificate for `localhost` and `127.0.0.1` from a CA written to
    /// [`Postgres::tls_ca`].
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// Whether host connections must use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    /// The CA certificate (PEM) of a [`Postgres::start_tls`] cluster.
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .expect("tempdir");
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown pg dir");
        }
        let port = free_port();
        let app_password = format!("pw-{}", random_hex(16));
        let pg = Self {
            port,
            app_user: "app".into(),
            app_password,
            database: "appdb".into(),
            bin,
            dir,
            owner,
            tls,
        };
        pg.init_and_start();
        pg
    }

    /// A CA (written to [`Self::tls_ca`]) and a server certificate and key signed by it in the
    /// data directory, readable by the server only.
    fn write_tls_files(&self) {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sluice test database CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        std::fs::write(self.tls_ca(), ca.pem()).expect("write CA");
        let (crt, pem) = (
            self.data().join("server.crt"),
            self.data().join("server.key"),
        );
        std::fs::write(&crt, cert.pem()).expect("write server.crt");
        std::fs::write(&pem, key.serialize_pem()).expect("write server.key");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if let Some((uid, gid)) = self.owner {
            for file in [&crt, &pem] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid)).expect("chown");
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The Unix socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.env("LC_ALL", "C.UTF-8").env_remove("PGDATA");
        cmd
    }

    fn init_and_start(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                ADMIN,
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .output()
            .expect("run initdb");
        check(&out, "initdb");
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 200\nlog_min_messages = warning\n",
            self.port,
            self.dir.path().display()
        );
        append(&self.data().join("postgresql.conf"), &conf);
        // Host connections: SCRAM only, so the broker must prove the password; with TLS,
        // nothing but TLS.
        let host = if self.tls {
            self.write_tls_files();
            append(
                &self.data().join("postgresql.conf"),
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            "hostssl"
        } else {
            "host"
        };
        std::fs::write(
            self.data().join("pg_hba.conf"),
            format!("local all all trust\n{host} all all 127.0.0.1/32 scram-sha-256\n"),
        )
        .expect("write pg_hba.conf");
        let log = self.dir.path().join("postgres.log");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("run pg_ctl start");
        if !out.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "pg_ctl start failed: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.admin_sql(
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256'; CREATE ROLE {user} LOGIN PASSWORD '{pw}'",
                user = self.app_user,
                pw = self.app_password,
            ),
        );
        self.admin_sql(
            "postgres",
            &format!(
                "CREATE DATABASE {db} OWNER {user}",
                user = self.app_user,
                db = self.database
            ),
        );
        self.admin_sql(
            &self.database.clone(),
            &format!(
                "SET ROLE {user};
                 CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
                 INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;",
                user = self.app_user
            ),
        );
    }

    /// Runs SQL as the superuser over the private Unix socket; panics on failure.
    pub fn admin_sql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(psql())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                ADMIN,
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        check(&out, "admin psql");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The address for the broker config.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits (up to 15 s) until a statement exactly `sql` is running (`running`) or until
    /// none is (`!running`), as `pg_stat_activity` shows it.
    pub fn wait_statement(&self, sql: &str, running: bool) {
        let count = format!(
            "select count(*) from pg_stat_activity where query = '{}' and state = 'active'",
            sql.replace('\'', "''")
        );
        crate::util::wait_for(
            &format!("`{sql}` running = {running}"),
            std::time::Duration::from_secs(15),
            || (self.admin_sql("postgres", &count).trim() != "0") == running,
        );
    }

    /// Stops the server now (for "target down" tests).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `psql` client binary.
pub fn psql() -> PathBuf {
    which("psql").unwrap_or_else(|| bin_dir().join("psql"))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bin_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(OsStr::to_str)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists())
    {
        return dir;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin or pg_config --bindir: install the `postgresql` package (the README's test command does)"
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}

/// As root: the uid/gid of the `postgres` user. Otherwise: run as ourselves.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY-free check of the effective uid: /proc/self/status is enough and avoids libc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("running as root needs a `postgres` OS user to run the cluster (install the postgresql package)");
    let fields: Vec<&str> = entry.split(':').collect();
    Some((
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    ))
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
