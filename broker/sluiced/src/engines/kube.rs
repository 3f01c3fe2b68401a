//! The Kubernetes engine: the broker terminates the client's HTTP (kubectl's), reads every API
//! request as the API server would (verb, group, resource, subresource, namespace, name),
//! decides it by the role's rules, and calls the API server with its own token, the person
//! impersonated when the resource says so. Secret values never reach the client.
//!
//! ```text
//!  kubectl ══tunnel══▶ [hyper server] ── Bearer = the tunnel's one-time token? ──▶ 401
//!                         │ Impersonate-* from the client? ──▶ 403
//!                         │ attributes(method, path, query) ──rules──▶ block: 403 Status
//!                         │                                           hold: wait for an approver
//!                         ▼ allow
//!                      [hyper client, TLS with the pinned CA] ── Bearer = the broker's token,
//!                         │                                     Impersonate-User/Group
//!  API server ◀═══════════╯ responses: Secrets masked (whole bodies, or watch events one by
//!                            one), streamed otherwise; exec/attach/port-forward upgrades relayed
//! ```

use super::web::{
    self, BoxError, Counted, Lines, ResponseBody, Upstream, authorized, block_decision, box_error,
    json, once, scan_strings, strip_hop_by_hop,
};
use super::{BoxFuture, Engine, Session, Tunnel};
use crate::metrics::MaskTally;
use crate::plan::{KubePlan, RolePlan};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sluice_config::{Need, ResourceSpec};
use sluice_engine_http::kube::{Attributes, Decision, attributes, forbidden_status};
use sluice_engine_http::mask::mask_secrets;
use sluice_recording::SessionRecording;
use sluice_shared::recording::{Decision as Recorded, HttpEvent};
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};
use tracing::info;

/// Request rules, and a recording of each request.
pub const ENFORCES: &[Need] = &[Need::KubeRules, Need::ContentRecording];

/// How long a held request waits for a decision.
/// The kind these resources are counted under in the metrics.
const KIND: &str = "kubernetes";

const HOLD_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The largest Secret response body the broker reads whole to mask it.
const MAX_MASKED_BODY: usize = 64 * 1024 * 1024;

/// The Kubernetes engine.
#[derive(Debug)]
pub struct KubeEngine {
    /// Where held requests wait for approvers.
    holds: Arc<crate::holds::Holds>,
}

impl KubeEngine {
    /// An engine filing held requests with `holds`.
    pub fn new(holds: Arc<crate::holds::Holds>) -> Self {
        Self { holds }
    }
}

impl Engine for KubeEngine {
    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>> {
        Box::pin(async move {
            let authz = tunnel.authz;
            let resource = authz.resource().name.clone();
            let ResourceSpec::Kubernetes(spec) = &authz.resource().spec else {
                return Err(super::another_kind("kubernetes"));
            };
            let secret = web::tunnel_secret(
                tunnel.headers,
                "kubernetes",
                "`sluice kube` or `sluice connect`",
            )?;
            let token = match &spec.token {
                Some(token) => Some(
                    token
                        .value
                        .resolve()
                        .map_err(|_| super::unreadable(&resource, "token"))?
                        .expose()
                        .clone(),
                ),
                None => None,
            };
            let upstream = Upstream::new(
                &spec.address,
                Some(&spec.ca.value),
                spec.server_name.as_deref(),
                spec.client_cert.as_ref(),
            )
            .map_err(|_| super::unreadable(&resource, "API server CA or client certificate"))?;
            let mut opener = tunnel.opener;
            opener
                .open(None, false)
                .await
                .map_err(|why| ApiError::new(ErrorCode::Unavailable, why))?;
            let plan: watch::Receiver<Arc<RolePlan>> = tunnel.plan;
            let approvers = {
                let plan = plan.borrow();
                plan.kube
                    .as_ref()
                    .map_or_else(|| plan.approvers.clone(), |k| k.approvers.clone())
            };
            let approvals = crate::holds::SessionApprovals::for_tunnel(
                &self.holds,
                authz,
                approvers,
                HOLD_TIMEOUT,
            );
            let context = Arc::new(Context_ {
                secret,
                scrubber: Arc::new(web::Scrubber::new(
                    token.iter().map(|t| t.as_bytes().to_vec()),
                )),
                token,
                subject: authz.identity().subject.clone(),
                impersonate: spec.impersonate,
                plan,
                upstream: Mutex::new(upstream),
                approvals,
                recording: opener.recording(),
                session: opener.session_id().unwrap_or_default().to_owned(),
                seq: AtomicU64::new(0),
                bytes_down: Arc::new(AtomicU64::new(0)),
                streams: web::Streams::default(),
            });
            Ok(Box::new(web::WebSession { context, opener }) as Box<dyn Session>)
        })
    }
}

