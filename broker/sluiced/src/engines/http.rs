//! The HTTP engine: the broker terminates the client's HTTP (curl's, a script's), decides every
//! request by method and path, and calls the service with the credential it holds — a bearer
//! token, basic auth or named headers — and, when the resource says so, a signed assertion of
//! who is calling. With a role that masks, JSON fields and detector matches never reach the
//! client.
//!
//! ```text
//!  client ══tunnel══▶ [hyper server] ── Bearer = the tunnel's one-time token? ──▶ 401
//!                        │ route rules (method, normalized path) ──▶ block: 403 naming the rule
//!                        │                                          hold: wait for an approver
//!                        ▼ allow
//!                     [hyper client] ── injected credential, identity assertion, Host ──▶ service
//!  client ◀══════════════╯ responses: JSON masked whole (gzip read), event streams and text
//!                          line by line, streamed otherwise; WebSocket upgrades relayed
//! ```

use super::web::{
    self, BoxError, Counted, Lines, ResponseBody, Upstream, authorized, block_decision, box_error,
    json, scan_strings, strip_hop_by_hop,
};
use super::{BoxFuture, Engine, Session, Tunnel};
use crate::metrics::MaskTally;
use crate::plan::{HttpPlan, RolePlan};
use crate::tokens::{Assertion, TokenService};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sluice_config::{HttpAuthorization, HttpSpec, Need, ResourceSpec};
use sluice_engine_http::kube::Decision;
use sluice_engine_http::route::{OVERRIDE_HEADERS, forbidden_body};
use sluice_recording::SessionRecording;
use sluice_shared::recording::{Decision as Recorded, HttpEvent};
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};
use tracing::info;

/// Request rules and response masking, and a recording of each request.
pub const ENFORCES: &[Need] = &[Need::HttpRules, Need::ContentRecording];

/// How long a held request waits for a decision.
/// The kind these resources are counted under in the metrics.
const KIND: &str = "http";

const HOLD_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The identity header the broker always owns, whatever the resource names.
const DEFAULT_IDENTITY_HEADER: &str = "sluice-identity";

/// The HTTP engine.
#[derive(Debug)]
pub struct HttpEngine {
    /// Where held requests wait for approvers.
    holds: Arc<crate::holds::Holds>,
    /// Signs identity assertions.
    tokens: Arc<TokenService>,
}

impl HttpEngine {
    /// An engine filing held requests with `holds` and signing assertions with `tokens`.
    pub fn new(holds: Arc<crate::holds::Holds>, tokens: Arc<TokenService>) -> Self {
        Self { holds, tokens }
    }
}

impl Engine for HttpEngine {
    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>> {
        Box::pin(async move {
            let authz = tunnel.authz;
            let resource = authz.resource().name.clone();
            let ResourceSpec::Http(spec) = &authz.resource().spec else {
                return Err(super::another_kind("http"));
            };
            let secret = web::tunnel_secret(tunnel.headers, "http", "`sluice connect`")?;
            let injected =
                Injected::resolve(spec).map_err(|what| super::unreadable(&resource, what))?;
            let upstream = Upstream::new(
                &spec.address,
                spec.ca.as_ref().map(|ca| ca.value.as_path()),
                spec.server_name.as_deref(),
                spec.client_cert.as_ref(),
            )
            .map_err(|_| super::unreadable(&resource, "service CA or client certificate"))?;
            let mut opener = tunnel.opener;
            opener
                .open(None, false)
                .await
                .map_err(|why| ApiError::new(ErrorCode::Unavailable, why))?;
            let plan: watch::Receiver<Arc<RolePlan>> = tunnel.plan;
            let approvers = {
                let plan = plan.borrow();
                plan.http
                    .as_ref()
                    .map_or_else(|| plan.approvers.clone(), |h| h.approvers.clone())
            };
            let approvals = crate::holds::SessionApprovals::for_tunnel(
                &self.holds,
                authz,
                approvers,
                HOLD_TIMEOUT,
            );
            let session = opener.session_id().unwrap_or_default().to_owned();
            let identity = spec.identity.as_ref().map(|identity| Identity {
                header: HeaderName::from_bytes(identity.header.as_bytes())
                    .unwrap_or(HeaderName::from_static(DEFAULT_IDENTITY_HEADER)),
                ttl: identity.ttl,
                tokens: Arc::clone(&self.tokens),
                resource: resource.clone(),
                subject: authz.identity().subject.clone(),
                groups: authz.identity().groups.clone(),
                grant: authz.grant_id().to_owned(),
                role: authz.role().to_owned(),
                session: session.clone(),
                current: std::sync::Mutex::new(None),
            });
            let context = Arc::new(Context {
                secret,
                resource,
                host: HeaderValue::from_str(spec.server_name.as_deref().unwrap_or(&spec.address))
                    .unwrap_or(HeaderValue::from_static("localhost")),
                injected,
                identity,
                plan,
                upstream: Mutex::new(upstream),
                approvals,
                recording: opener.recording(),
                session,
                seq: AtomicU64::new(0),
                bytes_down: Arc::new(AtomicU64::new(0)),
                streams: web::Streams::default(),
            });
            Ok(Box::new(web::WebSession { context, opener }) as Box<dyn Session>)
        })
    }
}

