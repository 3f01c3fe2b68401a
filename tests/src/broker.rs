//! The real `sluiced` binary with a generated configuration.

use crate::postgres::Postgres;
use crate::util::{free_port, wait_for, workspace_bin};
use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `policy` lines for a guardrail profile `careful`: guarded-write, with every DELETE held for
/// a member of `dba` (for `policy_extra`; give a role `guardrails: careful`).
pub const CAREFUL_GUARDRAILS: &str = concat!(
    "  guardrails:\n",
    "    careful:\n",
    "      base: guarded-write\n",
    "      approvers: [dba]\n",
    "      rules:\n",
    "        - name: deletes-need-a-dba\n",
    "          action: approve\n",
    "          commands: [DELETE]\n",
);

/// Describes the broker's resources and policy before it starts.
#[derive(Debug, Default)]
pub struct BrokerBuilder {
    resources: String,
    roles: String,
    policy_extra: String,
    rules: String,
    identity: String,
    top_level: String,
    store: Option<String>,
    /// Keep the store in SQLite even under `SLUICE_TEST_STORE=postgres`.
    sqlite_only: bool,
    env: Vec<(String, String)>,
}

impl BrokerBuilder {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// A postgres resource for the cluster's application database; its password reaches the
    /// broker only through an environment variable of the broker process.
    pub fn postgres(self, name: &str, pg: &Postgres) -> Self {
        self.postgres_at(
            name,
            &pg.address(),
            &pg.database,
            &pg.app_user,
            &pg.app_password,
        )
    }

    /// A postgres resource with explicit connection facts.
    pub fn postgres_at(
        mut self,
        name: &str,
        address: &str,
        database: &str,
        user: &str,
        password: &str,
    ) -> Self {
        let var = format!(
            "SLUICE_TEST_PW_{}",
            name.to_uppercase().replace(['-', '.'], "_")
        );
        let _ = write!(
            self.resources,
            "  {name}:\n    kind: postgres\n    address: {address}\n    database: {database}\n    user: {user}\n    password: env:{var}\n"
        );
        self.env.push((var, password.to_string()));
        self
    }

    /// A kubernetes resource: the API server at `address` (`host:port`, HTTPS), its CA pinned,
    /// the broker's bearer `token` through an environment variable of the broker process, the
    /// caller impersonated.
    pub fn kube(mut self, name: &str, address: &str, ca: &std::path::Path, token: &str) -> Self {
        let var = format!(
            "SLUICE_TEST_KUBE_{}",
            name.to_uppercase().replace(['-', '.'], "_")
        );
        let _ = write!(
            self.resources,
            "  {name}:\n    kind: kubernetes\n    address: {address}\n    ca: {}\n    token: env:{var}\n    impersonate: true\n",
            ca.display()
        );
        self.env.push((var, token.to_string()));
        self
    }