/// What every request of one session shares.
struct Context_ {
    /// The one-time token kubectl must present.
    secret: String,
    /// The broker's bearer token for the API server (`None`: it logs in by certificate).
    token: Option<String>,
    /// Removes that token from responses, should the API server echo it.
    scrubber: Arc<web::Scrubber>,
    /// Who is calling (for impersonation and approvals).
    subject: String,
    impersonate: bool,
    plan: watch::Receiver<Arc<RolePlan>>,
    upstream: Mutex<Upstream>,
    approvals: crate::holds::SessionApprovals,
    recording: Option<SessionRecording>,
    session: String,
    seq: AtomicU64,
    bytes_down: Arc<AtomicU64>,
    /// Upgraded streams (exec, attach, port-forward): the session lasts until they end.
    streams: web::Streams,
}

impl web::WebContext for Context_ {
    const KIND: &'static str = "kubernetes";

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

/// One request from kubectl, to its response.
async fn handle<B>(context: Arc<Context_>, request: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    if !authorized(&context.secret, request.headers()) {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "sluice: this tunnel needs the token `sluice kube` gave kubectl",
        );
    }
    if let Some(name) = request
        .headers()
        .keys()
        .find(|name| name.as_str().starts_with("impersonate-"))
    {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "sluice: the client may not send {name} (--as, --as-group): the broker says who \
                 is calling"
            ),
        );
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let attributes = attributes(request.method().as_str(), &path, &query);
    let seq = context.seq.fetch_add(1, Ordering::Relaxed) + 1;
    // Only streams the broker knows to carry no objects may leave HTTP: a watch upgraded to a
    // WebSocket would carry Secrets past the masker.
    if request.headers().contains_key(header::UPGRADE)
        && !matches!(
            attributes.subresource.as_str(),
            "exec" | "attach" | "portforward"
        )
    {
        record_request(
            &context,
            seq,
            &request,
            &query,
            block_decision(
                "kube:upgrade",
                "only exec, attach and port-forward may upgrade",
            ),
        );
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "sluice: {} may not upgrade the connection: only exec, attach and port-forward \
                 streams are relayed (rule kube:upgrade)",
                attributes.describe()
            ),
        );
    }
    let rules = context.plan.borrow().kube.clone();
    // An exec or port-forward stream cannot be masked: a role that masks gets none.
    if request.headers().contains_key(header::UPGRADE)
        && rules.as_ref().is_some_and(|plan| plan.masks())
    {
        let reason = "this role masks responses, and an exec, attach or port-forward stream \
                      cannot be masked";
        record_request(
            &context,
            seq,
            &request,
            &query,
            block_decision("kube:masking", reason),
        );
        return json(
            StatusCode::FORBIDDEN,
            &forbidden_status(&attributes, "kube:masking", reason),
        );
    }
    let decision = match &rules {
        Some(plan) => plan.rules.judge(&attributes),
        // A role without `kube:` is limited by the cluster's own RBAC for the broker's token.
        None => Decision::Allow,
    };
    let recorded = match decision {
        Decision::Allow => Recorded::Allowed,
        Decision::Block { rule, reason } => {
            info!(
                target: "audit",
                event = "kube.request_refused.v1",
                session = %context.session,
                rule = %rule,
                request = %attributes.describe(),
                "a Kubernetes request was refused"
            );
            record_request(
                &context,
                seq,
                &request,
                &query,
                block_decision(&rule, &reason),
            );
            return json(
                StatusCode::FORBIDDEN,
                &forbidden_status(&attributes, &rule, &reason),
            );
        }
        Decision::Hold { rule, reason } => {
            match held(&context, &attributes, &rule, &reason).await {
                Ok(decided) => decided,
                Err(denied) => {
                    let message = match &denied {
                        Recorded::Denied { reason, .. } => reason.clone(),
                        _ => "not approved".to_owned(),
                    };
                    record_request(&context, seq, &request, &query, denied);
                    return json(
                        StatusCode::FORBIDDEN,
                        &forbidden_status(&attributes, &rule, &message),
                    );
                }
            }
        }
    };
    record_request(&context, seq, &request, &query, recorded);
    let groups = rules
        .as_ref()
        .map(|plan| plan.groups.clone())
        .unwrap_or_default();
    let response = forward(&context, request, &attributes, &groups).await;
    let response = respond(&context, response, &attributes, rules.as_ref());
    // Streams (watches, followed logs, exec) are not kept: their events are not one answer.
    // Bodies are kept only for roles that ask (`kube.record_bodies`), as PostgreSQL rows are.
    let keep = rules.as_ref().is_some_and(|plan| plan.record_bodies)
        && attributes.verb != "watch"
        && !query.split('&').any(|p| p == "follow=true")
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
        && web::keepable(response.headers());
    let response = context.scrubber.wrap(response);
    web::recorded(response, context.recording.as_ref(), seq, started, keep)
}