/// The credential headers the broker adds, resolved once per session; never logged.
struct Injected {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The secrets in them, looked for (and replaced) in every response.
    scrubber: Arc<web::Scrubber>,
}

impl Injected {
    /// Reads every secret the resource names; which one could not be read, on failure.
    fn resolve(spec: &HttpSpec) -> Result<Self, &'static str> {
        use base64::Engine as _;
        let mut headers = Vec::new();
        let mut secrets: Vec<Vec<u8>> = Vec::new();
        let sensitive = |text: String| -> Result<HeaderValue, &'static str> {
            let mut value =
                HeaderValue::from_str(&text).map_err(|_| "injected credential (not a header)")?;
            value.set_sensitive(true);
            Ok(value)
        };
        if let Some(authorization) = &spec.inject.authorization {
            let value = match &authorization.value {
                HttpAuthorization::Bearer(token) => {
                    let token = token.resolve().map_err(|_| "bearer token")?;
                    secrets.push(token.expose().as_bytes().to_vec());
                    format!("Bearer {}", token.expose())
                }
                HttpAuthorization::Basic { user, password } => {
                    let password = password.resolve().map_err(|_| "basic-auth password")?;
                    let pair = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{}", password.expose()));
                    secrets.push(password.expose().as_bytes().to_vec());
                    secrets.push(pair.as_bytes().to_vec());
                    format!("Basic {pair}")
                }
            };
            headers.push((header::AUTHORIZATION, sensitive(value)?));
        }
        for (name, secret) in &spec.inject.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "injected header")?;
            let value = secret.value.resolve().map_err(|_| "injected header")?;
            secrets.push(value.expose().as_bytes().to_vec());
            headers.push((name, sensitive(value.expose().clone())?));
        }
        Ok(Self {
            headers,
            scrubber: Arc::new(web::Scrubber::new(secrets)),
        })
    }
}

/// Signs the assertion sent with each request, reusing one until half its lifetime is gone.
struct Identity {
    header: HeaderName,
    ttl: Duration,
    tokens: Arc<TokenService>,
    resource: String,
    subject: String,
    groups: Vec<String>,
    grant: String,
    role: String,
    session: String,
    current: std::sync::Mutex<Option<(Instant, HeaderValue)>>,
}

impl Identity {
    fn value(&self) -> Option<HeaderValue> {
        let mut current = self.current.lock().ok()?;
        if let Some((made, value)) = current.as_ref()
            && made.elapsed() < self.ttl / 2
        {
            return Some(value.clone());
        }
        let token = self
            .tokens
            .assert_identity(
                &Assertion {
                    resource: &self.resource,
                    subject: &self.subject,
                    groups: &self.groups,
                    grant: &self.grant,
                    role: &self.role,
                    session: &self.session,
                },
                self.ttl,
            )
            .ok()?;
        let mut value = HeaderValue::from_str(&token).ok()?;
        value.set_sensitive(true);
        *current = Some((Instant::now(), value.clone()));
        Some(value)
    }
}

