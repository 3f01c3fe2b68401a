//! `sluice connect RES`: check that the resource exists, that you may ask for it and that its
//! target answers (before anyone is asked to approve anything), get an active grant (reusing the
//! one you hold, or asking and waiting for approval), listen on 127.0.0.1, tunnel every local
//! connection under that grant, and either print how to connect or run `--exec` with the
//! connection in its environment. `sluice run` uses the same [`check`] and [`Tunnel`].

use super::grant;
use crate::args::{ConnectArgs, GlobalArgs, Output};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::format::{self, clean};
use crate::present;
use crate::tunnel::{self, TunnelSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_shared::Secret;
use sluice_shared::api::{ResourceCheck, ResourceKind};
use sluice_shared::grants::Grant;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Environment variables that would make a launched libpq client ignore or fight the tunnel.
const PG_ENV_TO_CLEAR: &[&str] = &[
    "PGHOSTADDR",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGPASSFILE",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLROOTCERT",
];

/// The reason `connect` gives when the person gives none.
const DEFAULT_REASON: &str = "sluice connect";

/// `sluice kube RES -- ARGS`: `connect RES --exec kubectl ARGS`, with the namespace given.
pub async fn kube(global: &GlobalArgs, args: crate::args::KubeArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, None, None).await?;
    let check = check(&broker, &tokens, &args.resource).await?;
    require_kind(&check, ResourceKind::Kubernetes)?;
    let grant = grant::reuse_or_ask(&broker, &tokens, &check, &args.grant, "sluice kube").await?;
    let mut tunnel = Tunnel::open(&broker, &tokens, check, grant, None).await?;
    if let (Some(namespace), Access::Kube(kube)) = (&args.namespace, &mut tunnel.details.access) {
        kube.namespace(namespace, tunnel.details.port)?;
    }
    let mut command = vec![args.kubectl.clone()];
    command.extend(args.args.iter().cloned());
    tunnel.exec(&command).await
}

pub async fn run(global: &GlobalArgs, args: ConnectArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, args.workload.as_ref(), args.audience.as_deref()).await?;
    let check = check(&broker, &tokens, &args.resource).await?;
    let grant = grant::reuse_or_ask(&broker, &tokens, &check, &args.grant, DEFAULT_REASON).await?;
    let tunnel = Tunnel::open(&broker, &tokens, check, grant, args.port).await?;
    match args.exec {
        Some(command) => tunnel.exec(&command).await,
        None => tunnel.serve(args.output).await,
    }
}

/// The session token for this command: exchanged from the platform's token with `--workload`,
/// else the stored login (renewed as needed).
pub async fn token_source(
    broker: &Broker,
    workload: Option<&crate::workload::Source>,
    audience: Option<&str>,
) -> CliResult<TokenSource> {
    Ok(match workload {
        Some(source) => TokenSource::Fixed(Secret::new(
            crate::workload::login(broker, source, audience)
                .await?
                .token,
        )),
        None => TokenSource::Stored,
    })
}

/// `GET /v1/resources/{name}/check`: the resource exists, the caller may ask for a role on it,
/// and its target answered just now.
pub async fn check(
    broker: &Broker,
    tokens: &TokenSource,
    resource: &str,
) -> CliResult<ResourceCheck> {
    let token = tokens.get(broker).await?;
    let path = format!("/v1/resources/{}/check", super::encode_segment(resource));
    let check: ResourceCheck = broker.get(&path, Some(&token)).await?;
    for note in &check.notes {
        eprintln!("sluice: note: {}", clean(note));
    }
    Ok(check)
}

/// Refuses a resource of another kind than a kind-specific command serves (`sluice ssh` on a
/// database), pointing at `connect`.
pub fn require_kind(check: &ResourceCheck, kind: ResourceKind) -> CliResult<()> {
    if check.kind == kind {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Usage,
        format!(
            "'{}' is a {} resource, not {kind}",
            clean(&check.name),
            check.kind
        ),
    )
    .hint(format!("use `sluice connect {}`", clean(&check.name))))
}