fn record_request<B>(
    context: &Context_,
    seq: u64,
    request: &Request<B>,
    query: &str,
    decision: Recorded,
) {
    crate::metrics::decided(KIND, &decision);
    if let Some(recording) = &context.recording {
        recording.record(HttpEvent::HttpRequest {
            seq,
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: web::recorded_query(
                query,
                context
                    .plan
                    .borrow()
                    .kube
                    .as_ref()
                    .and_then(|plan| plan.masking.as_deref()),
            ),
            decision,
        });
    }
}

/// Files a held request, with a preview of what a delete would remove, and waits for the
/// decision.
async fn held(
    context: &Context_,
    attributes: &Attributes,
    rule: &str,
    reason: &str,
) -> Result<Recorded, Recorded> {
    let what = match preview(context, attributes).await {
        Some(preview) => format!("{} — {preview}", attributes.describe()),
        None => attributes.describe(),
    };
    let request = sluice_engine::hold::HoldRequest {
        kind: "kube".into(),
        what,
        rule: rule.to_owned(),
        reason: reason.to_owned(),
    };
    web::held(&context.approvals, request).await
}

/// What came back from the API server: its response, or the broker's own answer.
enum Answer {
    Upstream(Response<Incoming>),
    Local(Response<ResponseBody>),
}

/// What a held delete would remove, asked of the API server as the broker: the object (by a
/// `dryRun=All` delete), and for a namespace or a collection how many objects of the common
/// kinds it holds. `None` when there is nothing to show or the server does not say.
async fn preview(context: &Context_, attributes: &Attributes) -> Option<String> {
    if !matches!(attributes.verb.as_str(), "delete" | "deletecollection") {
        return None;
    }
    let collection = attributes
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    if attributes.verb == "deletecollection" {
        let count = count(context, &collection).await?;
        return Some(format!("would remove {count} {}", attributes.resource));
    }
    let removed = ask(
        context,
        hyper::Method::DELETE,
        &format!("{collection}?dryRun=All"),
    )
    .await?;
    let kind = removed["kind"].as_str().unwrap_or("object");
    let mut preview = format!("would remove {kind} {}", attributes.target());
    if attributes.resource == "namespaces" {
        let ns = &attributes.name;
        let mut held = Vec::new();
        for (what, path) in [
            ("pods", format!("/api/v1/namespaces/{ns}/pods")),
            (
                "deployments",
                format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            ),
            ("services", format!("/api/v1/namespaces/{ns}/services")),
            ("secrets", format!("/api/v1/namespaces/{ns}/secrets")),
            ("configmaps", format!("/api/v1/namespaces/{ns}/configmaps")),
        ] {
            if let Some(count) = count(context, &path).await
                && count != "0"
            {
                held.push(format!("{count} {what}"));
            }
        }
        if !held.is_empty() {
            preview.push_str(&format!(" and everything in it: {}", held.join(", ")));
        }
    }
    Some(preview)
}

