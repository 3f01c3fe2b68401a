//! What the MCP tools do, without MCP: grants asked for and remembered per resource, and the
//! tunnels each tool opens under them (one PostgreSQL connection per resource, kept between
//! calls like a psql session; one HTTP exchange per call; `sluice ssh` and `sluice kube` run as
//! child processes for commands).
//!
//! Every path goes through the broker's tunnel and engine, so the agent gets exactly what a
//! person with the same grant would: the same decisions, the same masking, the same recording.
//! Nothing here sees a credential; the one-time tunnel secrets never leave this process.

use super::pg::{Outcome, PgConnection, PgError};
use crate::auth::session::TokenSource;
use crate::client::Broker;
use crate::exit::CliError;
use base64::Engine as _;
use sluice_shared::Secret;
use sluice_shared::api::{ResourceCheck, ResourceKind, ResourceList};
use sluice_shared::grants::{GRANTS_PATH, Grant, GrantList, GrantRequest, GrantState};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A PostgreSQL connection through one tunnel, under one grant.
struct PgLink {
    grant: String,
    conn: PgConnection<TlsStream<TcpStream>>,
}

/// The limits on what one tool result carries into the agent's context.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows per query.
    pub rows: usize,
    /// Bytes per result (rows, output, body).
    pub bytes: usize,
}

/// The broker, the caller's identity, and what this MCP server holds on their behalf.
pub struct Access {
    pub broker: Broker,
    pub tokens: TokenSource,
    /// `--broker` and `--ca` for the `sluice ssh`/`sluice kube` children.
    pub global: Vec<String>,
    /// The MCP client, as it named itself (shown in session lists).
    pub client: Mutex<String>,
    pub limits: Limits,
    /// The grant obtained per resource (active or pending).
    grants: Mutex<HashMap<String, Grant>>,
    /// One connection per postgres resource; a call waits for the one before it.
    pg: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<PgLink>>>>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("broker", &self.broker.url())
            .finish_non_exhaustive()
    }
}

/// A tool failure: one message a model can act on (what happened, what to do next).
pub type Failure = String;

/// A CLI error as a tool failure: the message and its hint, never a stack trace.
pub fn failure(e: CliError) -> Failure {
    match e.hint {
        Some(hint) => format!("{}; {hint}", e.message),
        None => e.message,
    }
}

impl Access {
    pub fn new(broker: Broker, tokens: TokenSource, global: Vec<String>, limits: Limits) -> Self {
        Self {
            broker,
            tokens,
            global,
            client: Mutex::new("mcp".into()),
            limits,
            grants: Mutex::new(HashMap::new()),
            pg: Mutex::new(HashMap::new()),
        }
    }

    async fn token(&self) -> Result<Secret<String>, Failure> {
        self.tokens.get(&self.broker).await.map_err(failure)
    }

    /// `GET /v1/resources`.
    pub async fn resources(&self) -> Result<ResourceList, Failure> {
        let token = self.token().await?;
        self.broker
            .get("/v1/resources", Some(&token))
            .await
            .map_err(failure)
    }

    /// `GET /v1/resources/{name}/check`: it exists, the caller may use it, it answers.
    pub async fn check(&self, resource: &str) -> Result<ResourceCheck, Failure> {
        let token = self.token().await?;
        let path = format!(
            "/v1/resources/{}/check",
            super::super::encode_segment(resource)
        );
        self.broker.get(&path, Some(&token)).await.map_err(failure)
    }

    /// Asks for a grant (or gets back the caller's active or pending one for the same role).
    pub async fn request(
        &self,
        resource: &str,
        role: Option<String>,
        ttl_secs: Option<u64>,
        reason: String,
    ) -> Result<(Grant, bool), Failure> {
        let request = GrantRequest {
            resource: resource.to_owned(),
            role,
            ttl_secs,
            reason,
            reuse: true,
        };
        let response = super::super::grant::ask(&self.broker, &self.tokens, &request)
            .await
            .map_err(failure)?;
        self.remember(&response.grant);
        Ok((response.grant, response.reused))
    }

