//! HTTP handling: the request log, the routes and their answers.
//!
//! One request flows: log it (method, path, query, headers) → read its whole body (bounded) →
//! route → answer → record the status in the log. Paced responses (chunked customers, events)
//! are fed by a task through a [`ChannelBody`]; `/ws` answers 101 and hands the upgraded
//! connection to [`crate::echo`].

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::body::{BigBody, BigJsonBody, ChannelBody, MIB};
use crate::{CUSTOMERS_JSON, Logged, echo, ws};

/// Largest request body read; larger ones are answered 413.
const MAX_BODY: usize = 8 << 20;

/// Largest `n` for `/events` and `mb` for `/big` and `/big.json`.
const MAX_EVENTS: u64 = 100_000;
const MAX_MB: u64 = 4096;

/// State shared by every connection.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every request, in arrival order.
    pub log: Mutex<Vec<Logged>>,
}

impl Shared {
    fn update(&self, index: usize, f: impl FnOnce(&mut Logged)) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = log.get_mut(index) {
            f(entry);
        }
    }
}

/// Response body: whole or streamed.
pub type ResBody = BoxBody<Bytes, Infallible>;

/// Entry point for every request; `connection` numbers the connection it came on.
pub async fn handle(
    shared: Arc<Shared>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let entry = Logged {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), v)
            })
            .collect(),
        body_len: 0,
        status: 0,
        connection,
    };
    let index = {
        let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(entry);
        log.len() - 1
    };
    let response = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            shared.update(index, |e| e.body_len = body.len());
            route(&mut parts, &body)
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => json_response(
            413,
            &json!({"error": "request body too large", "limit": MAX_BODY}),
        ),
        Err(e) => json_response(
            400,
            &json!({"error": format!("reading the request body: {e}")}),
        ),
    };
    shared.update(index, |e| e.status = response.status().as_u16());
    Ok(response)
}