/// How many objects a list holds (`500+` past one page).
async fn count(context: &Context_, path: &str) -> Option<String> {
    let list = ask(context, hyper::Method::GET, &format!("{path}?limit=500")).await?;
    let items = list["items"].as_array()?.len();
    let more = list["metadata"]["continue"]
        .as_str()
        .is_some_and(|c| !c.is_empty());
    Some(if more {
        format!("{items}+")
    } else {
        items.to_string()
    })
}

/// One request of the broker's own to the API server (as the broker, never impersonating:
/// the preview is for the approver); its JSON answer on success.
async fn ask(context: &Context_, method: hyper::Method, path: &str) -> Option<serde_json::Value> {
    let mut upstream = context.upstream.lock().await;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, upstream.address.clone())
        .header(header::ACCEPT, "application/json")
        .body(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .ok()?;
    let mut request = request;
    if let Some(token) = &context.token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let response = upstream.send(request).await.ok()?;
    drop(upstream);
    if !response.status().is_success() {
        return None;
    }
    let body = http_body_util::Limited::new(response.into_body(), 8 * 1024 * 1024)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

/// Sends the request to the API server as the broker. An upgrade (exec, attach, port-forward
/// over WebSocket or SPDY) that the server accepts is relayed byte for byte until either side
/// closes or the session ends.
async fn forward<B>(
    context: &Arc<Context_>,
    mut request: Request<B>,
    attributes: &Attributes,
    groups: &[String],
) -> Answer
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
    // Every body must be readable: no compression, no protobuf.
    parts.headers.remove(header::ACCEPT_ENCODING);
    let accept = json_accept(parts.headers.get(header::ACCEPT));
    parts.headers.insert(header::ACCEPT, accept);
    let mut upstream = context.upstream.lock().await;
    if let Some(token) = &context.token
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        parts.headers.insert(header::AUTHORIZATION, value);
    }
    if context.impersonate {
        if let Ok(user) = HeaderValue::from_str(&context.subject) {
            parts
                .headers
                .insert(HeaderName::from_static("impersonate-user"), user);
        }
        for group in groups {
            if let Ok(group) = HeaderValue::from_str(group) {
                parts
                    .headers
                    .append(HeaderName::from_static("impersonate-group"), group);
            }
        }
    }
    let outgoing = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    let mut response = match upstream.send(outgoing).await {
        Ok(response) => response,
        Err(why) => {
            return Answer::Local(status(
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailable",
                &format!("sluice: the API server could not be reached: {why}"),
            ));
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        // The connection now belongs to the upgraded stream.
        upstream.sender = None;
        drop(upstream);
        info!(
            target: "audit",
            event = "kube.stream_opened.v1",
            session = %context.session,
            request = %attributes.describe(),
            "an exec, attach or port-forward stream opened"
        );
        // An exec or attach over WebSocket is recorded as a terminal: what the container
        // wrote (stdout, stderr) as output events; what the client types is not recorded.
        let terminal = matches!(attributes.subresource.as_str(), "exec" | "attach")
            && response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.contains("channel.k8s.io"));
        let recording = context.recording.clone().filter(|_| terminal);
        if let Some(recording) = context.recording.as_ref().filter(|_| !terminal) {
            recording.record(sluice_shared::recording::SessionEvent::Note {
                message: format!(
                    "{}: the stream's content is not recorded (not an exec over WebSocket)",
                    attributes.describe()
                ),
            });
        }
        let observe = recording.map(|recording| {
            let mut frames = Frames::default();
            Box::new(move |data: &[u8]| {
                for output in frames.push(data) {
                    recording
                        .record(sluice_shared::recording::TerminalEvent::Output { data: output });
                }
            }) as web::Observe
        });
        let (session, request) = (context.session.clone(), attributes.describe());
        let closed = Box::new(move |how: &str, up: u64, down: u64| {
            info!(
                target: "audit",
                event = "kube.stream_closed.v1",
                session = %session,
                request = %request,
                how,
                bytes_up = up,
                bytes_down = down,
                "an exec, attach or port-forward stream closed"
            );
        });
        context
            .streams
            .splice(client_upgrade, &mut response, observe, closed);
        let (parts, _) = response.into_parts();
        return Answer::Local(Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        ));
    }
    Answer::Upstream(response)
}