/// An open listener on 127.0.0.1 whose connections are tunnelled under one grant. Dropping it
/// stops accepting.
#[derive(Debug)]
pub struct Tunnel {
    /// What a local client needs to use it.
    details: Details,
    /// The accept loop.
    serving: tokio::task::JoinHandle<()>,
    /// Set when the broker refused a tunnel because the grant is no longer active.
    ended: watch::Receiver<Option<String>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Tunnel {
    /// Listens on 127.0.0.1 (`port`, or a free one) and tunnels every connection under `grant`.
    pub async fn open(
        broker: &Broker,
        tokens: &TokenSource,
        check: ResourceCheck,
        grant: Grant,
        port: Option<u16>,
    ) -> CliResult<Self> {
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            CliError::new(Exit::Failure, format!("cannot listen on {bind}: {e}"))
                .hint("choose another --port, or leave it out to get a free one")
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?
            .port();
        let access = Access::for_kind(&check, port)?;
        let (ended_tx, ended) = watch::channel(None);
        let spec = Arc::new(TunnelSpec {
            broker: broker.clone(),
            resource: check.name.clone(),
            kind: check.kind.clone(),
            secret: access.secret(),
            tokens: tokens.clone(),
            grant: grant.id.clone(),
            ended: ended_tx,
            local_tls: access.local_tls(),
        });
        let serving = tokio::spawn(tunnel::serve(listener, spec));
        Ok(Self {
            details: Details {
                check,
                port,
                access,
                grant,
            },
            serving,
            ended,
        })
    }

    /// Prints the connection details and keeps tunnelling until Ctrl-C (exit 0) or until the
    /// broker refuses a tunnel because the grant ended (exit 15).
    async fn serve(mut self, output: Output) -> CliResult<u8> {
        self.details.print(output);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("sluice: tunnel to {} closed", clean(&self.details.check.name));
                Ok(Exit::Ok as u8)
            }
            why = ended(&mut self.ended) => Err(CliError::new(
                Exit::GrantEnded,
                format!(
                    "grant {} for {} has ended, so the tunnel is closed ({why})",
                    clean(&self.details.grant.id),
                    clean(&self.details.check.name)
                ),
            )
            .hint(format!(
                "run `sluice connect {}` again to request a new one",
                clean(&self.details.check.name)
            ))),
        }
    }

    /// Runs the command with the connection in its environment and returns its exit code
    /// (128+N if a signal N killed it).
    ///
    /// While it runs, SIGTERM is passed on to it, and so is SIGINT unless it came from the
    /// terminal (which sends it to the command too); the CLI waits for the command to decide
    /// what to do instead of dying first and cutting its tunnels. If the grant ends meanwhile,
    /// that is said once; the command sees its connections refused.
    pub async fn exec(mut self, command: &[String]) -> CliResult<u8> {
        use tokio::signal::unix::{SignalKind, signal};
        let (program, rest) = command
            .split_first()
            .ok_or_else(|| CliError::new(Exit::Usage, "no command to run"))?;
        let signals = signal(SignalKind::interrupt())
            .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
        let (mut int, mut term) = signals
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot handle signals: {e}")))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest);
        for var in PG_ENV_TO_CLEAR {
            cmd.env_remove(var);
        }
        // The command gets a tunnel, not the identity behind it.
        cmd.env_remove("SLUICE_TOKEN");
        cmd.envs(self.details.env());
        let mut child = cmd.spawn().map_err(|e| {
            CliError::new(Exit::Failure, format!("cannot run {program}: {e}"))
                .hint("check that the program is installed and on PATH")
        })?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        let forward = |signal| {
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, signal);
            }
        };
        let mut told = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = int.recv() => {
                    if !sigint_reached_the_command() {
                        forward(rustix::process::Signal::INT);
                    }
                }
                _ = term.recv() => forward(rustix::process::Signal::TERM),
                why = ended(&mut self.ended), if !told => {
                    told = true;
                    eprintln!(
                        "sluice: grant {} for {} has ended ({why}); new connections are refused",
                        clean(&self.details.grant.id),
                        clean(&self.details.check.name)
                    );
                }
            }
        }
        .map_err(|e| CliError::new(Exit::Failure, format!("waiting for {program} failed: {e}")))?;
        use std::os::unix::process::ExitStatusExt;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
            _ => Exit::Failure as u8,
        })
    }
}