/// Picks the answer for a request whose body has been read.
fn route(parts: &mut hyper::http::request::Parts, body: &Bytes) -> Response<ResBody> {
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let method = parts.method.clone();
    let item = path.strip_prefix("/items/").filter(|id| is_segment(id));
    let answer = match (&method, path.as_str(), item) {
        (_, "/whoami", _) => Ok(whoami(&method, &path, &parts.headers)),
        (&Method::GET, "/customers", _) => Ok(full(200, "application/json", CUSTOMERS_JSON)),
        (&Method::GET, "/customers/chunked", _) => Ok(customers_chunked()),
        (&Method::GET, "/customers/gzip", _) => Ok(customers_gzip()),
        (&Method::GET, "/events", _) => events(&query),
        (&Method::GET, "/ws", _) => Ok(websocket(parts)),
        (&Method::GET, "/small", _) => Ok(full(200, "application/json", r#"{"ok":true}"#)),
        (&Method::GET, "/big", _) => big(&query),
        (&Method::GET, "/big.json", _) => big_json(&query),
        (&Method::POST | &Method::PUT | &Method::PATCH, _, Some(id)) => {
            let parsed = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            Ok(json_response(
                200,
                &json!({"method": method.as_str(), "id": id, "body_len": body.len(), "body": parsed}),
            ))
        }
        (&Method::DELETE, _, Some(id)) => Ok(json_response(200, &json!({"deleted": id}))),
        _ => Ok(json_response(
            404,
            &json!({"error": "not found", "path": path}),
        )),
    };
    answer.unwrap_or_else(|message| json_response(400, &json!({"error": message})))
}

/// One non-empty path segment (no further `/`).
fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

fn full(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

fn json_response(status: u16, v: &Value) -> Response<ResBody> {
    full(status, "application/json", v.to_string())
}

/// A chunked response fed by the returned sender.
fn streamed(content_type: &'static str) -> (Response<ResBody>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(4);
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    (r, tx)
}

/// `/whoami`: the method, path and every header (repeated ones joined with ", ").
fn whoami(method: &Method, path: &str, headers: &HeaderMap) -> Response<ResBody> {
    let mut hs = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        hs.insert(name.as_str().to_string(), Value::String(joined));
    }
    json_response(
        200,
        &json!({"method": method.as_str(), "path": path, "headers": hs}),
    )
}

/// Where `/customers/chunked` cuts [`CUSTOMERS_JSON`]: inside a name, an SSN and an email, so
/// that no planted value arrives whole in one chunk.
pub fn chunk_cuts() -> [usize; 3] {
    let inside = |needle: &str| {
        let at = CUSTOMERS_JSON.find(needle).unwrap_or_default();
        at + needle.len() / 2
    };
    [
        inside("Ada Lovelace"),
        inside("078-05-1120"),
        inside("alan@example.com"),
    ]
}

/// `/customers/chunked`: four chunks, 50 ms apart.
fn customers_chunked() -> Response<ResBody> {
    let (r, tx) = streamed("application/json");
    tokio::spawn(async move {
        let mut from = 0;
        let cuts = chunk_cuts();
        for (i, to) in cuts.into_iter().chain([CUSTOMERS_JSON.len()]).enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let piece = Bytes::from_static(&CUSTOMERS_JSON.as_bytes()[from..to]);
            if tx.send(piece).await.is_err() {
                return;
            }
            from = to;
        }
    });
    r
}

/// `/customers/gzip`: always compressed, whatever the client accepts.
fn customers_gzip() -> Response<ResBody> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = gz
        .write_all(CUSTOMERS_JSON.as_bytes())
        .and_then(|()| gz.finish());
    match compressed {
        Ok(bytes) => {
            let mut r = full(200, "application/json", bytes);
            r.headers_mut()
                .insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        Err(e) => json_response(500, &json!({"error": format!("gzip: {e}")})),
    }
}

/// `/events?n=N&gap_ms=G`: N server-sent events, G ms apart, each its own chunk.
fn events(query: &str) -> Result<Response<ResBody>, String> {
    let n = number(query, "n", 3, MAX_EVENTS)?;
    let gap = Duration::from_millis(number(query, "gap_ms", 300, 3_600_000)?);
    let (mut r, tx) = streamed("text/event-stream");
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    tokio::spawn(async move {
        for i in 1..=n {
            if i > 1 {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Bytes::from(event(i))).await.is_err() {
                return;
            }
        }
    });
    Ok(r)
}

/// The `i`th event of `/events`.
pub fn event(i: u64) -> String {
    format!("id: {i}\nevent: customer\ndata: {{\"n\":{i},\"email\":\"user{i}@example.com\"}}\n\n")
}

/// `/big?mb=N`: N MiB of octets with Content-Length.
fn big(query: &str) -> Result<Response<ResBody>, String> {
    let len = number(query, "mb", 1, MAX_MB)? * MIB;
    let mut r = Response::new(BigBody::new(len).boxed());
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert("content-length", HeaderValue::from(len));
    Ok(r)
}

/// `/big.json?mb=N`: about N MiB of JSON rows, chunked.
fn big_json(query: &str) -> Result<Response<ResBody>, String> {
    let target = number(query, "mb", 1, MAX_MB)? * MIB;
    let mut r = Response::new(BigJsonBody::new(target).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `/ws`: the WebSocket handshake, then the echo on the upgraded connection; 400 without the
/// upgrade headers.
fn websocket(parts: &mut hyper::http::request::Parts) -> Response<ResBody> {
    let h = &parts.headers;
    let has = |name: &str, token: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let key = h.get("sec-websocket-key").and_then(|v| v.to_str().ok());
    let (true, true, Some(key)) = (
        has("upgrade", "websocket"),
        has("connection", "upgrade"),
        key,
    ) else {
        return json_response(
            400,
            &json!({"error": "WebSocket upgrade required (Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Key)"}),
        );
    };
    let accept = ws::accept_key(key);
    // What `hyper::upgrade::on` does for a whole request; hyper puts it there for every
    // request that asks for an upgrade on a connection served `with_upgrades`.
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return json_response(500, &json!({"error": "connection cannot be upgraded"}));
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            echo::session(TokioIo::new(upgraded)).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = r.headers_mut();
    hs.insert("upgrade", HeaderValue::from_static("websocket"));
    hs.insert("connection", HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hs.insert("sec-websocket-accept", v);
    }
    r
}

/// The query parameter `name` as a number no larger than `max`; `default` when absent.
fn number(query: &str, name: &str, default: u64, max: u64) -> Result<u64, String> {
    let raw = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!(
            "{name} must be a whole number from 0 to {max}, not {raw:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        assert_eq!(number("", "n", 3, 10), Ok(3));
        assert_eq!(number("gap_ms=5&n=7", "n", 3, 10), Ok(7));
        assert!(number("n=11", "n", 3, 10).is_err());
        assert!(number("n=x", "n", 3, 10).is_err());
        assert!(number("n", "n", 3, 10).is_err());
    }

    #[test]
    fn chunk_cuts_split_planted_values() {
        let cuts = chunk_cuts();
        assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
        assert!(cuts.iter().all(|c| *c > 0 && *c < CUSTOMERS_JSON.len()));
        let mut pieces = Vec::new();
        let mut from = 0;
        for to in cuts.into_iter().chain([CUSTOMERS_JSON.len()]) {
            pieces.push(&CUSTOMERS_JSON[from..to]);
            from = to;
        }
        assert_eq!(pieces.concat(), CUSTOMERS_JSON);
        for needle in ["Ada Lovelace", "078-05-1120", "alan@example.com"] {
            assert!(pieces.iter().all(|p| !p.contains(needle)), "{needle} whole");
        }
    }

    #[test]
    fn event_format() {
        assert_eq!(
            event(2),
            "id: 2\nevent: customer\ndata: {\"n\":2,\"email\":\"user2@example.com\"}\n\n"
        );
    }
}