/// The API server's response as the client gets it: Secret values masked, and with a role
/// that masks (`kube.masking`, `kube.mask`) every JSON string scanned by its detectors, its
/// JSON paths redacted and every line of a text response (logs) scanned. A body that must be
/// masked but cannot be read (another content type, compressed) is refused, never passed on.
fn respond(
    context: &Arc<Context_>,
    answer: Answer,
    attributes: &Attributes,
    plan: Option<&Arc<KubePlan>>,
) -> Response<ResponseBody> {
    let response = match answer {
        Answer::Local(response) => return response,
        Answer::Upstream(response) => response,
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let secrets = attributes.resource == "secrets";
    let masking = plan.filter(|p| p.masks()).map(Arc::clone);
    if !secrets && masking.is_none() {
        let counted = Counted {
            inner: body,
            bytes: Arc::clone(&context.bytes_down),
        };
        return Response::from_parts(parts, counted.map_err(box_error).boxed_unsync());
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = content_type.starts_with("application/json");
    let text = content_type.starts_with("text/plain") && !secrets;
    let empty = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    if empty {
        return Response::from_parts(parts, body.map_err(box_error).boxed_unsync());
    }
    if parts.headers.contains_key(header::CONTENT_ENCODING) || !(json || text) {
        return status(
            StatusCode::BAD_GATEWAY,
            "InternalError",
            &format!(
                "sluice: the API server answered {} with {}, which the broker cannot mask; \
                 the response is withheld",
                attributes.describe(),
                if content_type.is_empty() {
                    "no content type"
                } else {
                    content_type.as_str()
                }
            ),
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    let rewrite = Arc::new(Rewrite { secrets, masking });
    if text {
        let rewrite = Arc::clone(&rewrite);
        let lines = Lines::new(body, move |line| rewrite.text(line));
        return Response::from_parts(parts, lines.boxed_unsync());
    }
    if attributes.verb == "watch" {
        let rewrite = Arc::clone(&rewrite);
        let lines = Lines::new(body, move |line| rewrite.event(line));
        return Response::from_parts(parts, lines.boxed_unsync());
    }
    // Not Secrets: the role's masks need no `kind`, so the answer streams through the JSON
    // rewriter, its paths applied to each object a list, a nested list or a table holds.
    if !secrets && let Some(plan) = &rewrite.masking {
        let body = web::masked_json(
            body,
            "identity",
            per_object(&plan.paths),
            plan.masking.clone(),
            MaskTally::new(KIND),
        );
        return Response::from_parts(parts, body);
    }
    let masked = async move {
        let bytes = http_body_util::Limited::new(body, MAX_MASKED_BODY)
            .collect()
            .await?
            .to_bytes();
        let mut value: serde_json::Value = serde_json::from_slice(&bytes)?;
        rewrite.json(&mut value);
        Ok::<Bytes, BoxError>(Bytes::from(serde_json::to_vec(&value)?))
    };
    Response::from_parts(parts, once(masked))
}

/// What a response's values go through.
struct Rewrite {
    /// A `secrets` request: Secret values replaced.
    secrets: bool,
    /// The role's detectors and JSON paths.
    masking: Option<Arc<KubePlan>>,
}

impl Rewrite {
    fn json(&self, value: &mut serde_json::Value) {
        if self.secrets {
            let masked = mask_secrets(value, true);
            crate::metrics::masked(KIND, u64::try_from(masked).unwrap_or(u64::MAX));
        }
        let Some(plan) = &self.masking else {
            return;
        };
        // Paths are written for one object; lists, watch events and tables hold several.
        let mut objects = Vec::new();
        objects_of(value, &mut objects);
        for object in objects {
            for path in &plan.paths {
                path.apply(object, &mut |_| "****".to_owned());
            }
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

    /// One watch event line; one that is not JSON is withheld.
    fn event(&self, line: &[u8]) -> Vec<u8> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return line.to_vec();
        }
        let mut out = match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(mut value) => {
                self.json(&mut value);
                serde_json::to_vec(&value).unwrap_or_default()
            }
            Err(_) => serde_json::to_vec(&serde_json::json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "sluice: an event it could not read was withheld",
                    "reason": "InternalError", "code": 500,
                },
            }))
            .unwrap_or_default(),
        };
        out.push(b'\n');
        out
    }

    /// One line of a text response (logs).
    fn text(&self, line: &[u8]) -> Vec<u8> {
        let Some(policy) = self.masking.as_ref().and_then(|p| p.masking.as_ref()) else {
            return line.to_vec();
        };
        let mut counts = MaskTally::new(KIND);
        policy.mask_bytes(line, &mut counts).into_owned()
    }
}