/// Resolves with the broker's explanation once a tunnel was refused because the grant ended;
/// never, if the listener stopped without that.
async fn ended(rx: &mut watch::Receiver<Option<String>>) -> String {
    match rx.wait_for(Option::is_some).await {
        Ok(why) => why.clone().unwrap_or_default(),
        Err(_) => std::future::pending().await,
    }
}

/// Whether a SIGINT was typed at the terminal and so reached the command as well: the terminal
/// sends it to its foreground process group, which the command shares with this process.
fn sigint_reached_the_command() -> bool {
    std::fs::File::open("/dev/tty")
        .and_then(|tty| rustix::termios::tcgetpgrp(&tty).map_err(Into::into))
        .is_ok_and(|foreground| foreground == rustix::process::getpgrp())
}

/// What a local client needs to use the tunnel.
#[derive(Debug)]
struct Details {
    check: ResourceCheck,
    port: u16,
    access: Access,
    grant: Grant,
}

/// What local clients present to the tunnels, and how they are told to: the one place
/// `connect` knows resource kinds (a new kind adds a variant here).
#[derive(Debug)]
enum Access {
    /// PostgreSQL: a one-time password for these tunnels only.
    Postgres(Secret<String>),
    /// SSH: a per-connect key the broker accepts for these tunnels only, and its host key
    /// pinned for this port; the files live as long as `connect` does.
    Ssh(super::ssh::LocalKeys),
    /// Kubernetes: a one-time bearer token in a temporary kubeconfig.
    Kube(KubeConfig),
    /// HTTP: a one-time bearer token the client sends to the local base URL.
    Http(Secret<String>),
    /// Anything else: nothing to present.
    Plain,
}

impl Access {
    fn for_kind(check: &ResourceCheck, port: u16) -> CliResult<Self> {
        Ok(match check.kind {
            ResourceKind::Postgres => Self::Postgres(one_time_secret()),
            ResourceKind::Ssh => Self::Ssh(super::ssh::LocalKeys::make(check, port)?),
            ResourceKind::Kubernetes => Self::Kube(KubeConfig::make(&check.name, port)?),
            ResourceKind::Http => Self::Http(one_time_secret()),
            _ => Self::Plain,
        })
    }

    /// What each tunnel sends in the secret header.
    fn secret(&self) -> Option<Secret<String>> {
        match self {
            Self::Postgres(secret) | Self::Http(secret) => Some(secret.clone()),
            Self::Ssh(keys) => Some(Secret::new(keys.public.clone())),
            Self::Kube(kube) => Some(kube.token.clone()),
            Self::Plain => None,
        }
    }

    /// TLS the local listener serves before tunnelling.
    fn local_tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        match self {
            Self::Kube(kube) => Some(Arc::clone(&kube.tls)),
            _ => None,
        }
    }
}

