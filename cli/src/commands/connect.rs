//! `sluice connect RES`: check access, listen on 127.0.0.1, tunnel every local connection, and
//! either print how to connect or run `--exec` with the connection in its environment.

use crate::args::{ConnectArgs, GlobalArgs, Output};
use crate::exit::{CliError, CliResult, Exit};
use crate::tunnel::{self, TunnelSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_shared::Secret;
use sluice_shared::api::{ResourceCheck, ResourceKind};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;

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

pub async fn run(global: &GlobalArgs, args: ConnectArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let fixed = match &args.workload {
        Some(source) => Some(Secret::new(
            crate::workload::login(&broker, source, args.audience.as_deref())
                .await?
                .token,
        )),
        None => None,
    };
    let token = match &fixed {
        Some(t) => t.clone(),
        None => crate::auth::session::token(&broker).await?,
    };
    let path = format!("/v1/resources/{}/check", encode_segment(&args.resource));
    let check: ResourceCheck = broker.get(&path, Some(&token)).await?;

    let secret = (check.kind == ResourceKind::Postgres).then(one_time_secret);
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port.unwrap_or(0)));
    let listener = TcpListener::bind(bind).await.map_err(|e| {
        CliError::new(Exit::Failure, format!("cannot listen on {bind}: {e}"))
            .hint("choose another --port, or leave it out to get a free one")
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?
        .port();
    let details = Details {
        check: &check,
        port,
        secret: secret.as_ref(),
    };
    let spec = Arc::new(TunnelSpec {
        broker,
        resource: check.name.clone(),
        kind: check.kind,
        secret: secret.clone(),
        token: fixed,
    });
    let serving = tokio::spawn(tunnel::serve(listener, spec));

    let code = match args.exec {
        Some(command) => exec(&command, &details).await?,
        None => {
            details.print(args.output);
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("sluice: tunnel to {} closed", check.name);
            Exit::Ok as u8
        }
    };
    serving.abort();
    Ok(code)
}

/// What a local client needs to use the tunnel.
struct Details<'a> {
    check: &'a ResourceCheck,
    port: u16,
    secret: Option<&'a Secret<String>>,
}

impl Details<'_> {
    fn env(&self) -> Vec<(&'static str, String)> {
        let port = self.port.to_string();
        match (self.check.kind, self.secret) {
            (ResourceKind::Postgres, Some(secret)) => vec![
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
            _ => vec![("SLUICE_HOST", "127.0.0.1".into()), ("SLUICE_PORT", port)],
        }
    }

    fn uri(&self) -> Option<String> {
        let secret = self.secret?;
        Some(format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=disable",
            encode_segment(&self.check.subject),
            secret.expose(),
            self.port,
            encode_segment(self.check.database.as_deref().unwrap_or_default()),
        ))
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
                println!("{}", serde_json::Value::Object(obj));
            }
            Output::Text => {
                println!(
                    "Tunnel to {} ({}) open on 127.0.0.1:{} as {}.",
                    self.check.name,
                    self.check.kind.as_str(),
                    self.port,
                    self.check.subject
                );
                match self.uri() {
                    Some(uri) => {
                        println!("Connect with:");
                        println!("  psql \"{uri}\"");
                        println!(
                            "The password in it is a one-time secret for this tunnel only; it is not the database's password."
                        );
                    }
                    None => println!("Point your client at 127.0.0.1:{}.", self.port),
                }
                println!("Press Ctrl-C to close the tunnel.");
            }
        }
    }
}

/// Runs the command with the connection environment and returns its exit code.
async fn exec(command: &[String], details: &Details<'_>) -> CliResult<u8> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| CliError::new(Exit::Usage, "--exec needs a command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    for var in PG_ENV_TO_CLEAR {
        cmd.env_remove(var);
    }
    // The command gets a tunnel, not the identity behind it.
    cmd.env_remove("SLUICE_TOKEN");
    cmd.envs(details.env());
    let mut child = cmd.spawn().map_err(|e| {
        CliError::new(Exit::Failure, format!("cannot run {program}: {e}"))
            .hint("check that the program is installed and on PATH")
    })?;
    // Ctrl-C reaches the child through the terminal's process group; the CLI waits for the child
    // to decide what to do with it instead of dying first and cutting its tunnels.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::signal::ctrl_c() => continue,
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

/// 256 random bits, URL-safe: fits a libpq password and a URI without escaping.
fn one_time_secret() -> Secret<String> {
    let bytes: [u8; 32] = rand::random();
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// Percent-encodes everything outside the URI "unreserved" set.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