/// Paths written for one object, as they reach the objects of whatever a response is: the
/// object itself, a list's items (nested lists too) and a table's row objects. (The list's own
/// fields may be masked as well when a path names them: more masked, never less.)
fn per_object(paths: &[sluice_engine_http::JsonPath]) -> Vec<sluice_engine_http::JsonPath> {
    paths
        .iter()
        .flat_map(|path| {
            let rest = path.as_str().strip_prefix('$').unwrap_or_default();
            ["$", "$.items[*]", "$.items[*].items[*]", "$.rows[*].object"]
                .into_iter()
                .filter_map(move |root| {
                    sluice_engine_http::JsonPath::parse(&format!("{root}{rest}")).ok()
                })
        })
        .collect()
}

/// The API objects a response holds: the items of a list (nested lists too), the object of
/// a watch event, the objects of a table's rows, or the response itself.
fn objects_of<'v>(value: &'v mut serde_json::Value, out: &mut Vec<&'v mut serde_json::Value>) {
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    if value.get("items").is_some_and(serde_json::Value::is_array) {
        if let Some(items) = value.get_mut("items").and_then(|v| v.as_array_mut()) {
            for item in items {
                objects_of(item, out);
            }
        }
    } else if value.get("type").is_some() && value.get("object").is_some() {
        if let Some(object) = value.get_mut("object") {
            objects_of(object, out);
        }
    } else if kind == "Table" {
        if let Some(rows) = value.get_mut("rows").and_then(|v| v.as_array_mut()) {
            for row in rows {
                if let Some(object) = row.get_mut("object") {
                    objects_of(object, out);
                }
            }
        }
    } else {
        out.push(value);
    }
}

/// The output a container writes, read from the API server's side of an exec WebSocket
/// (`v4`/`v5.channel.k8s.io`: each binary message is a channel byte, then data; channels 1 and
/// 2 are stdout and stderr). Server frames are unmasked. At most [`MAX_RECORDED`] bytes are
/// kept; a frame longer than [`MAX_FRAME`] is passed on but not recorded.
#[derive(Default)]
pub(crate) struct Frames {
    buffer: Vec<u8>,
    /// Bytes of an over-long frame still to skip.
    skip: u64,
    /// The channel of a fragmented message, for its continuation frames.
    channel: Option<u8>,
    recorded: u64,
}

/// The longest frame recorded.
const MAX_FRAME: u64 = 1024 * 1024;
/// Terminal output a session's recording keeps at most (as for SSH).
const MAX_RECORDED: u64 = 64 * 1024 * 1024;