impl Details {
    fn env(&self) -> Vec<(&'static str, String)> {
        let port = self.port.to_string();
        match &self.access {
            Access::Postgres(secret) => vec![
                ("PGHOST", "127.0.0.1".into()),
                ("PGPORT", port),
                ("PGUSER", self.check.subject.clone()),
                (
                    "PGDATABASE",
                    self.check.database.clone().unwrap_or_default(),
                ),
                ("PGPASSWORD", secret.expose().clone()),
                // The hop to the CLI is loopback; the hop to the broker is TLS.
                ("PGSSLMODE", "disable".into()),
            ],
            Access::Ssh(keys) => vec![
                ("SLUICE_HOST", "127.0.0.1".into()),
                ("SLUICE_PORT", port),
                ("SLUICE_SSH_KEY", keys.key.display().to_string()),
                (
                    "SLUICE_SSH_KNOWN_HOSTS",
                    keys.known_hosts.display().to_string(),
                ),
            ],
            Access::Kube(kube) => vec![
                ("KUBECONFIG", kube.path.display().to_string()),
                ("SLUICE_URL", format!("https://127.0.0.1:{port}")),
                ("SLUICE_HOST", "127.0.0.1".into()),
                ("SLUICE_PORT", port),
            ],
            Access::Http(token) => vec![
                ("SLUICE_URL", format!("http://127.0.0.1:{port}")),
                ("SLUICE_HTTP_TOKEN", token.expose().clone()),
                (
                    "SLUICE_HTTP_HEADER",
                    format!("Authorization: Bearer {}", token.expose()),
                ),
                ("SLUICE_HOST", "127.0.0.1".into()),
                ("SLUICE_PORT", port),
            ],
            Access::Plain => vec![("SLUICE_HOST", "127.0.0.1".into()), ("SLUICE_PORT", port)],
        }
    }

    fn uri(&self) -> Option<String> {
        let Access::Postgres(secret) = &self.access else {
            return None;
        };
        Some(format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=disable",
            super::encode_segment(&self.check.subject),
            secret.expose(),
            self.port,
            super::encode_segment(self.check.database.as_deref().unwrap_or_default()),
        ))
    }

    /// How to connect, for people.
    fn instructions(&self) -> Vec<String> {
        match (&self.access, self.uri()) {
            (_, Some(uri)) => vec![
                "Connect with:".into(),
                format!("  psql \"{uri}\""),
                "The password in it is a one-time secret for this tunnel only; it is not the \
                 database's password."
                    .into(),
            ],
            (Access::Ssh(keys), None) => vec![
                "Connect with:".into(),
                format!(
                    "  ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -p {} \
                     sluice@127.0.0.1",
                    keys.key.display(),
                    keys.known_hosts.display(),
                    self.port
                ),
                "The key is made for this connect only; the broker refuses any other.".into(),
            ],
            (Access::Kube(kube), None) => vec![
                "Use kubectl with:".into(),
                format!("  kubectl --kubeconfig {} get ns", kube.path.display()),
                "Its token is made for this connect only; the cluster's credential stays in the \
                 broker."
                    .into(),
            ],
            (Access::Http(token), None) => vec![
                "Call it with:".into(),
                format!(
                    "  curl -H 'Authorization: Bearer {}' http://127.0.0.1:{}/",
                    token.expose(),
                    self.port
                ),
                "The token is made for this connect only; the service's credential stays in the \
                 broker."
                    .into(),
            ],
            _ => vec![format!("Point your client at 127.0.0.1:{}.", self.port)],
        }
    }

    fn print(&self, output: Output) {
        match output {
            Output::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("resource".into(), self.check.name.clone().into());
                obj.insert("kind".into(), self.check.kind.as_str().into());
                obj.insert("host".into(), "127.0.0.1".into());
                obj.insert("port".into(), self.port.into());
                if let Some(uri) = self.uri() {
                    obj.insert("user".into(), self.check.subject.clone().into());
                    obj.insert("database".into(), self.check.database.clone().into());
                    obj.insert("uri".into(), uri.into());
                }
                if let Access::Kube(kube) = &self.access {
                    obj.insert("kubeconfig".into(), kube.path.display().to_string().into());
                }
                if let Access::Http(token) = &self.access {
                    obj.insert(
                        "url".into(),
                        format!("http://127.0.0.1:{}", self.port).into(),
                    );
                    obj.insert(
                        "header".into(),
                        format!("Authorization: Bearer {}", token.expose()).into(),
                    );
                }
                if let Access::Ssh(keys) = &self.access {
                    obj.insert("ssh_key".into(), keys.key.display().to_string().into());
                    obj.insert(
                        "ssh_known_hosts".into(),
                        keys.known_hosts.display().to_string().into(),
                    );
                }
                obj.insert("grant".into(), self.grant.id.clone().into());
                obj.insert("role".into(), self.grant.role.clone().into());
                obj.insert("expires_at".into(), self.grant.expires_at.into());
                println!("{}", serde_json::Value::Object(obj));
            }
            Output::Text => {
                println!(
                    "Tunnel to {} ({}) open on 127.0.0.1:{} as {}.",
                    clean(&self.check.name),
                    self.check.kind.as_str(),
                    self.port,
                    clean(&self.check.subject)
                );
                let now = format::now();
                match self.grant.expires_at {
                    Some(at) => println!(
                        "Grant {} ({}) is active until {}.",
                        clean(&self.grant.id),
                        clean(&self.grant.role),
                        present::until(at, now)
                    ),
                    None => println!(
                        "Grant {} ({}) is active.",
                        clean(&self.grant.id),
                        clean(&self.grant.role)
                    ),
                }
                for line in self.instructions() {
                    println!("{line}");
                }
                println!("Press Ctrl-C to close the tunnel.");
            }
        }
    }
}

