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
use sluice_engine_http::mask::JsonRewriter;
use sluice_shared::recording::{Decision as Recorded, HTTP_BODY_CAP};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn block_decision(rule: &str, reason: &str) -> Recorded {
    Recorded::Blocked {
        rule: rule.to_owned(),
        message: reason.to_owned(),
    }
}

/// The shortest one-time token an HTTP tunnel may carry (as PostgreSQL's one-time password).
const MIN_SECRET_LEN: usize = 32;

/// The one-time token a tunnel request carries for the client to present on every request, or
/// the refusal naming the command that makes one.
pub(super) fn tunnel_secret(
    headers: &axum::http::HeaderMap,
    kind: &str,
    command: &str,
) -> Result<String, sluice_shared::ApiError> {
    super::secret_header(headers)
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .map(str::to_owned)
        .ok_or_else(|| {
            sluice_shared::ApiError::new(
                sluice_shared::ErrorCode::BadRequest,
                format!(
                    "a {kind} tunnel needs a one-time token of at least {MIN_SECRET_LEN} \
                     characters in `{}` (use {command})",
                    sluice_shared::tunnel::SECRET_HEADER
                ),
            )
        })
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
        client: Option<&sluice_config::ClientCert>,
    ) -> anyhow::Result<Self> {
        let tls = match ca {
            Some(ca) => {
                let roots = crate::tls::root_store(ca)?;
                let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
                let config = match client {
                    Some(pair) => {
                        let cert = pair.cert.value.resolve()?;
                        let key = pair.key.value.resolve()?;
                        let (chain, key) =
                            crate::tls::client_identity(cert.expose(), key.expose())?;
                        builder.with_client_auth_cert(chain, key)?
                    }
                    None => builder.with_no_client_auth(),
                };
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

/// Told how an upgraded stream ended and the bytes it carried each way (to audit it).
pub(super) type Closed = Box<dyn FnOnce(&str, u64, u64) + Send>;

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
    /// Waits for the upgraded streams unless the session was revoked (then, or when the lease
    /// ends meanwhile, they are cut); how the session ended.
    async fn finish(&self, mut lease: sluice_engine::Lease, mut end: String) -> String {
        if !end.starts_with("revoked") {
            let running: Vec<_> = self
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
        self.cut.send_replace(true);
        end
    }

    /// Relays the client's upgraded connection and the service's, byte for byte, until either
    /// side closes or the session ends; `observe` sees what the service sends.
    pub(super) fn splice(
        &self,
        client: hyper::upgrade::OnUpgrade,
        response: &mut Response<Incoming>,
        mut observe: Option<Observe>,
        closed: Closed,
    ) {
        let host = hyper::upgrade::on(response);
        let mut cut = self.cut.subscribe();
        let task = tokio::spawn(async move {
            let (Ok(client), Ok(host)) = (client.await, host.await) else {
                closed("the upgrade did not complete", 0, 0);
                return;
            };
            let (client, host) = (TokioIo::new(client), TokioIo::new(host));
            let (mut client_read, mut client_write) = tokio::io::split(client);
            let (mut host_read, mut host_write) = tokio::io::split(host);
            let sent_up = AtomicU64::new(0);
            let sent_down = AtomicU64::new(0);
            let up = async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if host_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent_up.fetch_add(n as u64, Ordering::Relaxed);
                }
                let _ = host_write.shutdown().await;
            };
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
                    sent_down.fetch_add(n as u64, Ordering::Relaxed);
                    if let Some(observe) = observe.as_mut() {
                        observe(&buf[..n]);
                    }
                }
                let _ = client_write.shutdown().await;
            };
            let how = tokio::select! {
                () = up => "closed by the client",
                () = down => "closed by the service",
                _ = cut.wait_for(|cut| *cut) => "the session ended",
            };
            closed(
                how,
                sent_up.load(Ordering::Relaxed),
                sent_down.load(Ordering::Relaxed),
            );
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
    let end = tokio::select! {
        served = connection => match served {
            Ok(()) => "closed".to_owned(),
            Err(e) if e.is_incomplete_message() => "closed".to_owned(),
            Err(e) => format!("error: {e}"),
        },
        reason = lease.revoked() => format!("revoked: {reason}"),
    };
    streams.finish(lease, end).await
}

/// How long a session of the broker's own endpoint waits for its next request.
pub(crate) const IDLE: Duration = Duration::from_secs(10 * 60);

/// Serves requests handed over by the broker's own endpoint with `handle` (each on a task of
/// its own, its answer cut when the session ends) until `requests` closes or the lease ends.
pub(super) async fn serve_requests<H, F>(
    mut requests: tokio::sync::mpsc::Receiver<super::Exchange>,
    mut lease: sluice_engine::Lease,
    streams: &Streams,
    handle: H,
) -> String
where
    H: Fn(Request<axum::body::Body>) -> F,
    F: std::future::Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let end = loop {
        tokio::select! {
            exchange = tokio::time::timeout(IDLE, requests.recv()) => match exchange {
                Err(_) => break "closed (idle)".to_owned(),
                Ok(Some(super::Exchange { request, reply })) => {
                    let answer = handle(request);
                    let cut = streams.cut.subscribe();
                    tokio::spawn(async move {
                        let _ = reply.send(cut_on_end(answer.await, cut));
                    });
                }
                Ok(None) => break "closed".to_owned(),
            },
            reason = lease.revoked() => break format!("revoked: {reason}"),
        }
    };
    streams.finish(lease, end).await
}

/// A response whose body ends when the session does (an open watch on the broker's endpoint).
fn cut_on_end(
    response: Response<ResponseBody>,
    cut: watch::Receiver<bool>,
) -> Response<ResponseBody> {
    struct Cut {
        inner: ResponseBody,
        ended: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    }
    impl Body for Cut {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.ended.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err("the session ended".into())));
            }
            Pin::new(&mut self.inner).poll_frame(cx)
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            self.inner.size_hint()
        }
    }
    let (parts, inner) = response.into_parts();
    let mut cut = cut;
    let ended = Box::pin(async move {
        let _ = cut.wait_for(|cut| *cut).await;
    });
    Response::from_parts(parts, UnsyncBoxBody::new(Cut { inner, ended }))
}

