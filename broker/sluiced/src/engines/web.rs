//! The HTTP plumbing the Kubernetes and HTTP engines share: the connection to the service,
//! the tunnel token check, held requests, and the response bodies the broker rewrites (whole,
//! line by line, or counted as they pass).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sluice_shared::recording::Decision as Recorded;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn block_decision(rule: &str, reason: &str) -> Recorded {
    Recorded::Blocked {
        rule: rule.to_owned(),
        message: reason.to_owned(),
    }
}

/// `Authorization: Bearer <the tunnel's token>`, compared in constant time.
pub(super) fn authorized(secret: &str, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    presented.len() == secret.len() && bool::from(presented.as_bytes().ct_eq(secret.as_bytes()))
}

/// Calls `f` on every string value (not keys) of `value`; replaces it when `f` says so.
pub(super) fn scan_strings(
    value: &mut serde_json::Value,
    f: &mut dyn FnMut(&str) -> Option<String>,
) {
    match value {
        serde_json::Value::String(text) => {
            if let Some(masked) = f(text) {
                *text = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scan_strings(v, f)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| scan_strings(v, f)),
        _ => {}
    }
}

/// A body of one frame computed by `future` (a masked whole response).
pub(super) fn once<F>(future: F) -> ResponseBody
where
    F: std::future::Future<Output = Result<Bytes, BoxError>> + Send + 'static,
{
    struct Once<F> {
        future: Option<Pin<Box<F>>>,
    }
    impl<F> Body for Once<F>
    where
        F: std::future::Future<Output = Result<Bytes, BoxError>>,
    {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let Some(future) = self.future.as_mut() else {
                return Poll::Ready(None);
            };
            match future.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    self.future = None;
                    Poll::Ready(Some(result.map(Frame::data)))
                }
            }
        }
    }
    UnsyncBoxBody::new(Once {
        future: Some(Box::pin(future)),
    })
}

/// A streamed body rewritten line by line as lines complete (watch events, log lines): never
/// buffered whole; a line longer than [`MAX_LINE`] is dropped with the rest of it.
pub(super) struct Lines<F> {
    inner: Incoming,
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    rewrite: F,
    done: bool,
}

/// The longest line rewritten; longer ones are withheld.
pub(super) const MAX_LINE: usize = 16 * 1024 * 1024;

impl<F: FnMut(&[u8]) -> Vec<u8>> Lines<F> {
    pub(super) fn new(inner: Incoming, rewrite: F) -> Self {
        Self {
            inner,
            line: Vec::new(),
            skipping: false,
            rewrite,
            done: false,
        }
    }

    /// Rewrites every complete line of `data` (and what was pending before it).
    fn take(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.skipping {
                self.skipping = false;
            } else {
                self.line.extend_from_slice(&rest[..end]);
                out.extend((self.rewrite)(&self.line));
                if !out.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            self.line.clear();
            rest = &rest[end + 1..];
        }
        if !self.skipping {
            self.line.extend_from_slice(rest);
            if self.line.len() > MAX_LINE {
                self.line.clear();
                self.skipping = true;
            }
        }
        out
    }
}

impl<F: FnMut(&[u8]) -> Vec<u8> + Unpin> Body for Lines<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = self.take(&data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let last = std::mem::take(&mut self.line);
                    if last.is_empty() || self.skipping {
                        return Poll::Ready(None);
                    }
                    let out = (self.rewrite)(&last);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                }
            }
        }
    }
}