/// A kubeconfig for the local tunnel, in a private temporary directory removed when it drops:
/// the server is the tunnel's port, the user's token the one-time token (never the cluster's
/// credential).
#[derive(Debug)]
pub struct KubeConfig {
    token: Secret<String>,
    /// The local listener's TLS, with a certificate made for this connect.
    tls: Arc<rustls::ServerConfig>,
    /// That certificate (PEM), which the kubeconfig trusts.
    certificate: String,
    /// The kubeconfig file.
    pub path: std::path::PathBuf,
    resource: String,
    _dir: tempfile::TempDir,
}

impl KubeConfig {
    fn make(resource: &str, port: u16) -> CliResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-kube-")
            .tempdir()
            .map_err(|e| {
                CliError::new(
                    Exit::Failure,
                    format!("cannot make a temporary directory: {e}"),
                )
            })?;
        let (tls, certificate) = local_tls()?;
        let config = Self {
            token: one_time_secret(),
            tls,
            certificate,
            path: dir.path().join("kubeconfig"),
            resource: resource.to_owned(),
            _dir: dir,
        };
        config.write(port, None)?;
        Ok(config)
    }

    /// Starts the context in `namespace`.
    fn namespace(&self, namespace: &str, port: u16) -> CliResult<()> {
        self.write(port, Some(namespace))
    }

    fn write(&self, port: u16, namespace: Option<&str>) -> CliResult<()> {
        // JSON is YAML: no YAML writer needed, and no quoting mistakes.
        let mut context = serde_json::json!({"cluster": self.resource, "user": "sluice"});
        if let Some(namespace) = namespace {
            context["namespace"] = namespace.into();
        }
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.resource, "cluster": {
                "server": format!("https://127.0.0.1:{port}"),
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&self.certificate),
            }}],
            "users": [{"name": "sluice", "user": {"token": self.token.expose()}}],
            "contexts": [{"name": self.resource, "context": context}],
            "current-context": self.resource,
        });
        write_private(&self.path, config.to_string().as_bytes())
    }
}

/// A self-signed certificate for 127.0.0.1, made for one connect, and a TLS acceptor serving
/// it: the loopback hop is encrypted and kubectl pins exactly this certificate.
fn local_tls() -> CliResult<(Arc<rustls::ServerConfig>, String)> {
    let failed = |e: &dyn std::fmt::Display| {
        CliError::new(
            Exit::Failure,
            format!("cannot make the local TLS certificate: {e}"),
        )
    };
    let key = rcgen::KeyPair::generate().map_err(|e| failed(&e))?;
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| failed(&e))?;
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    let der =
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| failed(&e))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .map_err(|e| failed(&e))?;
    Ok((Arc::new(config), cert.pem()))
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, data: &[u8]) -> CliResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(data))
        .map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("cannot write {}: {e}", path.display()),
            )
        })
}

/// 256 random bits, URL-safe: fits a libpq password and a URI without escaping.
pub(super) fn one_time_secret() -> Secret<String> {
    let bytes: [u8; 32] = rand::random();
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}