/// Wraps a response so its `http_response` event is recorded when the body ends (or the
/// client goes away): status, the bytes sent, the time since `started`, and with `keep` the
/// start of the body as sent (after masking), up to [`HTTP_BODY_CAP`] bytes.
pub(super) fn recorded(
    response: Response<ResponseBody>,
    recording: Option<&sluice_recording::SessionRecording>,
    seq: u64,
    started: std::time::Instant,
    keep: bool,
) -> Response<ResponseBody> {
    let Some(recording) = recording else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let teed = Teed {
        inner: body,
        recording: recording.clone(),
        seq,
        status: parts.status.as_u16(),
        started,
        bytes: 0,
        kept: keep.then(Vec::new),
        truncated: false,
        done: false,
    };
    Response::from_parts(parts, UnsyncBoxBody::new(teed))
}

/// A body passed on while its size (and start) is noted for the recording.
struct Teed {
    inner: ResponseBody,
    recording: sluice_recording::SessionRecording,
    seq: u64,
    status: u16,
    started: std::time::Instant,
    bytes: u64,
    kept: Option<Vec<u8>>,
    truncated: bool,
    done: bool,
}

impl Teed {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let body = self
            .kept
            .take()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned());
        self.recording
            .record(sluice_shared::recording::HttpEvent::HttpResponse {
                seq: self.seq,
                status: self.status,
                bytes: self.bytes,
                duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                body,
                body_truncated: self.truncated,
            });
    }
}