/// What every request of one session shares.
struct Context {
    /// The one-time token the client must present.
    secret: String,
    resource: String,
    /// `Host` towards the service.
    host: HeaderValue,
    injected: Injected,
    identity: Option<Identity>,
    plan: watch::Receiver<Arc<RolePlan>>,
    upstream: Mutex<Upstream>,
    approvals: crate::holds::SessionApprovals,
    recording: Option<SessionRecording>,
    session: String,
    seq: AtomicU64,
    bytes_down: Arc<AtomicU64>,
    /// WebSocket upgrades: the session lasts until they end.
    streams: web::Streams,
}

impl web::WebContext for Context {
    const KIND: &'static str = "http";

    fn streams(&self) -> &web::Streams {
        &self.streams
    }

    fn bytes_down(&self) -> u64 {
        self.bytes_down.load(Ordering::Relaxed)
    }

    fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
    ) -> impl std::future::Future<Output = Response<ResponseBody>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        handle(self, request)
    }
}

/// One request from the client, to its response.
async fn handle<B>(context: Arc<Context>, request: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    if !authorized(&context.secret, request.headers()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sluice: this tunnel needs `Authorization: Bearer <token>` with the token `sluice \
             connect` printed (SLUICE_HTTP_TOKEN)",
        );
    }
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let seq = context.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let plan = context.plan.borrow().http.clone();
    let record = |decision: Recorded| {
        crate::metrics::decided(KIND, &decision);
        if let Some(recording) = &context.recording {
            recording.record(HttpEvent::HttpRequest {
                seq,
                method: method.clone(),
                path: path.clone(),
                query: web::recorded_query(
                    &query,
                    plan.as_ref().and_then(|plan| plan.masking.as_deref()),
                ),
                decision,
            });
        }
    };
    let refuse = |rule: &str, reason: &str| {
        info!(
            target: "audit",
            event = "http.request_refused.v1",
            session = %context.session,
            rule = %rule,
            request = %format!("{method} {path}"),
            "an HTTP request was refused"
        );
        record(block_decision(rule, reason));
        forbidden(rule, reason)
    };
    if upgrade && plan.as_ref().is_some_and(|plan| plan.masks()) {
        return refuse(
            "http:masking",
            "this role masks responses, and an upgraded stream (WebSocket) cannot be masked",
        );
    }
    let decision = match &plan {
        Some(plan) => {
            let overridden = OVERRIDE_HEADERS
                .iter()
                .any(|name| request.headers().contains_key(*name));
            plan.rules.judge(&method, &path, &query, overridden)
        }
        // A role without `http:` is limited by what the service lets the broker's credential do.
        None => Decision::Allow,
    };
    let recorded = match decision {
        Decision::Allow => Recorded::Allowed,
        Decision::Block { rule, reason } => return refuse(&rule, &reason),
        Decision::Hold { rule, reason } => {
            let request = sluice_engine::hold::HoldRequest {
                kind: "http".into(),
                what: format!("{method} {path} on {}", context.resource),
                rule: rule.clone(),
                reason: reason.clone(),
            };
            match web::held(&context.approvals, request).await {
                Ok(decided) => decided,
                Err(denied) => {
                    let message = match &denied {
                        Recorded::Denied { reason, .. } => reason.clone(),
                        _ => "not approved".to_owned(),
                    };
                    record(denied);
                    return forbidden(&rule, &message);
                }
            }
        }
    };
    record(recorded);
    // Bodies are kept only for roles that ask (`http.record_bodies`), as PostgreSQL rows are.
    let record_bodies = plan.as_ref().is_some_and(|plan| plan.record_bodies);
    let masking = plan.filter(|plan| plan.masks());
    let response = match forward(&context, request, masking.is_some()).await {
        Ok(response) => respond(&context, response, masking, &method),
        Err(response) => response,
    };
    let keep = record_bodies
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
        && web::keepable(response.headers());
    let response = context.injected.scrubber.wrap(response);
    web::recorded(response, context.recording.as_ref(), seq, started, keep)
}

