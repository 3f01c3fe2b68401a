//! The broker's own Kubernetes endpoint: `https://BROKER/v1/kube/RES/...`, what a kubeconfig
//! written by `sluice config kube RES` points at, so plain `kubectl --context RES` works while
//! the user holds a grant, with no local listener.
//!
//! ```text
//!  kubectl ── Bearer GRANT.SESSION-TOKEN (from `sluice kube-credential RES`) ──▶ /v1/kube/RES/api/v1/pods
//!     │ the gate: token valid, grant active on RES, policy still gives the role
//!     ▼
//!  one session per grant (recorded like a tunnel's), its requests handed to the Kubernetes
//!  engine one by one; idle for 10 minutes or the grant ends → the session ends
//! ```
//!
//! The engine decides, masks and records exactly as for `sluice kube`: this module only finds
//! (or starts) the grant's session and hands it each request with the prefix removed.

use crate::api::AppState;
use crate::engines::Exchange;
use crate::engines::web::{IDLE, ResponseBody};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sluice_shared::grants::GRANT_HEADER;
use sluice_shared::tunnel::SECRET_HEADER;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The path prefix; the resource's name follows.
pub const PREFIX: &str = "/v1/kube/";
/// Requests waiting for a session's engine.
const QUEUE: usize = 64;

/// The live sessions of the endpoint, by grant.
#[derive(Debug, Default)]
pub struct KubeLinks {
    links: Mutex<HashMap<String, Link>>,
}

/// One grant's session: where its requests go.
#[derive(Debug, Clone)]
struct Link {
    /// The session token last verified for it: (token, its id, its expiry).
    verified: Arc<Mutex<Option<(String, String, u64)>>>,
    subject: String,
    resource: String,
    /// The one-time token the session's engine checks on every request.
    secret: String,
    requests: mpsc::Sender<Exchange>,
    used: Arc<Mutex<Instant>>,
}

impl Link {
    /// Its session still runs and had a request within [`IDLE`] (after which it ends itself).
    fn live(&self) -> bool {
        !self.requests.is_closed() && self.used.lock().is_ok_and(|used| used.elapsed() < IDLE)
    }
}

impl KubeLinks {
    /// The grant's live session, if `subject` holds it on `resource` and it is not idle.
    fn find(&self, grant: &str, subject: &str, resource: &str) -> Option<Link> {
        let links = self.links.lock().ok()?;
        let link = links.get(grant)?;
        (link.subject == subject && link.resource == resource && link.live()).then(|| link.clone())
    }

    /// The subject of the grant's live session on `resource` when `token` is the one last
    /// verified for it, still unexpired and not logged out.
    fn verified(
        &self,
        grant: &str,
        token: &str,
        resource: &str,
        gate: &crate::gate::Gate,
    ) -> Option<String> {
        use subtle::ConstantTimeEq;
        let links = self.links.lock().ok()?;
        let link = links.get(grant).filter(|l| l.resource == resource)?;
        if link.requests.is_closed() {
            return None;
        }
        let verified = link.verified.lock().ok()?;
        let (known, id, expires) = verified.as_ref()?;
        let same =
            known.len() == token.len() && bool::from(known.as_bytes().ct_eq(token.as_bytes()));
        (same && crate::tokens::now_secs() < *expires && !gate.token_revoked(id))
            .then(|| link.subject.clone())
    }

    /// Notes `token` as verified for the grant's session (if it has one for this subject).
    fn remember(&self, grant: &str, token: &str, identity: &crate::gate::Identity) {
        let Ok(links) = self.links.lock() else {
            return;
        };
        if let Some(link) = links.get(grant).filter(|l| l.subject == identity.subject)
            && let Ok(mut verified) = link.verified.lock()
        {
            *verified = Some((
                token.to_owned(),
                identity.token_id.clone(),
                identity.expires_at,
            ));
        }
    }

    /// Adds a session, letting go of every one that ended or went idle (dropping its sender
    /// ends an idle one).
    fn insert(&self, grant: &str, link: Link) {
        if let Ok(mut links) = self.links.lock() {
            links.retain(|_, link| link.live());
            links.insert(grant.to_owned(), link);
        }
    }

    fn remove(&self, grant: &str) {
        if let Ok(mut links) = self.links.lock() {
            links.remove(grant);
        }
    }
}