    fn remember(&self, grant: &Grant) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.insert(grant.resource.clone(), grant.clone());
    }

    /// The grant with this id, long-polling up to `wait_secs` while it is pending.
    pub async fn poll(&self, id: &str, wait_secs: u64, votes: usize) -> Result<Grant, Failure> {
        if !super::super::grant::well_formed_id(id) {
            return Err(format!(
                "'{id}' is not a grant id (they look like g_…); use the id request_access returned"
            ));
        }
        let token = self.token().await?;
        let path = format!(
            "{GRANTS_PATH}/{}?wait={wait_secs}&state=pending&votes={votes}",
            super::super::encode_segment(id)
        );
        let grant: Grant = self
            .broker
            .long_poll(&path, &token, wait_secs)
            .await
            .map_err(failure)?;
        let grant = super::super::grant::checked(grant).map_err(failure)?;
        self.remember(&grant);
        Ok(grant)
    }

    /// The active grant this server holds on `resource`, or the caller's own active one the
    /// broker lists (from an earlier run).
    pub async fn active(&self, resource: &str) -> Result<Grant, Failure> {
        let known = {
            let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
            grants.get(resource).cloned()
        };
        if let Some(grant) = known {
            return match grant.state {
                GrantState::Active => Ok(grant),
                GrantState::Pending => Err(format!(
                    "the grant {} on {resource} is still waiting for approval; call \
                     wait_for_access with grant_id {}",
                    grant.id, grant.id
                )),
                _ => Err(format!(
                    "the grant {} on {resource} has ended ({}); call request_access again",
                    grant.id,
                    grant.state.as_str()
                )),
            };
        }
        let token = self.token().await?;
        let list: GrantList = self
            .broker
            .get(GRANTS_PATH, Some(&token))
            .await
            .map_err(failure)?;
        let found = list
            .grants
            .into_iter()
            .find(|g| g.resource == resource && g.state == GrantState::Active);
        match found {
            Some(grant) => {
                self.remember(&grant);
                Ok(grant)
            }
            None => {
                // An unknown resource, or one policy gives the caller nothing on, says so.
                self.check(resource).await?;
                Err(format!(
                    "you hold no active grant on '{resource}'; call request_access with this \
                     resource (and a role and reason) first"
                ))
            }
        }
    }

    /// Ends the grant on `resource` (or the grant with this id).
    pub async fn revoke(&self, id: &str) -> Result<Grant, Failure> {
        let grant = super::super::grant::revoke(
            &self.broker,
            &self.tokens,
            id,
            Some("done (the agent ended its access)".into()),
        )
        .await
        .map_err(failure)?;
        let grant = super::super::grant::checked(grant).map_err(failure)?;
        self.remember(&grant);
        self.pg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&grant.resource);
        Ok(grant)
    }

    /// Which of `columns` the grant's masking rewrites, and the detectors it runs.
    pub async fn masked_columns(
        &self,
        grant: &str,
        columns: &[sluice_shared::api::QualifiedColumn],
    ) -> Result<sluice_shared::api::MaskedColumns, Failure> {
        let token = self.token().await?;
        let path = format!(
            "{GRANTS_PATH}/{}/masked-columns",
            super::super::encode_segment(grant)
        );
        let request = sluice_shared::api::MaskedColumnsRequest {
            columns: columns.to_vec(),
        };
        self.broker
            .post(&path, &token, &request)
            .await
            .map_err(failure)
    }

    /// The grant id for a resource name or a grant id.
    pub fn grant_id(&self, resource_or_id: &str) -> Option<String> {
        if resource_or_id.starts_with("g_") {
            return Some(resource_or_id.to_owned());
        }
        let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.get(resource_or_id).map(|g| g.id.clone())
    }

    fn client_label(&self) -> String {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs one statement on a postgres resource, on the connection kept for it (opened, or
    /// opened again, as needed). `on_notice` sees the broker's notices as they arrive.
    pub async fn query(
        &self,
        resource: &str,
        sql: &str,
        limit: usize,
        on_notice: impl FnMut(&str),
    ) -> Result<Outcome, Failure> {
        let grant = self.active(resource).await?;
        let slot = {
            let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(pg.entry(resource.to_owned()).or_default())
        };
        let mut link = slot.lock().await;
        // Taken out while the statement runs: if the call is dropped half-way (the client
        // cancelled it), the connection goes with it, so a held statement is withdrawn and
        // the next call does not read a half-finished answer.
        let mut open = match link.take() {
            Some(open) if open.grant == grant.id => open,
            _ => self.connect_pg(resource, &grant).await?,
        };
        match open.conn.query(sql, limit, on_notice).await {
            Ok(outcome) => {
                *link = Some(open);
                Ok(outcome)
            }
            Err(e) => {
                // The session is gone (grant ended, broker restarted): the next call reconnects.
                Err(format!(
                    "the session to '{resource}' ended: {e}; if the grant ended, call \
                     request_access again, otherwise retry the query"
                ))
            }
        }
    }

    /// One tunnel to a resource of `kind` under `grant`, with a fresh one-time secret.
    async fn tunnel(
        &self,
        resource: &str,
        grant: &Grant,
        kind: ResourceKind,
        tool: &str,
    ) -> Result<Tunnel, Failure> {
        let check = self.check(resource).await?;
        if check.kind != kind {
            return Err(format!(
                "'{resource}' is a {} resource; {tool} {kind} resources only",
                check.kind
            ));
        }
        let secret = super::super::connect::one_time_secret();
        let token = self.token().await?;
        let (stream, leftover) = self
            .broker
            .open_tunnel(
                resource,
                &token,
                &grant.id,
                Some(&secret),
                &self.client_label(),
            )
            .await
            .map_err(failure)?;
        Ok(Tunnel {
            check,
            secret,
            stream,
            leftover,
        })
    }

    async fn connect_pg(&self, resource: &str, grant: &Grant) -> Result<PgLink, Failure> {
        let tunnel = self
            .tunnel(resource, grant, ResourceKind::Postgres, "query runs SQL")
            .await?;
        let (check, secret, stream, leftover) =
            (tunnel.check, tunnel.secret, tunnel.stream, tunnel.leftover);
        let conn = PgConnection::login(
            stream,
            leftover,
            &check.subject,
            check.database.as_deref().unwrap_or_default(),
            secret.expose(),
        )
        .await
        .map_err(|e| match e {
            PgError::Login(error) => format!("the broker refused the session: {error}"),
            PgError::Protocol(e) => format!("the session could not start: {e}"),
        })?;
        Ok(PgLink {
            grant: grant.id.clone(),
            conn,
        })
    }

    /// One HTTP request to an http resource through a fresh tunnel; the body is read up to the
    /// byte limit.
    pub async fn http(
        &self,
        resource: &str,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Result<HttpAnswer, Failure> {
        use http_body_util::BodyExt as _;
        let grant = self.active(resource).await?;
        if !path.starts_with('/') {
            return Err(format!(
                "the path must start with '/' (got '{path}'); it is relative to the service"
            ));
        }
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("'{method}' is not an HTTP method"))?;
        let tunnel = self
            .tunnel(resource, &grant, ResourceKind::Http, "the http tool calls")
            .await?;
        let secret = tunnel.secret;
        let io = hyper_util::rt::TokioIo::new(Prefixed::new(tunnel.leftover, tunnel.stream));
        let (mut send, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("the tunnel to '{resource}' failed: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", secret.expose()));
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host") {
                return Err(format!(
                    "the {name} header is set by Sluice; the broker adds the service's credential"
                ));
            }
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| format!("the request is not valid: {e}"))?;
        let response = send
            .send_request(request)
            .await
            .map_err(|e| format!("the request to '{resource}' failed: {e}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the answer failed: {e}"))?;
            if let Ok(data) = frame.into_data() {
                let room = self.limits.bytes.saturating_sub(bytes.len());
                if data.len() > room {
                    bytes.extend_from_slice(&data[..room]);
                    truncated = true;
                    break;
                }
                bytes.extend_from_slice(&data);
            }
        }
        driver.abort();
        Ok(HttpAnswer {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
            content_type,
            body: match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => format!(
                    "(binary, base64) {}",
                    base64::engine::general_purpose::STANDARD.encode(e.as_bytes())
                ),
            },
            truncated,
        })
    }

    /// Runs `sluice SUBCOMMAND ...` (ssh, kube) as a child under the same broker and identity,
    /// streaming its stderr lines to `on_line` (progress: "waiting for approval ..."), and
    /// returns its exit code and output, each cut at the byte limit.
    pub async fn child(
        &self,
        args: &[String],
        mut on_line: impl FnMut(&str),
    ) -> Result<ChildOutput, Failure> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
        let exe: PathBuf =
            std::env::current_exe().map_err(|e| format!("cannot find the sluice program: {e}"))?;
        let token = self.token().await?;
        let mut child = tokio::process::Command::new(exe)
            .args(&self.global)
            .args(args)
            .env("SLUICE_TOKEN", token.expose())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start sluice: {e}"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("cannot read the command's output".into());
        };
        let limit = self.limits.bytes;
        let reading = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut stdout = stdout.take(u64::try_from(limit).unwrap_or(u64::MAX) + 1);
            let _ = stdout.read_to_end(&mut out).await;
            // Drain what is beyond the limit so the command is not stuck writing.
            let mut inner = stdout.into_inner();
            let _ = tokio::io::copy(&mut inner, &mut tokio::io::sink()).await;
            out
        });
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut errors = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            on_line(&line);
            if errors.len() < limit {
                errors.push_str(&line);
                errors.push('\n');
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for the command failed: {e}"))?;
        let mut out = reading.await.unwrap_or_default();
        let truncated = out.len() > limit;
        out.truncate(limit);
        Ok(ChildOutput {
            exit_code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: errors,
            truncated,
        })
    }
}

/// An open tunnel, and what its client presents.
struct Tunnel {
    check: ResourceCheck,
    secret: Secret<String>,
    stream: TlsStream<TcpStream>,
    leftover: Vec<u8>,
}

/// What an HTTP call answered.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub reason: String,
    pub content_type: Option<String>,
    pub body: String,
    pub truncated: bool,
}

/// What a child command printed.
#[derive(Debug)]
pub struct ChildOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

/// A stream that first yields bytes already read from it (what the tunnel upgrade read past
/// the response head).
struct Prefixed<S> {
    prefix: std::io::Cursor<Vec<u8>>,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix: std::io::Cursor::new(prefix),
            inner,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let at = usize::try_from(self.prefix.position()).unwrap_or(usize::MAX);
        let left = self.prefix.get_ref().len().saturating_sub(at);
        if left > 0 {
            let n = left.min(buf.remaining());
            let start = at;
            buf.put_slice(&self.prefix.get_ref()[start..start + n]);
            self.prefix.set_position((start + n) as u64);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