/// Sends the request to the service as the broker: the tunnel token and anything the client
/// says about identity removed, the broker's credential and assertion added. An accepted
/// WebSocket upgrade is relayed byte for byte (not recorded).
async fn forward<B>(
    context: &Arc<Context>,
    mut request: Request<B>,
    masking: bool,
) -> Result<Response<Incoming>, Response<ResponseBody>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    web::origin_form(&mut parts.uri);
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove(DEFAULT_IDENTITY_HEADER);
    if let Some(identity) = &context.identity {
        parts.headers.remove(&identity.header);
    }
    if masking || !context.injected.headers.is_empty() {
        // Bodies must be readable to be masked, and to have the broker's credential removed
        // should the service echo it.
        parts.headers.remove(header::ACCEPT_ENCODING);
    }
    parts.headers.insert(header::HOST, context.host.clone());
    for (name, value) in &context.injected.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    if let Some(identity) = &context.identity {
        match identity.value() {
            Some(value) => {
                parts.headers.insert(identity.header.clone(), value);
            }
            None => {
                return Err(error(
                    StatusCode::BAD_GATEWAY,
                    "identity",
                    "sluice: the broker could not sign the identity assertion this service \
                     requires; the request was not sent",
                ));
            }
        }
    }
    let outgoing = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    let mut upstream = context.upstream.lock().await;
    let mut response = upstream.send(outgoing).await.map_err(|why| {
        error(
            StatusCode::BAD_GATEWAY,
            "unreachable",
            &format!(
                "sluice: the service {} could not be reached: {why}",
                context.resource
            ),
        )
    })?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        // The connection now belongs to the upgraded stream.
        upstream.sender = None;
        drop(upstream);
        info!(
            target: "audit",
            event = "http.stream_opened.v1",
            session = %context.session,
            "an upgraded (WebSocket) stream opened"
        );
        if let Some(recording) = &context.recording {
            recording.record(sluice_shared::recording::SessionEvent::Note {
                message: "an upgraded (WebSocket) stream opened; its content is not recorded"
                    .into(),
            });
        }
        let session = context.session.clone();
        let closed = Box::new(move |how: &str, up: u64, down: u64| {
            info!(
                target: "audit",
                event = "http.stream_closed.v1",
                session = %session,
                how,
                bytes_up = up,
                bytes_down = down,
                "an upgraded (WebSocket) stream closed"
            );
        });
        context
            .streams
            .splice(client_upgrade, &mut response, None, closed);
    }
    Ok(response)
}