    /// A kubernetes resource whose broker credential is a client certificate (no token).
    pub fn kube_with_cert(
        mut self,
        name: &str,
        address: &str,
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Self {
        let _ = write!(
            self.resources,
            "  {name}:\n    kind: kubernetes\n    address: {address}\n    ca: {}\n    client_cert: file:{}\n    client_key: file:{}\n    impersonate: true\n",
            ca.display(),
            cert.display(),
            key.display()
        );
        self
    }

    /// An ssh resource for a test sshd: the broker holds its client key and pins its host key.
    pub fn ssh(self, name: &str, sshd: &crate::Sshd) -> Self {
        self.ssh_pinned(name, sshd, &sshd.host_key())
    }

    /// An ssh resource pinning `host_key` (to test a mismatch).
    pub fn ssh_pinned(mut self, name: &str, sshd: &crate::Sshd, host_key: &str) -> Self {
        let _ = write!(
            self.resources,
            "  {name}:\n    kind: ssh\n    address: {}\n    user: {}\n    key: file:{}\n    host_key: \"{host_key}\"\n",
            sshd.address(),
            sshd.user,
            sshd.client_key().display()
        );
        self
    }

    /// An http resource: `body` holds its keys after `kind` (YAML, indented by four spaces);
    /// `env` the variables its `env:` credentials name.
    pub fn http(mut self, name: &str, body: &str, env: &[(&str, &str)]) -> Self {
        let _ = write!(self.resources, "  {name}:\n    kind: http\n{body}");
        for (var, value) in env {
            self.env.push(((*var).to_owned(), (*value).to_owned()));
        }
        self
    }

    /// A tcp resource.
    pub fn tcp(mut self, name: &str, address: &str) -> Self {
        let _ = write!(
            self.resources,
            "  {name}:\n    kind: tcp\n    address: {address}\n"
        );
        self
    }

    /// A raw `identity:` section (YAML, without the `identity:` line, indented by two spaces).
    pub fn identity(mut self, yaml: &str) -> Self {
        self.identity.push_str(yaml);
        self
    }

    /// A policy rule granting the auto-approved role `use` (max 12h) to subjects or groups.
    pub fn rule(self, name: &str, subjects: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        self.rule_with(name, subjects, groups, resources, &["use"], "")
    }

    /// A role under `policy.roles`: `body` is its YAML, each line indented by six spaces,
    /// e.g. `"      max_ttl: 1h\n      approval:\n        groups: [dba]\n"`.
    pub fn role(mut self, name: &str, body: &str) -> Self {
        let _ = write!(self.roles, "    {name}:\n{body}");
        self
    }

    /// Extra YAML inside `policy:` (indented by two spaces), e.g. `guardrails:` and `masking:`
    /// profiles.
    pub fn policy_extra(mut self, yaml: &str) -> Self {
        self.policy_extra.push_str(yaml);
        self
    }

    /// A policy rule with explicit roles and extra YAML lines (indented by six spaces).
    pub fn rule_with(
        mut self,
        name: &str,
        subjects: &[&str],
        groups: &[&str],
        resources: &[&str],
        roles: &[&str],
        extra: &str,
    ) -> Self {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(self.rules, "    - name: {name}");
        if !subjects.is_empty() {
            let _ = writeln!(self.rules, "      subjects: [{}]", list(subjects));
        }
        if !groups.is_empty() {
            let _ = writeln!(self.rules, "      groups: [{}]", list(groups));
        }
        let _ = writeln!(self.rules, "      resources: [{}]", list(resources));
        let _ = writeln!(self.rules, "      roles: [{}]", list(roles));
        self.rules.push_str(extra);
        self
    }

    /// Sets an environment variable of the broker process (what an `env:` credential names).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds top-level configuration (e.g. a `recording:` section); `{dir}` in it is replaced
    /// by the broker's directory.
    pub fn top_level(mut self, yaml: &str) -> Self {
        self.top_level.push_str(yaml);
        self
    }

    /// Keeps the store in database `database` of `pg` (created here, owned by its application
    /// user, whose password reaches the broker through an environment variable; over TLS with
    /// the cluster's CA when it is a [`Postgres::start_tls`] one) instead of a SQLite file, and recordings in the broker's own directory unless the configuration says
    /// otherwise: what several brokers behind one load balancer share ([`Broker::replica`]).
    pub fn shared_store(mut self, pg: &Postgres, database: &str) -> Self {
        pg.admin_sql(
            "postgres",
            &format!("CREATE DATABASE {database} OWNER {}", pg.app_user),
        );
        let ca = if pg.uses_tls() {
            format!("    ca: {}\n", pg.tls_ca().display())
        } else {
            String::new()
        };
        self.store = Some(format!(
            "store:\n  postgres:\n    url: postgres://{}@127.0.0.1:{}/{database}\n    password: env:SLUICE_STORE_PASSWORD\n{ca}",
            pg.app_user, pg.port
        ));
        self.env("SLUICE_STORE_PASSWORD", &pg.app_password.clone())
    }

    /// Keeps the store in the SQLite file `sluice.db` whatever `SLUICE_TEST_STORE` says: for
    /// tests that read or tamper with that file, as an intruder with the disk would.
    pub fn sqlite_store(mut self) -> Self {
        self.sqlite_only = true;
        self
    }

    /// Writes the config next to a fresh `sluiced init` and starts the broker.
    pub fn start(self) -> Broker {
        let mut broker = self.configure();
        broker.spawn();
        broker
    }

    /// Writes the config next to a fresh `sluiced init` without starting the broker (for
    /// `check-config` and refused starts).
    pub fn configure(self) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-broker-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let out = Command::new(workspace_bin("sluiced"))
            .args(["init", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(dir.path())
            .output()
            .expect("run sluiced init");
        assert!(
            out.status.success(),
            "sluiced init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resources = if self.resources.is_empty() {
            "resources: {}\n".to_string()
        } else {
            format!("resources:\n{}", self.resources)
        };
        let rules = if self.rules.is_empty() {
            "  rules: []\n".to_string()
        } else {
            format!("  rules:\n{}", self.rules)
        };
        let rules = format!(
            "policy:\n  roles:\n    use:\n      max_ttl: 12h\n{}{}{rules}",
            self.roles, self.policy_extra
        );
        let identity = if self.identity.is_empty() {
            String::new()
        } else {
            format!("identity:\n{}", self.identity)
        };
        let top_level = self
            .top_level
            .replace("{dir}", &dir.path().display().to_string());
        // `SLUICE_TEST_STORE=postgres`: every broker keeps its store in a PostgreSQL cluster
        // of its own, so the end-to-end journeys run on both stores (scripts/test.sh).
        let mut own_store = None;
        let mut this = self;
        if this.store.is_none()
            && !this.sqlite_only
            && std::env::var("SLUICE_TEST_STORE").is_ok_and(|store| store == "postgres")
        {
            let cluster = Postgres::start();
            this = this.shared_store(&cluster, "sluice_store");
            own_store = Some(cluster);
        }
        let store = match &this.store {
            Some(shared) if top_level.contains("recording:") => shared.clone(),
            Some(shared) => format!("{shared}recording:\n  dir: recordings\n"),
            None => "store:\n  sqlite: sluice.db\n".to_owned(),
        };
        let config = format!(
            "{identity}{top_level}listen: 127.0.0.1:{port}\ntls:\n  cert: tls/server.crt\n  key: tls/server.key\n  ca: tls/ca.crt\ntokens:\n  signing_key: keys/session-signing.pem\n  default_ttl: 1h\n  max_ttl: 12h\n{store}{resources}{rules}"
        );
        std::fs::write(dir.path().join("sluice.yaml"), config).expect("write config");
        Broker {
            port,
            env: this.env,
            child: None,
            dir,
            _own_store: own_store,
        }
    }
}

/// A running broker; killed on drop.
#[derive(Debug)]
pub struct Broker {
    /// Listen port on 127.0.0.1.
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The PostgreSQL cluster holding the store under `SLUICE_TEST_STORE=postgres`.
    _own_store: Option<Postgres>,
}

impl Broker {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The development CA `sluiced init` wrote.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    /// `curl` GET of `path` on the broker's listener, trusting its CA, with `token` as bearer
    /// when given: (status, body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-q",
            "-s",
            "--noproxy",
            "*",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(self.ca());
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd
            .arg(format!("{}{path}", self.url()))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// The broker's directory (config, keys, store, recordings).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("sluice.yaml")
    }

    /// The broker's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sluiced.log")).unwrap_or_default()
    }