impl Body for Teed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len();
                    self.bytes += len as u64;
                    let mut truncated = false;
                    if let Some(kept) = self.kept.as_mut() {
                        let room = HTTP_BODY_CAP.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..room.min(len)]);
                        truncated = len > room;
                    }
                    self.truncated |= truncated;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Teed {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether a response's body is kept in the recording: text the client can read (JSON, YAML,
/// XML, plain text), not compressed, not a stream of events.
pub(super) fn keepable(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/yaml"
        || essence.ends_with("/xml")
        || (essence.starts_with("text/") && essence != "text/event-stream")
}

/// A request's query string as the recording keeps it: with the role's detectors applied
/// (a token or an email in a query is masked like one in a body).
pub(super) fn recorded_query(query: &str, masking: Option<&sluice_mask::MaskPolicy>) -> String {
    match masking {
        Some(policy) => {
            let mut counts = sluice_mask::MaskCounts::default();
            policy.mask_text(query, &mut counts).into_owned()
        }
        None => query.to_owned(),
    }
}

/// The broker's own credentials for a service, removed from every response it relays: a
/// service that echoes the `Authorization` or API key it received would otherwise hand the
/// broker's credential to the client (and to the recording). Each occurrence is replaced by as
/// many `*`, so lengths (and `Content-Length`) stay right. Values shorter than
/// [`MIN_SCRUBBED`] bytes are not looked for: they would match ordinary text.
#[derive(Debug, Default)]
pub(super) struct Scrubber {
    secrets: Vec<Vec<u8>>,
}

/// The shortest credential looked for in responses.
pub(super) const MIN_SCRUBBED: usize = 8;

impl Scrubber {
    /// A scrubber for `secrets` (short ones are left out).
    pub(super) fn new(secrets: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SCRUBBED)
            .collect();
        secrets.sort();
        secrets.dedup();
        Self { secrets }
    }

    /// Replaces every whole occurrence in `buf`.
    fn scrub(&self, buf: &mut [u8]) {
        for secret in &self.secrets {
            let first = secret[0];
            let mut at = 0;
            while at + secret.len() <= buf.len() {
                // Jump to the next place the secret could start.
                let Some(skip) = buf[at..=buf.len() - secret.len()]
                    .iter()
                    .position(|&b| b == first)
                else {
                    break;
                };
                at += skip;
                if buf[at..].starts_with(secret) {
                    buf[at..at + secret.len()].fill(b'*');
                    at += secret.len();
                } else {
                    at += 1;
                }
            }
        }
    }

    /// How many bytes at the end of `buf` could be the start of a credential the next chunk
    /// completes (they are held back until it arrives).
    fn pending(&self, buf: &[u8]) -> usize {
        self.secrets
            .iter()
            .map(|secret| {
                (1..secret.len().min(buf.len() + 1))
                    .rev()
                    .find(|&n| buf.ends_with(&secret[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    /// `response` with the credentials scrubbed from its body as it streams.
    pub(super) fn wrap(
        self: &Arc<Self>,
        response: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        if self.secrets.is_empty() {
            return response;
        }
        let (parts, body) = response.into_parts();
        let scrubbed = Scrubbed {
            inner: body,
            scrubber: Arc::clone(self),
            held: Vec::new(),
            ended: false,
        };
        Response::from_parts(parts, UnsyncBoxBody::new(scrubbed))
    }
}

/// A body with the broker's credentials replaced; only a tail that may be the start of one is
/// held back, so event streams are not delayed.
struct Scrubbed {
    inner: ResponseBody,
    scrubber: Arc<Scrubber>,
    held: Vec<u8>,
    ended: bool,
}

impl Body for Scrubbed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut buf = std::mem::take(&mut self.held);
                    buf.extend_from_slice(&data);
                    self.scrubber.scrub(&mut buf);
                    let keep = self.scrubber.pending(&buf);
                    self.held = buf.split_off(buf.len() - keep);
                    if !buf.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
                    }
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    let rest = std::mem::take(&mut self.held);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
            }
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request target as the service gets it: origin form (`/path?query`) only, whatever form
/// the client wrote (an absolute `http://other/path` is judged and sent as `/path`).
pub(super) fn origin_form(uri: &mut hyper::Uri) {
    let target = uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    if let Ok(origin) = target.parse() {
        *uri = origin;
    }
}

/// A JSON body masked as it streams: `paths` redacted, every string value through the
/// `masking` detectors; `encoding` (gzip, deflate) undone on the way.
pub(super) fn masked_json(
    body: Incoming,
    encoding: &str,
    paths: Vec<sluice_engine_http::JsonPath>,
    masking: Option<Arc<sluice_mask::MaskPolicy>>,
    mut counts: crate::metrics::MaskTally,
) -> ResponseBody {
    // One tally for the whole body (a fresh one per string cost an allocation per match),
    // counted when the body is done with.
    let rewriter = JsonRewriter::new(
        paths,
        Box::new(move |text: &str| -> Option<String> {
            let policy = masking.as_ref()?;
            match policy.mask_text(text, &mut counts) {
                std::borrow::Cow::Owned(masked) => Some(masked),
                std::borrow::Cow::Borrowed(_) => None,
            }
        }) as StringMask,
    );
    UnsyncBoxBody::new(JsonBody {
        inner: body,
        decoder: match encoding {
            "gzip" | "x-gzip" => Decoder::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "deflate" => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            _ => Decoder::Identity,
        },
        rewriter,
        gathered: Vec::new(),
        done: false,
    })
}

/// What a string value goes through.
type StringMask = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// A body's `Content-Encoding`, undone as it streams.
enum Decoder {
    Identity,
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl Decoder {
    /// The decoded bytes of the next chunk (the chunk itself when it is not encoded).
    fn feed<'a>(&mut self, data: &'a [u8]) -> std::io::Result<std::borrow::Cow<'a, [u8]>> {
        use std::borrow::Cow;
        use std::io::Write;
        match self {
            Self::Identity => Ok(Cow::Borrowed(data)),
            Self::Gzip(d) => {
                d.write_all(data)?;
                Ok(Cow::Owned(std::mem::take(d.get_mut())))
            }
            Self::Deflate(d) => {
                d.write_all(data)?;
                Ok(Cow::Owned(std::mem::take(d.get_mut())))
            }
        }
    }

    /// What the decoder still holds at the end of the body.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Identity => Ok(Vec::new()),
            Self::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// A JSON body masked as it streams (decoded first when compressed): memory bounded by the
/// largest single string, whatever the body's size. What is not JSON ends the response with
/// an error; nothing unread is passed on.
struct JsonBody {
    inner: Incoming,
    decoder: Decoder,
    rewriter: JsonRewriter<StringMask>,
    /// Decoded bytes gathered from the frames that were ready, rewritten together.
    gathered: Vec<u8>,
    done: bool,
}

/// How much of a masked body is gathered from ready frames before it is rewritten: hyper's
/// frames are small, and each push has a fixed cost (and a token cut at a frame's end is
/// buffered). Only frames already there are gathered, so nothing waits for more input.
const GATHER: usize = 64 * 1024;

impl Body for JsonBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            while this.gathered.len() < GATHER {
                match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending if this.gathered.is_empty() => return Poll::Pending,
                    Poll::Pending => break,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            let decoded = this.decoder.feed(&data)?;
                            this.gathered.extend_from_slice(&decoded);
                        }
                    }
                    Poll::Ready(None) => {
                        this.done = true;
                        let rest = this.decoder.finish()?;
                        this.gathered.extend_from_slice(&rest);
                        break;
                    }
                }
            }
            let mut out = Vec::with_capacity(this.gathered.len() + this.gathered.len() / 8);
            this.rewriter.push(&this.gathered, &mut out)?;
            this.gathered.clear();
            if this.done {
                this.rewriter.finish(&mut out)?;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }
}

