//! `sluice ssh [LOGIN@]RESOURCE [-- SSH ARGS]`: the system `ssh` through the broker;
//! `sluice proxy ssh`, its `ProxyCommand`; and `sluice config ssh`, which lets plain `ssh`,
//! `scp`, `sftp`, `rsync` and `git` do the same for `RESOURCE.sluice`.
//!
//! ```text
//!  sluice ssh web -- uptime
//!    ├─ check + grant (reused when active)
//!    ├─ per-connect key: ssh-keygen into a 0700 temp dir; the broker accepts only it
//!    ├─ known_hosts: the broker's SSH host key under the alias sluice-web (strict checking)
//!    └─ ssh -o ProxyCommand="sluice proxy ssh web --grant G --public-key KEY.pub" … sluice@web uptime
//!                 └─ stdio ⇄ TLS tunnel (no local port another user could reach)
//! ```

use super::connect::{check, require_kind, token_source};
use super::grant;
use crate::args::{ConfigSshArgs, GlobalArgs, ProxySshArgs, SshArgs};
use crate::exit::{CliError, CliResult, Exit};
use sluice_shared::Secret;
use sluice_shared::api::ResourceKind;
use std::path::Path;
use std::process::Command;

/// The reason `ssh` gives when the person gives none.
const DEFAULT_REASON: &str = "sluice ssh";

pub async fn run(global: &GlobalArgs, args: SshArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, None, None).await?;
    // LOGIN@RESOURCE asks for another login the role allows; `sluice` is the resource's own.
    let (login, resource) = match args.target.rsplit_once('@') {
        Some((login, resource)) => (login.to_owned(), resource.to_owned()),
        None => ("sluice".to_owned(), args.target.clone()),
    };
    let check = check(&broker, &tokens, &resource).await?;
    require_kind(&check, ResourceKind::Ssh)?;
    let host_key = check.ssh_host_key.clone().ok_or_else(|| {
        CliError::new(Exit::Failure, "the broker did not send its SSH host key")
            .hint("upgrade sluiced to a version that serves ssh resources")
    })?;
    let grant = grant::reuse_or_ask(&broker, &tokens, &check, &args.grant, DEFAULT_REASON).await?;

    let (dir, key) = key_dir(&check.name)?;
    let alias = format!("sluice-{}", check.name);
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, format!("{alias} {host_key}\n"))
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot write known_hosts: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot find this program: {e}")))?;
    let mut proxy = format!(
        "{} --broker {}",
        quote(&exe),
        quote(Path::new(broker.url()))
    );
    if let Some(ca) = &global.ca {
        proxy.push_str(&format!(" --ca {}", quote(ca)));
    }
    proxy.push_str(&format!(
        " proxy ssh {} --grant {} --public-key {}",
        quote(Path::new(&check.name)),
        quote(Path::new(&grant.id)),
        quote(&key.with_extension("pub"))
    ));
    let status = Command::new("ssh")
        .arg("-o")
        .arg(format!("ProxyCommand={proxy}"))
        .arg("-o")
        .arg(format!("HostKeyAlias={alias}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .args([
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "KbdInteractiveAuthentication=no",
        ])
        .arg("-i")
        .arg(&key)
        .args(&args.ssh)
        .arg(format!("{login}@{}", check.name))
        .args(&args.command)
        .status()
        .map_err(|e| {
            CliError::new(Exit::Failure, format!("cannot run ssh: {e}"))
                .hint("install the OpenSSH client (apt-get install openssh-client)")
        })?;
    Ok(status
        .code()
        .map_or(255, |c| u8::try_from(c).unwrap_or(255)))
}

