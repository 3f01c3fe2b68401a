//! HTTP handling: request log, bearer-token check, routing (discovery, resources, exec), content
//! negotiation (JSON or Table) and the REST verbs over the [`Store`].
//!
//! One request flows: log it → check the token → route the path → answer. Watches answer with
//! a chunked body fed by a task; exec answers 101 and hands the upgraded connection to
//! [`crate::exec`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::Logged;
use crate::exec;
use crate::patch;
use crate::resources::{self, ResourceDef};
use crate::status::ApiError;
use crate::store::{Event, Store, WatchFrom, Write};
use crate::table::{self, Include, TableOpts};
use sluice_fake_http::ws;

/// Largest request body accepted.
const MAX_BODY: usize = 8 << 20;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// The objects.
    pub store: Store,
    /// The one bearer token accepted.
    pub token: String,
    /// Every request, in arrival order.
    pub log: Mutex<Vec<Logged>>,
    /// Impersonated users refused with 403.
    pub forbidden_users: Mutex<Vec<String>>,
    /// `127.0.0.1:PORT`, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// Response body: whole or streamed.
pub type ResBody = BoxBody<Bytes, Infallible>;

/// A body fed chunk by chunk from a channel (watch streams). Each chunk is written as soon as
/// it arrives: hyper flushes per frame.
#[derive(Debug)]
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn full(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn json_response(status: u16, v: &Value) -> Response<ResBody> {
    full(status, "application/json", v.to_string())
}

fn error(e: &ApiError) -> Response<ResBody> {
    json_response(e.code, &e.body)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Entry point for every request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    client_cert: bool,
) -> Result<Response<ResBody>, Infallible> {
    let h = req.headers();
    let entry = Logged {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
        impersonate_user: header(h, "impersonate-user"),
        impersonate_groups: h
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect(),
        authorization: if h.contains_key("authorization") {
            "present"
        } else if client_cert {
            "client-cert"
        } else {
            "absent"
        },
        accept: header(h, "accept"),
        status: 0,
    };
    let index = {
        let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(entry);
        log.len() - 1
    };
    let response = respond(&shared, req, client_cert).await;
    let status = response.status().as_u16();
    if let Some(e) = shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(index)
    {
        e.status = status;
    }
    Ok(response)
}

async fn respond(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    client_cert: bool,
) -> Response<ResBody> {
    let expected = format!("Bearer {}", shared.token);
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    // A bearer token is checked when sent (a wrong one fails even with a certificate), as the
    // API server does; otherwise a client certificate signed by the CA authenticates.
    let authenticated = match presented {
        Some(presented) => presented == expected,
        None => client_cert,
    };
    if !authenticated {
        return error(&ApiError::unauthorized());
    }
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => return json_response(200, &resources::version()),
        ["healthz" | "livez" | "readyz"] => return full(200, "text/plain; charset=utf-8", "ok"),
        // Aggregated discovery (application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList)
        // is never served: plain application/json tells kubectl to fall back to legacy discovery.
        ["api"] => return json_response(200, &resources::core_versions(&shared.address)),
        ["apis"] => return json_response(200, &resources::group_list()),
        ["apis", "apps"] => {
            let mut g = resources::group("apps");
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            return json_response(200, &g);
        }
        ["api", v] => return discovery(req.method(), "", v),
        ["apis", g, v] => return discovery(req.method(), g, v),
        _ => {}
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return error(&ApiError::no_such_path()),
    };
    let Some(route) = route(group, version, rest) else {
        return error(&ApiError::no_such_path());
    };
    let impersonated = header(req.headers(), "impersonate-user");
    if let Some(user) = impersonated {
        let forbidden = shared
            .forbidden_users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&user);
        if forbidden {
            let verb = verb(req.method(), &route, &query);
            let resource = match route.sub {
                Some(s) => format!("{}/{s}", route.def.plural),
                None => route.def.plural.to_string(),
            };
            return error(&ApiError::forbidden(
                &user,
                verb,
                route.def.group,
                &resource,
                route.namespace.as_deref().unwrap_or_default(),
            ));
        }
    }
    if route.sub == Some("exec") {
        return exec_request(shared, req, &route, &query);
    }
    let output = Output::negotiate(req.headers(), &query);
    let method = req.method().clone();
    let content_type = header(req.headers(), "content-type").unwrap_or_default();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let r = Rest {
        shared,
        route: &route,
        query: &query,
        output,
    };
    let result = match (&method, route.name.is_some()) {
        (&Method::GET, true) => r.get(),
        (&Method::GET, false) if query.flag("watch") => return r.watch(),
        (&Method::GET, false) => r.list(),
        (&Method::POST, false) => r.create(&body),
        (&Method::PUT, true) => r.replace(&body),
        (&Method::PATCH, true) => r.patch(&content_type, &body),
        (&Method::DELETE, true) => r.delete(&body),
        (&Method::DELETE, false) if route.def.verbs().contains(&"deletecollection") => {
            r.delete_collection(&body)
        }
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    };
    match result {
        Ok((status, v)) => json_response(status, &v),
        Err(e) => error(&e),
    }
}