/// The service's response as the client gets it. With a role that masks: JSON bodies masked
/// as they stream (gzip and deflate decoded), the role's JSON paths redacted and every string
/// scanned by its detectors; event streams, NDJSON and text rewritten line by line as they
/// arrive. A body that must be masked but cannot be read is withheld, never passed on.
fn respond(
    context: &Arc<Context>,
    response: Response<Incoming>,
    masking: Option<Arc<HttpPlan>>,
    method: &str,
) -> Response<ResponseBody> {
    let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgraded);
    let bodiless = method == "HEAD"
        || upgraded
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
    let Some(plan) = masking.filter(|_| !bodiless) else {
        let counted = Counted {
            inner: body,
            bytes: Arc::clone(&context.bytes_down),
        };
        return Response::from_parts(parts, counted.map_err(box_error).boxed_unsync());
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json" || essence.ends_with("+json");
    let lines = match essence.as_str() {
        "text/event-stream" => Some(LineKind::Events),
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => {
            Some(LineKind::Json)
        }
        other if other.starts_with("text/") => Some(LineKind::Text),
        _ => None,
    };
    let decodable = matches!(
        encoding.as_str(),
        "identity" | "gzip" | "x-gzip" | "deflate"
    );
    if !(json || lines.is_some()) || (lines.is_some() && encoding != "identity") || !decodable {
        let what = if essence.is_empty() {
            "no content type".to_owned()
        } else {
            essence.clone()
        };
        return error(
            StatusCode::BAD_GATEWAY,
            "unmaskable",
            &format!(
                "sluice: the service answered with {what}{}, which the broker cannot mask for \
                 this role; the response is withheld",
                if encoding == "identity" {
                    String::new()
                } else {
                    format!(" ({encoding}-encoded)")
                }
            ),
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    if let Some(kind) = lines {
        let plan = Arc::clone(&plan);
        let body = Lines::new(body, move |line| kind.rewrite(&plan, line));
        return Response::from_parts(parts, body.boxed_unsync());
    }
    let body = web::masked_json(
        body,
        &encoding,
        plan.paths.clone(),
        plan.masking.clone(),
        MaskTally::new(KIND),
    );
    Response::from_parts(parts, body)
}

/// How a streamed body's lines are masked.
#[derive(Debug, Clone, Copy)]
enum LineKind {
    /// `text/event-stream`: a `data:` line's payload as JSON when it is, as text otherwise.
    Events,
    /// One JSON document per line; a line that is not JSON is scanned as text.
    Json,
    /// Text: each line scanned by the detectors.
    Text,
}

impl LineKind {
    fn rewrite(self, plan: &HttpPlan, line: &[u8]) -> Vec<u8> {
        let json_line = |payload: &[u8]| -> Option<Vec<u8>> {
            let mut value: serde_json::Value = serde_json::from_slice(payload).ok()?;
            mask_json(plan, &mut value);
            serde_json::to_vec(&value).ok()
        };
        match self {
            Self::Events => {
                if let Some(payload) = line.strip_prefix(b"data:") {
                    let trimmed = payload.strip_prefix(b" ").unwrap_or(payload);
                    if let Some(masked) = json_line(trimmed) {
                        return [b"data: ".as_slice(), &masked].concat();
                    }
                }
                text_line(plan, line)
            }
            Self::Json => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    return line.to_vec();
                }
                json_line(line).unwrap_or_else(|| text_line(plan, line))
            }
            Self::Text => text_line(plan, line),
        }
    }
}

/// One line scanned by the role's detectors; JSON paths cannot apply to text, so a role with
/// paths but no detectors passes text lines on (its paths name JSON fields).
fn text_line(plan: &HttpPlan, line: &[u8]) -> Vec<u8> {
    let Some(policy) = &plan.masking else {
        return line.to_vec();
    };
    let mut counts = MaskTally::new(KIND);
    policy.mask_bytes(line, &mut counts).into_owned()
}

/// The role's JSON paths redacted, then every string scanned by its detectors.
fn mask_json(plan: &HttpPlan, value: &mut serde_json::Value) {
    for path in &plan.paths {
        path.apply(value, &mut |_| "****".to_owned());
    }
    if let Some(policy) = &plan.masking {
        let mut counts = MaskTally::new(KIND);
        scan_strings(
            value,
            &mut |text| match policy.mask_text(text, &mut counts) {
                std::borrow::Cow::Owned(masked) => Some(masked),
                std::borrow::Cow::Borrowed(_) => None,
            },
        );
    }
}

/// A 403 naming the rule.
fn forbidden(rule: &str, reason: &str) -> Response<ResponseBody> {
    let mut response = json(StatusCode::FORBIDDEN, &forbidden_body(rule, reason));
    if let Ok(value) = HeaderValue::from_str(rule) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("sluice-rule"), value);
    }
    response
}

/// An answer of the broker's own: `{"error": KIND, "message": ...}`.
fn error(code: StatusCode, kind: &str, message: &str) -> Response<ResponseBody> {
    json(
        code,
        &serde_json::json!({ "error": kind, "message": message }),
    )
}