/// The per-connect key and pinned broker host key of `sluice connect` on an ssh resource, in a
/// private temporary directory removed when it drops.
#[derive(Debug)]
pub struct LocalKeys {
    /// The private key file to give ssh (`-i`).
    pub key: std::path::PathBuf,
    /// The public key, sent with each tunnel.
    pub public: String,
    /// A known_hosts file pinning the broker's SSH host key for `[127.0.0.1]:PORT`.
    pub known_hosts: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalKeys {
    /// Makes the key and the known_hosts file for a listener on `port`.
    pub fn make(check: &sluice_shared::api::ResourceCheck, port: u16) -> CliResult<Self> {
        let host_key = check.ssh_host_key.clone().ok_or_else(|| {
            CliError::new(Exit::Failure, "the broker did not send its SSH host key")
                .hint("upgrade sluiced to a version that serves ssh resources")
        })?;
        let (dir, key) = key_dir(&check.name)?;
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot read the new key: {e}")))?
            .trim()
            .to_owned();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}\n"))
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot write known_hosts: {e}")))?;
        Ok(Self {
            key,
            public,
            known_hosts,
            _dir: dir,
        })
    }
}

/// `ProxyCommand`: one tunnel to the broker on stdin/stdout. Nothing but the SSH stream goes
/// to stdout; progress (a pending approval) goes to stderr, which ssh shows.
pub async fn proxy(global: &GlobalArgs, args: ProxySshArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let tokens = token_source(&broker, None, None).await?;
    let public = std::fs::read_to_string(&args.public_key).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!("cannot read {}: {e}", args.public_key.display()),
        )
    })?;
    let resource = match &args.suffix {
        Some(suffix) => args
            .resource
            .strip_suffix(suffix.as_str())
            .unwrap_or(&args.resource),
        None => args.resource.as_str(),
    }
    .to_owned();
    let grant = match &args.grant {
        Some(grant) => grant.clone(),
        None => {
            let check = check(&broker, &tokens, &resource).await?;
            require_kind(&check, ResourceKind::Ssh)?;
            if let Some(known_hosts) = &args.known_hosts {
                let host_key = check.ssh_host_key.as_deref().ok_or_else(|| {
                    CliError::new(Exit::Failure, "the broker did not send its SSH host key")
                })?;
                pin(known_hosts, &args.resource, host_key)?;
            }
            let wanted = crate::args::GrantArgs {
                role: args.role.clone(),
                ttl: None,
                reason: None,
            };
            grant::reuse_or_ask(&broker, &tokens, &check, &wanted, DEFAULT_REASON)
                .await?
                .id
        }
    };
    let token = tokens.get(&broker).await?;
    let (mut remote, leftover) = broker
        .open_tunnel(
            &resource,
            &token,
            &grant,
            Some(&Secret::new(public.trim().to_owned())),
            "stdio",
        )
        .await?;
    // ssh hands a ProxyCommand pipes: read and write them as non-blocking pipes on the
    // runtime (tokio's stdin/stdout go through a blocking thread per read, which caps bulk
    // transfers); anything else (a terminal, a file) falls back to those.
    let mut local: Box<dyn Duplex> = match pipes() {
        Some((rx, tx)) => Box::new(tokio::io::join(rx, tx)),
        None => Box::new(tokio::io::join(tokio::io::stdin(), tokio::io::stdout())),
    };
    if !leftover.is_empty() {
        use tokio::io::AsyncWriteExt;
        let _ = local.write_all(&leftover).await;
    }
    // Either side closing is the normal end of the connection.
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut local, &mut remote, COPY, COPY).await;
    // ssh has gone (its pipe closed first): end the tunnel cleanly, not as a dropped one.
    use tokio::io::AsyncWriteExt;
    let _ = remote.shutdown().await;
    Ok(0)
}

/// Buffer size of each direction of the proxy's copy.
const COPY: usize = 64 * 1024;

/// Both halves of the local side of the proxy.
trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// stdin and stdout as non-blocking pipes, when both are pipes.
fn pipes() -> Option<(
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Sender,
)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let rx = tokio::net::unix::pipe::Receiver::from_file(std::fs::File::from(stdin)).ok()?;
    let tx = tokio::net::unix::pipe::Sender::from_file(std::fs::File::from(stdout)).ok()?;
    Some((rx, tx))
}