fn discovery(method: &Method, group: &str, version: &str) -> Response<ResBody> {
    if method != Method::GET {
        return error(&ApiError::method_not_allowed(method.as_str()));
    }
    match resources::resource_list(group, version) {
        Some(v) => json_response(200, &v),
        None => error(&ApiError::no_such_path()),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    limited
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

/// A resource path.
#[derive(Debug)]
struct Route {
    def: &'static ResourceDef,
    /// Namespace from the path (`None` for cluster-scoped types and all-namespace lists).
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<&'static str>,
}

fn route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let namespaced = match rest {
        ["namespaces", ns, res, tail @ ..] => resources::find(group, version, res)
            .filter(|d| d.namespaced)
            .map(|d| (d, Some((*ns).to_string()), tail)),
        _ => None,
    };
    let (def, namespace, tail) = match namespaced {
        Some(x) => x,
        None => {
            let (res, tail) = rest.split_first()?;
            (resources::find(group, version, res)?, None, tail)
        }
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_string()), None),
        [name, sub] => {
            let sub = match (def.plural, *sub) {
                ("pods", "exec") => "exec",
                (_, "status") => "status",
                ("deployments", "scale") => "scale",
                _ => return None,
            };
            (Some((*name).to_string()), Some(sub))
        }
        _ => return None,
    };
    // A namespaced object is only addressable inside its namespace.
    if def.namespaced && namespace.is_none() && name.is_some() {
        return None;
    }
    Some(Route {
        def,
        namespace,
        name,
        sub,
    })
}