impl Frames {
    /// Feeds bytes from the server; returns the stdout/stderr data of every complete frame.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut data = data;
        if self.skip > 0 {
            let skipped = self.skip.min(data.len() as u64);
            self.skip -= skipped;
            data = &data[usize::try_from(skipped).unwrap_or(data.len())..];
        }
        self.buffer.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some((header, len)) = frame_header(&self.buffer) {
            if len > MAX_FRAME {
                let available = (self.buffer.len() - header) as u64;
                self.skip = len.saturating_sub(available);
                self.buffer.clear();
                break;
            }
            let total = header + usize::try_from(len).unwrap_or(usize::MAX);
            if self.buffer.len() < total {
                break;
            }
            let opcode = self.buffer[0] & 0x0f;
            let fin = self.buffer[0] & 0x80 != 0;
            let payload = &self.buffer[header..total];
            let (channel, body) = match opcode {
                // Binary or text: the first byte is the channel.
                1 | 2 => (
                    payload.first().copied(),
                    payload.get(1..).unwrap_or_default(),
                ),
                0 => (self.channel, payload),
                _ => (None, &payload[..0]),
            };
            if matches!(opcode, 1 | 2) {
                self.channel = if fin { None } else { channel };
            }
            if matches!(channel, Some(1 | 2)) && !body.is_empty() && self.recorded < MAX_RECORDED {
                let keep = (MAX_RECORDED - self.recorded).min(body.len() as u64);
                self.recorded += keep;
                out.push(body[..usize::try_from(keep).unwrap_or(body.len())].to_vec());
            }
            self.buffer.drain(..total);
        }
        out
    }
}

/// The header length and payload length of the frame at the start of `buffer`, once the whole
/// header has arrived.
fn frame_header(buffer: &[u8]) -> Option<(usize, u64)> {
    let second = *buffer.get(1)?;
    let masked = second & 0x80 != 0;
    let (len, mut header) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if masked {
        header += 4;
    }
    (buffer.len() >= header).then_some((header, len))
}

/// Accept without protobuf: `application/json` forms kept (kubectl's Table requests), others
/// dropped; nothing left means JSON.
fn json_accept(accept: Option<&HeaderValue>) -> HeaderValue {
    let kept: Vec<&str> = accept
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|part| part.starts_with("application/json") || part.starts_with("*/*"))
        .collect();
    if kept.is_empty() {
        return HeaderValue::from_static("application/json");
    }
    HeaderValue::from_str(&kept.join(",")).unwrap_or(HeaderValue::from_static("application/json"))
}

/// A `metav1.Status` answer of the broker's own.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response<ResponseBody> {
    json(
        code,
        &serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::Frames;

    /// A server (unmasked) frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn stdout_and_stderr_are_read_from_frames_however_the_bytes_arrive() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 2, b"\x01hello "));
        stream.extend(frame(true, 2, b"\x02oops"));
        stream.extend(frame(true, 2, b"\x03{\"status\":\"Success\"}"));
        stream.extend(frame(false, 2, b"\x01frag"));
        stream.extend(frame(true, 0, b"mented"));
        stream.extend(frame(true, 2, &[&[1u8][..], &[b'x'; 70_000][..]].concat()));
        let whole: Vec<Vec<u8>> = Frames::default().push(&stream);
        for size in [1, 2, 3, 7, 1000] {
            let mut frames = Frames::default();
            let mut split = Vec::new();
            for chunk in stream.chunks(size) {
                split.extend(frames.push(chunk));
            }
            assert_eq!(split, whole, "chunks of {size}");
        }
        assert_eq!(whole[0], b"hello ");
        assert_eq!(whole[1], b"oops");
        assert_eq!(whole[2], b"frag");
        assert_eq!(whole[3], b"mented");
        assert_eq!(whole[4].len(), 70_000);
        assert_eq!(whole.len(), 5, "the status channel is not terminal output");
    }

    #[test]
    fn an_over_long_frame_is_passed_over_not_kept() {
        let big = vec![b'y'; 2 * 1024 * 1024];
        let mut stream = frame(true, 2, &[&[1u8][..], &big[..]].concat());
        stream.extend(frame(true, 2, b"\x01after"));
        let mut frames = Frames::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(4096) {
            out.extend(frames.push(chunk));
        }
        assert_eq!(out, vec![b"after".to_vec()]);
    }
}