/// A body passed through while its bytes are counted.
pub(super) struct Counted {
    pub(super) inner: Incoming,
    pub(super) bytes: Arc<AtomicU64>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

pub(super) fn box_error(e: hyper::Error) -> BoxError {
    Box::new(e)
}

/// Connection-level headers are the broker's own on each leg; `Upgrade` is kept for exec.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    for name in [
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(name);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

pub(super) fn json(code: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The broker's HTTP/1.1 connection to a service, opened on first use and again after it
/// closes; TLS with only the resource's CA trusted, or plain HTTP to a loopback address.
pub(super) struct Upstream {
    pub(super) address: String,
    /// `None`: plain HTTP (the configuration allows it for loopback addresses only).
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    pub(super) sender: Option<hyper::client::conn::http1::SendRequest<ResponseBody>>,
}

impl Upstream {
    /// A connection to `address`, over TLS trusting only `ca` when given.
    pub(super) fn new(
        address: &str,
        ca: Option<&std::path::Path>,
        server_name: Option<&str>,
    ) -> anyhow::Result<Self> {
        let tls = match ca {
            Some(ca) => {
                let roots = crate::tls::root_store(ca)?;
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let host = server_name.unwrap_or_else(|| host_of(address)).to_owned();
                Some((
                    tokio_rustls::TlsConnector::from(Arc::new(config)),
                    rustls_pki_types::ServerName::try_from(host)?,
                ))
            }
            None => None,
        };
        Ok(Self {
            address: address.to_owned(),
            tls,
            sender: None,
        })
    }

    pub(super) async fn send(
        &mut self,
        request: Request<ResponseBody>,
    ) -> Result<Response<Incoming>, String> {
        let ready = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.sender = Some(self.connect().await?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("no connection".into());
        };
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<ResponseBody>, String> {
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(|e| format!("{}: {e}", self.address))?;
            let _ = tcp.set_nodelay(true);
            let sender = match &self.tls {
                Some((tls, name)) => {
                    let tls = tls
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS with {}: {e}", self.address))?;
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tls))
                            .await
                            .map_err(|e| e.to_string())?;
                    tokio::spawn(connection.with_upgrades());
                    sender
                }
                None => {
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                            .await
                            .map_err(|e| e.to_string())?;
                    tokio::spawn(connection.with_upgrades());
                    sender
                }
            };
            Ok::<_, String>(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("no answer from {} within {CONNECT_TIMEOUT:?}", self.address))?
    }
}

/// `host` of `host:port` (brackets of an IPv6 address removed).
pub(super) fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Files a held request and waits for the decision; a request whose client goes away is
/// dropped here, which withdraws it.
pub(super) async fn held(
    approvals: &crate::holds::SessionApprovals,
    request: sluice_engine::hold::HoldRequest,
) -> Result<Recorded, Recorded> {
    use sluice_engine::hold::{Approvals, HoldOutcome};
    let rule = request.rule.clone();
    let rule = rule.as_str();
    let hold = approvals.request(request).map_err(|why| Recorded::Denied {
        rule: rule.to_owned(),
        reason: why,
        request: String::new(),
    })?;
    // Withdrawn if this future is dropped (kubectl interrupted, connection closed).
    struct Withdraw<'a> {
        approvals: &'a crate::holds::SessionApprovals,
        id: String,
        armed: bool,
    }
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            if self.armed {
                self.approvals.withdraw(&self.id, "the client went away");
            }
        }
    }
    let mut guard = Withdraw {
        approvals,
        id: hold.id.clone(),
        armed: true,
    };
    let outcome = hold.decision.await;
    guard.armed = false;
    match outcome {
        HoldOutcome::Approved { by } => Ok(Recorded::Approved {
            rule: rule.to_owned(),
            by,
            request: hold.id,
        }),
        HoldOutcome::Denied { message } => Err(Recorded::Denied {
            rule: rule.to_owned(),
            reason: message,
            request: hold.id,
        }),
    }
}

/// Sees the bytes an upgraded stream's server side sends (to record them).
pub(super) type Observe = Box<dyn FnMut(&[u8]) + Send>;

/// The upgraded streams of one session (exec, WebSocket): cut when the session ends, awaited
/// before it ends on its own.
pub(super) struct Streams {
    cut: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            cut: watch::channel(false).0,
            tasks: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Streams {
    /// Relays the client's upgraded connection and the service's, byte for byte, until either
    /// side closes or the session ends; `observe` sees what the service sends.
    pub(super) fn splice(
        &self,
        client: hyper::upgrade::OnUpgrade,
        response: &mut Response<Incoming>,
        mut observe: Option<Observe>,
    ) {
        let host = hyper::upgrade::on(response);
        let mut cut = self.cut.subscribe();
        let task = tokio::spawn(async move {
            let (Ok(client), Ok(host)) = (client.await, host.await) else {
                return;
            };
            let (client, host) = (TokioIo::new(client), TokioIo::new(host));
            let (mut client_read, mut client_write) = tokio::io::split(client);
            let (mut host_read, mut host_write) = tokio::io::split(host);
            let up = tokio::io::copy(&mut client_read, &mut host_write);
            let down = async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match host_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if let Some(observe) = observe.as_mut() {
                        observe(&buf[..n]);
                    }
                }
                let _ = client_write.shutdown().await;
            };
            tokio::select! {
                _ = up => {}
                () = down => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }
}

/// Serves one tunnel's HTTP/1.1 connection with `handle` until the client closes it (and its
/// upgraded streams end) or the lease ends; how the session ended.
pub(super) async fn serve<H, F>(
    stream: TokioIo<hyper::upgrade::Upgraded>,
    mut lease: sluice_engine::Lease,
    streams: &Streams,
    handle: H,
) -> String
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let handle = Arc::new(handle);
    let service = hyper::service::service_fn(move |request| {
        let handle = Arc::clone(&handle);
        async move { Ok::<_, std::convert::Infallible>(handle(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(stream.into_inner(), service)
        .with_upgrades();
    // Dropping the connection ends every request on it (open watches, event streams);
    // upgraded streams are cut through `streams`.
    let mut end = tokio::select! {
        served = connection => match served {
            Ok(()) => "closed".to_owned(),
            Err(e) if e.is_incomplete_message() => "closed".to_owned(),
            Err(e) => format!("error: {e}"),
        },
        reason = lease.revoked() => format!("revoked: {reason}"),
    };
    if !end.starts_with("revoked") {
        let running: Vec<_> = streams
            .tasks
            .lock()
            .map(|mut tasks| tasks.drain(..).collect())
            .unwrap_or_default();
        let all = async {
            for task in running {
                let _ = task.await;
            }
        };
        tokio::select! {
            () = all => {}
            reason = lease.revoked() => end = format!("revoked: {reason}"),
        }
    }
    streams.cut.send_replace(true);
    end
}