    /// A session token from `sluiced token issue`.
    pub fn token(&self, subject: &str, groups: &[&str], ttl: &str) -> String {
        let out = Command::new(workspace_bin("sluiced"))
            .args(["token", "issue", "--config"])
            .arg(self.config())
            .args([
                "--subject",
                subject,
                "--groups",
                &groups.join(","),
                "--ttl",
                ttl,
            ])
            .output()
            .expect("run sluiced token issue");
        assert!(
            out.status.success(),
            "token issue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sluiced.log"))
            .expect("open log");
        let mut cmd = Command::new(workspace_bin("sluiced"));
        cmd.args(["serve", "--config"])
            .arg(self.config())
            .env("SLUICED_LOG", "info,sluiced=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sluiced");
        let port = self.port;
        wait_for("sluiced to listen", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sluiced exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        self.child = Some(child);
    }

    /// `sluiced ARGS... --config CONFIG` with the broker's environment, to completion.
    pub fn sluiced(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(workspace_bin("sluiced"));
        cmd.args(args).arg("--config").arg(self.config());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run sluiced")
    }

    /// Replaces every `from` in the config file with `to` (a policy change between restarts).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config()).expect("read config");
        assert!(text.contains(from), "the config has no {from:?}:\n{text}");
        std::fs::write(self.config(), text.replace(from, to)).expect("write config");
    }

    /// Stops the broker with SIGTERM, as a service manager would, and waits (up to a minute)
    /// for it to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().expect("the broker is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let mut exited = None;
        wait_for(
            "sluiced to exit after SIGTERM",
            Duration::from_secs(60),
            || {
                exited = child.try_wait().expect("try_wait");
                exited.is_some()
            },
        );
        exited.is_some_and(|s| s.success())
    }

    /// Starts a broker stopped by [`Self::terminate`] or [`Self::kill`] again.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        self.spawn();
    }

    /// Kills the broker (SIGKILL): the "broker down" case.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts another broker with this one's configuration, keys and certificate on a port of
    /// its own: a replica, when the store is shared ([`BrokerBuilder::shared_store`]).
    pub fn replica(&self) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-replica-")
            .tempdir()
            .expect("tempdir");
        for part in ["sluice.yaml", "tls", "keys"] {
            let out = Command::new("cp")
                .arg("-r")
                .arg(self.dir.path().join(part))
                .arg(dir.path())
                .output()
                .expect("run cp");
            assert!(out.status.success(), "copy {part}: {out:?}");
        }
        let port = free_port();
        let config = dir.path().join("sluice.yaml");
        let text = std::fs::read_to_string(&config).expect("read config");
        let from = format!("listen: 127.0.0.1:{}\n", self.port);
        assert!(text.contains(&from), "no {from:?} in:\n{text}");
        std::fs::write(
            &config,
            text.replace(&from, &format!("listen: 127.0.0.1:{port}\n")),
        )
        .expect("write config");
        let mut replica = Broker {
            port,
            env: self.env.clone(),
            child: None,
            dir,
            _own_store: None,
        };
        replica.spawn();
        replica
    }

    /// Adds an environment variable for the broker's next start and `sluiced` commands.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Starts the broker again with the same config, keys and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