/// `ANY /v1/kube/{resource}/{*path}`.
pub async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let Some((resource, path)) = split(request.uri().path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "sluice: no such endpoint",
        );
    };
    let Some((grant, token)) = credential(request.headers()) else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            &format!(
                "sluice: this endpoint needs the credential `sluice kube-credential {resource}` \
                 gives kubectl; run `sluice config kube {resource}` and use its context"
            ),
        );
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&grant) {
        headers.insert(GRANT_HEADER, value);
    }
    // A token this grant's session already verified is checked for expiry and logout only:
    // an Ed25519 verification per request would cost more than the request.
    let subject = match app
        .kube_links
        .verified(&grant, &token, &resource, &app.gate)
    {
        Some(subject) => subject,
        None => match app.gate.identify(&headers) {
            Ok(identity) => {
                app.kube_links.remember(&grant, &token, &identity);
                identity.subject
            }
            Err(e) => return status(StatusCode::UNAUTHORIZED, "Unauthorized", &e.message),
        },
    };
    let (mut parts, body) = request.into_parts();
    let target = match parts.uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    let Ok(uri) = target.parse() else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "sluice: a malformed path",
        );
    };
    parts.uri = uri;
    let mut request = Some(axum::http::Request::from_parts(parts, body));
    // A session that ended since it was last used is started again (if the grant allows).
    for _ in 0..2 {
        let link = match app.kube_links.find(&grant, &subject, &resource) {
            Some(link) => link,
            None => match open(&app, &headers, &resource, &grant, &subject).await {
                Ok(link) => link,
                Err(response) => return response,
            },
        };
        if let Ok(mut used) = link.used.lock() {
            *used = Instant::now();
        }
        let Some(mut outgoing) = request.take() else {
            break;
        };
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", link.secret)) {
            outgoing.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let (reply, answer) = oneshot::channel();
        match link
            .requests
            .send(Exchange {
                request: outgoing,
                reply,
            })
            .await
        {
            Ok(()) => {
                return match answer.await {
                    Ok(response) => into_axum(response),
                    Err(_) => status(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "sluice: the session ended before it answered; run the command again",
                    ),
                };
            }
            Err(returned) => {
                app.kube_links.remove(&grant);
                request = Some(returned.0.request);
            }
        }
    }
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "sluice: the broker could not start a session for this grant",
    )
}

/// Starts the grant's session: the gate decides as for a tunnel, the engine serves it.
async fn open(
    app: &AppState,
    headers: &HeaderMap,
    resource: &str,
    grant: &str,
    subject: &str,
) -> Result<Link, Response> {
    let secret = crate::tokens::random_id() + &crate::tokens::random_id();
    let mut headers = headers.clone();
    if let Ok(value) = HeaderValue::from_str(&secret) {
        headers.insert(SECRET_HEADER, value);
    }
    let started = crate::tunnel::start(app, &headers, resource, "kube endpoint")
        .await
        .map_err(|failure| {
            let code =
                StatusCode::from_u16(failure.0.code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            let reason = match code {
                StatusCode::UNAUTHORIZED => "Unauthorized",
                StatusCode::NOT_FOUND => "NotFound",
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
                _ => "Forbidden",
            };
            status(code, reason, &format!("sluice: {}", failure.0.message))
        })?;
    if started.authz.resource().kind() != sluice_shared::api::ResourceKind::Kubernetes {
        started
            .session
            .abandon()
            .finish("error: not a kubernetes resource", 0, 0)
            .await;
        return Err(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("sluice: '{resource}' is not a kubernetes resource"),
        ));
    }
    let (requests, receiver) = mpsc::channel(QUEUE);
    let app_for_session = app.clone();
    tokio::spawn(async move {
        let crate::tunnel::Started {
            session,
            authz,
            permit,
            plan,
            ..
        } = started;
        let _permit = permit;
        crate::tunnel::run(
            crate::tunnel::Transport::Requests(receiver),
            session,
            authz,
            plan,
            &app_for_session,
        )
        .await;
    });
    let link = Link {
        verified: Arc::default(),
        subject: subject.to_owned(),
        resource: resource.to_owned(),
        secret,
        requests,
        used: Arc::new(Mutex::new(Instant::now())),
    };
    app.kube_links.insert(grant, link.clone());
    Ok(link)
}

/// `(resource, rest of the path)` of `/v1/kube/RES/rest`.
fn split(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (resource, path) = rest.split_once('/').unwrap_or((rest, ""));
    (!resource.is_empty()).then(|| (resource.to_owned(), path.to_owned()))
}

/// `(grant, session token)` of `Authorization: Bearer GRANT.TOKEN`.
fn credential(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (grant, token) = value.strip_prefix("Bearer ")?.split_once('.')?;
    (!grant.is_empty() && !token.is_empty()).then(|| (grant.to_owned(), token.to_owned()))
}

fn into_axum(response: axum::http::Response<ResponseBody>) -> Response {
    response.map(Body::new)
}

/// A `metav1.Status` answer, which kubectl prints as `Error from server (REASON): MESSAGE`.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    into_axum(crate::engines::kube_status(code, reason, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_credentials_are_read_strictly() {
        assert_eq!(
            split("/v1/kube/prod/api/v1/pods"),
            Some(("prod".into(), "api/v1/pods".into()))
        );
        assert_eq!(split("/v1/kube/prod"), Some(("prod".into(), String::new())));
        assert_eq!(split("/v1/kube/"), None);
        assert_eq!(split("/v1/other"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer g_1.eyJ.a.b"),
        );
        assert_eq!(credential(&headers), Some(("g_1".into(), "eyJ.a.b".into())));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer eyJ"),
        );
        assert_eq!(credential(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x.y"));
        assert_eq!(credential(&headers), None);
    }
}