/// What an HTTP engine's session shares between its requests.
pub(super) trait WebContext: Send + Sync + Sized + 'static {
    /// The kind, for the log.
    const KIND: &'static str;

    /// The session's upgraded streams.
    fn streams(&self) -> &Streams;

    /// Bytes sent to the client so far.
    fn bytes_down(&self) -> u64;

    /// One request, to its response.
    fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
    ) -> impl std::future::Future<Output = Response<ResponseBody>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>;
}

/// An HTTP engine's session: its context, served from a tunnel's stream or from requests the
/// broker's own endpoint hands over.
pub(super) struct WebSession<C> {
    pub(super) context: Arc<C>,
    pub(super) opener: crate::tunnel::SessionOpener,
}

/// Where a session's requests come from.
enum Source {
    /// A tunnel's byte stream, HTTP/1.1 on it.
    Stream(TokioIo<hyper::upgrade::Upgraded>),
    /// Requests the broker's own endpoint hands over.
    Requests(tokio::sync::mpsc::Receiver<super::Exchange>),
}

impl<C: WebContext> WebSession<C> {
    /// Serves the session from `source` until it ends; how, and the bytes sent.
    async fn run(self: Box<Self>, source: Source, lease: sluice_engine::Lease) -> super::Served {
        let Self { context, opener } = *self;
        let shared = Arc::clone(&context);
        // One closure per body type: a tunnel's requests and the endpoint's differ.
        let end = match source {
            Source::Stream(stream) => {
                tracing::info!(kind = C::KIND, "session started");
                let handle = move |request| Arc::clone(&shared).handle(request);
                serve(stream, lease, context.streams(), handle).await
            }
            Source::Requests(requests) => {
                tracing::info!(kind = C::KIND, "session started (the broker's endpoint)");
                let handle = move |request| Arc::clone(&shared).handle(request);
                serve_requests(requests, lease, context.streams(), handle).await
            }
        };
        super::Served {
            opener,
            end,
            bytes_up: 0,
            bytes_down: context.bytes_down(),
        }
    }
}