/// The RBAC verb a request would be judged as.
fn verb(method: &Method, route: &Route, query: &Query) -> &'static str {
    match (method.as_str(), route.name.is_some()) {
        _ if route.sub == Some("exec") => "create",
        ("GET", true) => "get",
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Decoded query parameters (repeated keys kept).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=b&c=d`, percent- and plus-decoding.
    pub fn parse(q: &str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `key=true` or `key=1`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How to encode objects in the response.
#[derive(Debug, Clone, Copy)]
enum Output {
    Json,
    Table(TableOpts),
}

impl Output {
    /// Table when the Accept header's first acceptable entry is a meta.k8s.io Table; JSON
    /// otherwise (also when only protobuf is asked for: this server never speaks protobuf).
    fn negotiate(headers: &HeaderMap, query: &Query) -> Self {
        let accept = header(headers, "accept").unwrap_or_default();
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
            let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
            if media != "application/json" && media != "*/*" {
                continue;
            }
            match (param("as"), param("g"), param("v")) {
                (None, _, _) => return Output::Json,
                (Some("Table"), Some("meta.k8s.io"), Some(v @ ("v1" | "v1beta1"))) => {
                    return Output::Table(TableOpts {
                        api_version: if v == "v1" {
                            "meta.k8s.io/v1"
                        } else {
                            "meta.k8s.io/v1beta1"
                        },
                        include: Include::parse(query.get("includeObject")),
                        no_headers: false,
                    });
                }
                _ => {}
            }
        }
        Output::Json
    }
}

/// A parsed `fieldSelector` / `labelSelector` term.
#[derive(Debug)]
struct Term {
    field: String,
    value: String,
    equal: bool,
}

fn parse_selector(s: &str) -> Vec<Term> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            let t = t.trim();
            if let Some((f, v)) = t.split_once("!=") {
                Term {
                    field: f.into(),
                    value: v.into(),
                    equal: false,
                }
            } else if let Some((f, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Term {
                    field: f.into(),
                    value: v.into(),
                    equal: true,
                }
            } else {
                // Bare label key: "exists".
                Term {
                    field: t.into(),
                    value: String::new(),
                    equal: false,
                }
            }
        })
        .collect()
}

/// Object filter from `fieldSelector` and `labelSelector`.
#[derive(Debug, Default)]
struct Selector {
    fields: Vec<Term>,
    labels: Vec<Term>,
}

impl Selector {
    fn from_query(def: &ResourceDef, q: &Query) -> Result<Self, ApiError> {
        let fields = parse_selector(q.get("fieldSelector").unwrap_or_default());
        for t in &fields {
            if field_value(def, &Value::Null, &t.field).is_none() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(Selector {
            fields,
            labels: parse_selector(q.get("labelSelector").unwrap_or_default()),
        })
    }

    fn matches(&self, def: &ResourceDef, o: &Value) -> bool {
        let fields_ok = self.fields.iter().all(|t| {
            let v = field_value(def, o, &t.field).unwrap_or_default();
            (v == t.value) == t.equal
        });
        let labels_ok = self.labels.iter().all(|t| {
            let v = o["metadata"]["labels"][&t.field].as_str();
            match (t.equal, t.value.is_empty()) {
                (false, true) => v.is_some(),
                (true, _) => v == Some(t.value.as_str()),
                (false, false) => v != Some(t.value.as_str()),
            }
        });
        fields_ok && labels_ok
    }
}

/// A supported field selector's value on `o`; `None` when the field is not selectable.
fn field_value(def: &ResourceDef, o: &Value, field: &str) -> Option<String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match (def.plural, field) {
        (_, "metadata.name") => Some(s(&o["metadata"]["name"])),
        (_, "metadata.namespace") => Some(s(&o["metadata"]["namespace"])),
        ("pods", "status.phase") => Some(s(&o["status"]["phase"])),
        ("pods", "spec.nodeName") => Some(s(&o["spec"]["nodeName"])),
        ("secrets", "type") => Some(s(&o["type"])),
        ("namespaces", "status.phase") => Some(s(&o["status"]["phase"])),
        _ => None,
    }
}

/// Opaque `continue` token: base64 of the API server's own JSON shape.
fn encode_continue(rv: u64, after: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{after}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    Ok((rv, start.trim_end_matches('\u{0}').to_string()))
}

/// `namespace/name` (or `name`), the position a continue token points after.
fn position(o: &Value) -> String {
    let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

fn dry_run(query: &Query, body: &Value) -> Write {
    let in_query = query.all("dryRun").iter().any(|v| v == "All");
    let in_body = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    if in_query || in_body {
        Write::DryRun
    } else {
        Write::Commit
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// One REST request on a resource path.
struct Rest<'a> {
    shared: &'a Arc<Shared>,
    route: &'a Route,
    query: &'a Query,
    output: Output,
}

type Answer = Result<(u16, Value), ApiError>;

impl Rest<'_> {
    fn ns(&self) -> &str {
        self.route.namespace.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.route.name.as_deref().unwrap_or_default()
    }

    fn render_one(&self, o: Value) -> Value {
        match self.output {
            Output::Table(opts) => table::table(
                self.route.def,
                std::slice::from_ref(&o),
                json!({"resourceVersion": o["metadata"]["resourceVersion"]}),
                opts,
            ),
            Output::Json => o,
        }
    }

    fn get(&self) -> Answer {
        let d = self.route.def;
        let o = self
            .shared
            .store
            .get(d, self.ns(), self.name())
            .ok_or_else(|| ApiError::not_found(d.group, d.plural, self.name()))?;
        if self.route.sub == Some("scale") {
            return Ok((200, scale_of(&o)));
        }
        Ok((200, self.render_one(o)))
    }

    fn list(&self) -> Answer {
        let d = self.route.def;
        let selector = Selector::from_query(d, self.query)?;
        let (mut rv, all) = self.shared.store.list(d, self.route.namespace.as_deref());
        let mut start = None;
        if let Some(token) = self.query.get("continue").filter(|t| !t.is_empty()) {
            let (token_rv, after) = decode_continue(token)?;
            rv = token_rv;
            start = Some(after);
        }
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|o| {
                start
                    .as_ref()
                    .is_none_or(|s| position(o).as_str() > s.as_str())
            })
            .filter(|o| selector.matches(d, o))
            .collect();
        let limit = self
            .query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let mut meta = json!({"resourceVersion": rv.to_string()});
        let items: Vec<Value> = match limit {
            Some(l) if matching.len() > l => {
                let page: Vec<Value> = matching[..l].to_vec();
                if let Some(last) = page.last() {
                    meta["continue"] = json!(encode_continue(rv, &position(last)));
                }
                meta["remainingItemCount"] = json!(matching.len() - l);
                page
            }
            _ => matching,
        };
        match self.output {
            Output::Table(opts) => Ok((200, table::table(d, &items, meta, opts))),
            Output::Json => Ok((200, list_of(d, meta, items))),
        }
    }

    fn create(&self, body: &Bytes) -> Answer {
        let d = self.route.def;
        let mut o = parse_json(body)?;
        if !o.is_object() {
            return Err(ApiError::bad_request(
                "the body of a create must be an object",
            ));
        }
        if !o["metadata"].is_object() {
            o["metadata"] = json!({});
        }
        let meta = &mut o["metadata"];
        if meta["name"].as_str().is_none_or(str::is_empty) {
            match meta["generateName"].as_str() {
                Some(prefix) => {
                    let suffix: String = (0..5)
                        .map(|_| {
                            let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
                            char::from(alphabet[rand::random_range(0..alphabet.len())])
                        })
                        .collect();
                    meta["name"] = json!(format!("{prefix}{suffix}"));
                }
                None => {
                    return Err(ApiError::invalid(
                        d.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        if d.namespaced {
            match meta["namespace"].as_str() {
                Some(ns) if !ns.is_empty() && ns != self.ns() => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta["namespace"] = json!(self.ns()),
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        let write = dry_run(self.query, &Value::Null);
        let created = self.shared.store.create(d, self.ns(), o, write)?;
        Ok((201, created))
    }

    fn replace(&self, body: &Bytes) -> Answer {
        let new = parse_json(body)?;
        let sub = self.route.sub;
        let write = dry_run(self.query, &Value::Null);
        let updated =
            self.shared
                .store
                .update(self.route.def, self.ns(), self.name(), write, |cur| {
                    Ok(match sub {
                        Some("status") => {
                            let mut next = cur.clone();
                            next["status"] = new["status"].clone();
                            next["metadata"]["resourceVersion"] =
                                new["metadata"]["resourceVersion"].clone();
                            next
                        }
                        Some("scale") => with_scale(cur, &new),
                        _ => new,
                    })
                })?;
        Ok((
            200,
            if sub == Some("scale") {
                scale_of(&updated)
            } else {
                updated
            },
        ))
    }

    fn patch(&self, content_type: &str, body: &Bytes) -> Answer {
        let patch_doc = parse_json(body)?;
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let sub = self.route.sub;
        let write = dry_run(self.query, &Value::Null);
        let updated =
            self.shared
                .store
                .update(self.route.def, self.ns(), self.name(), write, |cur| {
                    let mut target = if sub == Some("scale") {
                        scale_of(cur)
                    } else {
                        cur.clone()
                    };
                    match media.as_str() {
                        "application/merge-patch+json"
                        | "application/strategic-merge-patch+json" => {
                            patch::merge(&mut target, &patch_doc)
                        }
                        "application/json-patch+json" => {
                            patch::json_patch(&mut target, &patch_doc)?
                        }
                        other => return Err(ApiError::unsupported_media_type(other)),
                    }
                    Ok(match sub {
                        Some("scale") => with_scale(cur, &target),
                        Some("status") => {
                            let mut next = cur.clone();
                            next["status"] = target["status"].clone();
                            next
                        }
                        _ => {
                            // A patch only conflicts when it names a resourceVersion itself.
                            if patch_doc["metadata"]["resourceVersion"].is_null() {
                                target["metadata"]["resourceVersion"] =
                                    cur["metadata"]["resourceVersion"].clone();
                            }
                            target
                        }
                    })
                })?;
        Ok((
            200,
            if sub == Some("scale") {
                scale_of(&updated)
            } else {
                updated
            },
        ))
    }

    fn delete(&self, body: &Bytes) -> Answer {
        let options = parse_json(body).unwrap_or(Value::Null);
        let write = dry_run(self.query, &options);
        let deleted = self
            .shared
            .store
            .delete(self.route.def, self.ns(), self.name(), write)?;
        Ok((200, deleted))
    }

    fn delete_collection(&self, body: &Bytes) -> Answer {
        let d = self.route.def;
        let options = parse_json(body).unwrap_or(Value::Null);
        let write = dry_run(self.query, &options);
        let selector = Selector::from_query(d, self.query)?;
        let (_, all) = self.shared.store.list(d, self.route.namespace.as_deref());
        let mut deleted = Vec::new();
        for o in all.into_iter().filter(|o| selector.matches(d, o)) {
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Ok(gone) = self.shared.store.delete(d, &ns, &name, write) {
                deleted.push(gone);
            }
        }
        let rv = self.shared.store.resource_version();
        Ok((
            200,
            list_of(d, json!({"resourceVersion": rv.to_string()}), deleted),
        ))
    }

    /// `?watch=true`: a chunked stream of newline-delimited events.
    fn watch(&self) -> Response<ResBody> {
        let d = self.route.def;
        let selector = match Selector::from_query(d, self.query) {
            Ok(s) => s,
            Err(e) => return error(&e),
        };
        let send_initial = self.query.flag("sendInitialEvents");
        let from = match self.query.get("resourceVersion") {
            _ if send_initial => WatchFrom::Current,
            None | Some("" | "0") => WatchFrom::Current,
            Some(n) => match n.parse() {
                Ok(n) => WatchFrom::After(n),
                Err(_) => {
                    return error(&ApiError::bad_request(format!(
                        "invalid resource version: {n}"
                    )));
                }
            },
        };
        let keep = |o: &Value| selector.matches(d, o);
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let start = self
            .shared
            .store
            .watch(d, self.route.namespace.as_deref(), from, &keep);
        let timeout = self
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        let output = self.output;
        let namespace = self.route.namespace.clone();
        let response = {
            let mut r = Response::new(ChannelBody(rx).boxed());
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r.headers_mut().insert(
                "cache-control",
                HeaderValue::from_static("no-cache, private"),
            );
            r
        };
        let start = match start {
            Ok(s) => s,
            Err(gone) => {
                // The real server answers an expired resourceVersion with an ERROR event.
                tokio::spawn(async move {
                    let _ = tx
                        .send(line(&json!({"type": "ERROR", "object": gone.body})))
                        .await;
                });
                return response;
            }
        };
        tokio::spawn(async move {
            let mut encoder = Encoder { def: d, output };
            let mut pending: VecDeque<Event> = start.initial.into();
            let initial_rv = start.after;
            while let Some(e) = pending.pop_front() {
                if tx.send(encoder.event(&e)).await.is_err() {
                    return;
                }
            }
            if send_initial {
                let bookmark = json!({"type": "BOOKMARK", "object": {
                    "kind": d.kind, "apiVersion": d.api_version(),
                    "metadata": {"resourceVersion": initial_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}
                }});
                if tx.send(line(&bookmark)).await.is_err() {
                    return;
                }
            }
            let mut live = start.live;
            let deadline = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => return,
                    () = tx.closed() => return,
                    r = live.recv() => match r {
                        Ok(e) => {
                            let wanted = e.rv > initial_rv
                                && e.key.resource == d.plural
                                && namespace.as_deref().is_none_or(|ns| e.key.namespace == ns)
                                && selector.matches(d, &e.object);
                            if wanted && tx.send(encoder.event(&e)).await.is_err() {
                                return;
                            }
                        }
                        // Too slow or shut down: end the watch; clients re-list.
                        Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        response
    }
}

/// Turns store events into watch lines; tracks whether Table headers were sent.
struct Encoder {
    def: &'static ResourceDef,
    output: Output,
}

impl Encoder {
    fn event(&mut self, e: &Event) -> Bytes {
        let object = match &mut self.output {
            Output::Json => e.object.clone(),
            Output::Table(opts) => {
                let t = table::table(
                    self.def,
                    std::slice::from_ref(&e.object),
                    json!({"resourceVersion": e.object["metadata"]["resourceVersion"]}),
                    *opts,
                );
                // Like the API server: headers on the first event only.
                opts.no_headers = true;
                t
            }
        };
        line(&json!({"type": e.kind.as_str(), "object": object}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// `PodList` etc.; list items carry no kind/apiVersion, as from the real server.
fn list_of(d: &ResourceDef, meta: Value, items: Vec<Value>) -> Value {
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    json!({"kind": format!("{}List", d.kind), "apiVersion": d.api_version(), "metadata": meta, "items": items})
}

/// A Deployment's `autoscaling/v1` Scale.
fn scale_of(o: &Value) -> Value {
    let m = &o["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0)}
    })
}

fn with_scale(cur: &Value, scale: &Value) -> Value {
    let mut next = cur.clone();
    next["spec"]["replicas"] = scale["spec"]["replicas"].clone();
    next["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
    next
}

/// `pods/NAME/exec`: a WebSocket upgrade (v5/v4 channel protocols) running the fake command.
fn exec_request(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    route: &Route,
    query: &Query,
) -> Response<ResBody> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return error(&ApiError::method_not_allowed(req.method().as_str()));
    }
    let ns = route.namespace.as_deref().unwrap_or_default();
    let name = route.name.as_deref().unwrap_or_default();
    let Some(pod) = shared.store.get(route.def, ns, name) else {
        return error(&ApiError::not_found("", "pods", name));
    };
    if let Some(c) = query.get("container") {
        let known = pod["spec"]["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x["name"] == c));
        if !known {
            return error(&ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
    }
    let h = req.headers();
    let is_ws = h
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = header(h, "sec-websocket-key");
    let (true, Some(key)) = (is_ws, key) else {
        return error(&ApiError::bad_request(
            "Upgrade request required (this fake speaks exec over WebSocket only, not SPDY)",
        ));
    };
    let offered: Vec<String> = h
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let Some(protocol) = exec::PROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p))
    else {
        return error(&ApiError::bad_request(format!(
            "none of the offered subprotocols {offered:?} is supported ({:?})",
            exec::PROTOCOLS
        )));
    };
    let command = query.all("command");
    let tty = query.flag("tty");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            exec::session(TokioIo::new(upgraded), protocol, command, tty).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = r.headers_mut();
    hs.insert("upgrade", HeaderValue::from_static("websocket"));
    hs.insert("connection", HeaderValue::from_static("Upgrade"));
    hs.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    if let Ok(v) = HeaderValue::from_str(&ws::accept_key(&key)) {
        hs.insert("sec-websocket-accept", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse("command=sh&command=-c&command=echo+hi%3B+exit%203&watch=1");
        assert_eq!(q.all("command"), vec!["sh", "-c", "echo hi; exit 3"]);
        assert!(q.flag("watch"));
    }

    #[test]
    fn negotiation() {
        let neg = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert("accept", HeaderValue::from_str(accept).expect("header"));
            Output::negotiate(&h, &Query::default())
        };
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(matches!(neg(kubectl_get), Output::Table(t) if t.api_version == "meta.k8s.io/v1"));
        assert!(
            matches!(neg("application/json;as=Table;v=v1beta1;g=meta.k8s.io"), Output::Table(t) if t.api_version == "meta.k8s.io/v1beta1")
        );
        // Protobuf is never spoken: JSON it is.
        assert!(matches!(
            neg("application/vnd.kubernetes.protobuf"),
            Output::Json
        ));
        assert!(matches!(
            neg("application/vnd.kubernetes.protobuf,application/json"),
            Output::Json
        ));
        assert!(matches!(
            neg(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Output::Json
        ));
    }

    #[test]
    fn continue_round_trip() {
        let t = encode_continue(42, "prod/cm-00499");
        assert_eq!(
            decode_continue(&t).expect("valid"),
            (42, "prod/cm-00499".to_string())
        );
        assert!(decode_continue("not-a-token").is_err());
    }
}
