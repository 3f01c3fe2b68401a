//! The local side of tunnels: a 127.0.0.1 listener whose every accepted connection becomes one
//! tunnel to the broker, opened under the grant `connect` holds.
//!
//! When the broker refuses a tunnel because that grant is no longer active (expired, revoked),
//! the local client gets the reason (a FATAL error for postgres clients) and `connect` is told
//! through [`TunnelSpec::ended`], so it can say the grant ended instead of failing tunnel by
//! tunnel.

use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::CliError;
use crate::pgerror;
use sluice_shared::api::ResourceKind;
use sluice_shared::{ErrorCode, Secret};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Buffer per direction on the local side; matches the broker's relay.
const BUF_SIZE: usize = 64 * 1024;

/// What every tunnel of one `sluice connect` shares.
#[derive(Debug)]
pub struct TunnelSpec {
    /// Where to open tunnels.
    pub broker: Broker,
    /// The resource name.
    pub resource: String,
    /// Its kind (decides how refusals are reported to the local client).
    pub kind: ResourceKind,
    /// The one-time secret local postgres clients must present (the broker checks it).
    pub secret: Option<Secret<String>>,
    /// A session token fixed for this connect (`--workload`), or the stored login, read (and
    /// renewed if needed) per tunnel.
    pub tokens: TokenSource,
    /// The grant every tunnel names in the grant header.
    pub grant: String,
    /// Set to the broker's explanation when it refuses a tunnel because the grant is no longer
    /// active.
    pub ended: tokio::sync::watch::Sender<Option<String>>,
    /// TLS the local end serves first (kubernetes: kubectl sends its token only over TLS).
    pub local_tls: Option<Arc<rustls::ServerConfig>>,
}

/// Accepts local connections forever, one task (and one tunnel) each.
pub async fn serve(listener: TcpListener, spec: Arc<TunnelSpec>) {
    loop {
        match listener.accept().await {
            Ok((local, peer)) => {
                let spec = spec.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(local, &peer.to_string(), &spec).await {
                        eprintln!("{}", e.line());
                    }
                });
            }
            Err(e) => {
                eprintln!("sluice: accepting a local connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(local: TcpStream, peer: &str, spec: &TunnelSpec) -> Result<(), CliError> {
    let _ = tune(&local);
    match &spec.local_tls {
        Some(config) => match tokio_rustls::TlsAcceptor::from(Arc::clone(config))
            .accept(local)
            .await
        {
            Ok(tls) => relay(tls, peer, spec).await,
            // A client that does not speak TLS (or gave up) has nothing to tunnel.
            Err(_) => Ok(()),
        },
        None => relay(local, peer, spec).await,
    }
}

async fn relay<S>(mut local: S, peer: &str, spec: &TunnelSpec) -> Result<(), CliError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Read the token per tunnel: a `sluice login` in another terminal fixes a running connect.
    let opened = match spec.tokens.get(&spec.broker).await {
        Ok(token) => {
            spec.broker
                .open_tunnel(
                    &spec.resource,
                    &token,
                    &spec.grant,
                    spec.secret.as_ref(),
                    peer,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let (mut remote, leftover) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            if spec.kind == ResourceKind::Postgres {
                let _ = local.write_all(&pgerror::fatal("28000", &e.line())).await;
            }
            let _ = local.shutdown().await;
            if e.is(ErrorCode::GrantInactive) {
                // `connect` says it once, in its own words.
                spec.ended.send_replace(Some(e.message));
                return Ok(());
            }
            return Err(e);
        }
    };
    if !leftover.is_empty() && local.write_all(&leftover).await.is_err() {
        return Ok(());
    }
    // Errors here are the normal end of a connection (reset by either side); nothing to report.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut local, &mut remote, BUF_SIZE, BUF_SIZE).await;
    Ok(())
}

/// `TCP_NODELAY` and keepalive (idle 60 s, then 6 probes 10 s apart) on a socket the CLI owns,
/// as the broker sets them on its own: a broker or local client that vanished without a FIN
/// ends the tunnel within about two minutes instead of never.
pub fn tune(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(6);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}