impl<C: WebContext> super::Session for WebSession<C> {
    fn lease(&self) -> Arc<sluice_engine::LeaseHandle> {
        self.opener.lease()
    }

    fn serve(
        self: Box<Self>,
        stream: TokioIo<hyper::upgrade::Upgraded>,
        lease: sluice_engine::Lease,
    ) -> super::BoxFuture<'static, super::Served> {
        Box::pin(self.run(Source::Stream(stream), lease))
    }

    fn serve_requests(
        self: Box<Self>,
        requests: tokio::sync::mpsc::Receiver<super::Exchange>,
        lease: sluice_engine::Lease,
    ) -> super::BoxFuture<'static, super::Served> {
        Box::pin(self.run(Source::Requests(requests), lease))
    }

    fn abandon(self: Box<Self>) -> crate::tunnel::SessionOpener {
        self.opener
    }
}

#[cfg(test)]
mod tests {
    use super::Scrubber;

    #[test]
    fn credentials_are_scrubbed_whole_and_across_chunk_boundaries() {
        let scrubber = Scrubber::new([b"s3cret-token".to_vec(), b"short".to_vec()]);
        let text = b"{\"auth\":\"Bearer s3cret-token\",\"again\":\"s3cret-token\",\"short\":1}";
        let mut whole = text.to_vec();
        scrubber.scrub(&mut whole);
        let expected = String::from_utf8_lossy(&whole).into_owned();
        assert!(!expected.contains("s3cret"), "{expected}");
        assert!(expected.contains("************"), "{expected}");
        assert!(
            expected.contains("short"),
            "short values are not looked for"
        );
        assert_eq!(whole.len(), text.len());
        // However the body is cut into chunks, the same bytes come out.
        for size in 1..text.len() {
            let mut out = Vec::new();
            let mut held = Vec::new();
            for chunk in text.chunks(size) {
                let mut buf = std::mem::take(&mut held);
                buf.extend_from_slice(chunk);
                scrubber.scrub(&mut buf);
                let keep = scrubber.pending(&buf);
                held = buf.split_off(buf.len() - keep);
                out.extend(buf);
            }
            out.extend(held);
            assert_eq!(String::from_utf8_lossy(&out), expected, "chunks of {size}");
        }
        // Nothing is held back at the end of an ordinary event.
        assert_eq!(scrubber.pending(b"data: {}\n\n"), 0);
        assert_eq!(scrubber.pending(b"... s3cr"), 4);
    }
}