/// Replaces `host`'s line in a known_hosts file with the broker's current host key (written
/// to a temporary file and renamed, so concurrent connections never read half a file).
fn pin(known_hosts: &Path, host: &str, host_key: &str) -> CliResult<()> {
    let failed = |e: std::io::Error| {
        CliError::new(
            Exit::Failure,
            format!("cannot update {}: {e}", known_hosts.display()),
        )
    };
    let old = std::fs::read_to_string(known_hosts).unwrap_or_default();
    let mut lines: Vec<&str> = old
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(host))
        .collect();
    let line = format!("{host} {host_key}");
    lines.push(&line);
    let dir = known_hosts.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    std::io::Write::write_all(&mut file, (lines.join("\n") + "\n").as_bytes()).map_err(failed)?;
    file.persist(known_hosts).map_err(|e| failed(e.error))?;
    Ok(())
}

/// `sluice config ssh`: the user's key for tunnels made by plain ssh, and an ssh_config block
/// that sends `*.DOMAIN` through `sluice proxy ssh`.
pub fn config(global: &GlobalArgs, args: ConfigSshArgs) -> CliResult<u8> {
    let broker = super::broker(global)?;
    let dir = crate::profile::dir()?.join("ssh");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot make {}: {e}", dir.display())))?;
    restrict(&dir)?;
    let key = dir.join("id_ed25519");
    if !key.exists() {
        keygen(&key, "config")?;
    }
    let known_hosts = dir.join("known_hosts");
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot find this program: {e}")))?;
    let mut proxy = format!(
        "{} --broker {}",
        quote(&exe),
        quote(Path::new(broker.url()))
    );
    if let Some(ca) = &global.ca {
        proxy.push_str(&format!(" --ca {}", quote(ca)));
    }
    proxy.push_str(&format!(
        " proxy ssh %h --suffix .{} --public-key {} --known-hosts {}",
        args.domain,
        quote(&key.with_extension("pub")),
        quote(&known_hosts)
    ));
    let block = format!(
        "# Written by `sluice config ssh` for {url}. Hosts named RESOURCE.{domain} go through\n\
         # the broker under your grant (reused, or asked for); the broker holds the host's\n\
         # credential and pins its own host key below. Include this file from ~/.ssh/config.\n\
         Host *.{domain}\n\
         \x20   ProxyCommand {proxy}\n\
         \x20   IdentityFile {key}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   IdentityAgent none\n\
         \x20   UserKnownHostsFile {known}\n\
         \x20   GlobalKnownHostsFile /dev/null\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   PasswordAuthentication no\n\
         \x20   KbdInteractiveAuthentication no\n\
         \x20   ForwardAgent no\n\
         \x20   ForwardX11 no\n",
        url = broker.url(),
        domain = args.domain,
        key = quote(&key),
        known = quote(&known_hosts),
    );
    let output = args
        .output
        .unwrap_or_else(|| dir.parent().unwrap_or(&dir).join("ssh_config"));
    if output == Path::new("-") {
        print!("{block}");
        return Ok(Exit::Ok as u8);
    }
    std::fs::write(&output, block).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("cannot write {}: {e}", output.display()),
        )
    })?;
    eprintln!(
        "Wrote {}. Add this line to the top of ~/.ssh/config:\n  Include {}\nthen: ssh RESOURCE.{} (scp, sftp, rsync and git too)",
        output.display(),
        output.display(),
        args.domain
    );
    Ok(Exit::Ok as u8)
}

/// 0700: the directory holds a private key.
fn restrict(dir: &Path) -> CliResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("cannot restrict {}: {e}", dir.display()),
        )
    })
}

/// A private temporary directory holding a fresh per-connect key (`key`, `key.pub`).
fn key_dir(resource: &str) -> CliResult<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-ssh-")
        .tempdir()
        .map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("cannot make a temporary directory: {e}"),
            )
        })?;
    let key = dir.path().join("key");
    keygen(&key, resource)?;
    Ok((dir, key))
}

fn keygen(path: &Path, resource: &str) -> CliResult<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-C")
        .arg(format!("sluice-{resource}"))
        .arg("-f")
        .arg(path)
        .output()
        .map_err(|e| {
            CliError::new(Exit::Failure, format!("cannot run ssh-keygen: {e}"))
                .hint("install the OpenSSH client (apt-get install openssh-client)")
        })?;
    if !out.status.success() {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// A word for the shell that runs the ProxyCommand.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    format!("'{}'", text.replace('\'', "'\\''"))
}
