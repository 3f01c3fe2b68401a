//! The TCP engine: an opaque relay with byte counts. It reads nothing of what it carries, so it
//! enforces no role setting, and with no protocol to tell a cancel from a session every tunnel
//! is a session whose record opens before the `101`.

use super::{BoxFuture, Engine, Served, Session, Tunnel};
use crate::tunnel::{SessionOpener, log_end};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sluice_config::{Need, ResourceSpec};
use sluice_engine::{Lease, LeaseHandle};
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;
use tracing::{info, warn};

/// No role setting: guardrails, masking and content recording need an engine that reads.
pub const ENFORCES: &[Need] = &[];

/// Relays TCP.
#[derive(Debug)]
pub struct TcpEngine;

impl Engine for TcpEngine {
    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>> {
        Box::pin(async move {
            let ResourceSpec::Tcp(spec) = &tunnel.authz.resource().spec else {
                return Err(super::another_kind("tcp"));
            };
            let mut opener = tunnel.opener;
            // A refusal here is still an HTTP answer the CLI prints.
            opener
                .open(None, false)
                .await
                .map_err(|why| ApiError::new(ErrorCode::Unavailable, why))?;
            Ok(Box::new(TcpSession {
                address: spec.address.clone(),
                opener,
            }) as Box<dyn Session>)
        })
    }
}

struct TcpSession {
    address: String,
    opener: SessionOpener,
}

impl Session for TcpSession {
    fn lease(&self) -> Arc<LeaseHandle> {
        self.opener.lease()
    }

    fn serve(
        self: Box<Self>,
        mut stream: TokioIo<Upgraded>,
        lease: Lease,
    ) -> BoxFuture<'static, Served> {
        Box::pin(async move {
            info!(kind = "tcp", "session started");
            let (end, bytes_up, bytes_down) =
                match sluice_engine::tcp::serve(&mut stream, &self.address, lease).await {
                    Ok(outcome) => log_end(&outcome),
                    Err(e) => {
                        warn!(error = %e, "session refused: target unreachable");
                        (format!("error: target unreachable: {e}"), 0, 0)
                    }
                };
            Served {
                opener: self.opener,
                end,
                bytes_up,
                bytes_down,
            }
        })
    }

    fn abandon(self: Box<Self>) -> SessionOpener {
        self.opener
    }
}
