//! HTTP handlers for recorded sessions (`/v1/sessions`): everyone lists and reads their own,
//! auditors (`policy.auditors`) everyone's.

use crate::api::{AppState, Failure};
use crate::gate::Identity;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use sluice_config::Principal;
use sluice_shared::sessions::{MAX_LIST, SESSIONS_PATH, SessionDetail, SessionInfo, SessionList};
use sluice_shared::{ApiError, ErrorCode};
use sluice_store::SessionFilter;
use tracing::{info, warn};

/// The session routes.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(SESSIONS_PATH, get(list))
        .route(&format!("{SESSIONS_PATH}/{{id}}"), get(show))
}

fn is_auditor(app: &AppState, who: &Identity) -> bool {
    app.gate.config().policy.auditors.includes(&Principal {
        subject: &who.subject,
        groups: &who.groups,
    })
}

fn store_failure(e: &sluice_store::StoreError) -> Failure {
    warn!(error = %e, "cannot read the session index");
    Failure(ApiError::new(
        ErrorCode::Unavailable,
        "the broker cannot read its session index just now",
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    resource: Option<String>,
    user: Option<String>,
    /// Seconds since the epoch.
    since: Option<u64>,
    limit: Option<u32>,
}

async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<SessionList>, Failure> {
    let who = app.gate.identify(&headers)?;
    let subject = match (query.user, is_auditor(&app, &who)) {
        (Some(user), false) if user != who.subject => {
            return Err(Failure(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "only auditors (policy.auditors) may list other people's sessions; you may \
                     list your own ({})",
                    who.subject
                ),
            )));
        }
        (user, true) => user,
        (_, false) => Some(who.subject.clone()),
    };
    let filter = SessionFilter {
        subject,
        resource: query.resource,
        since: query.since,
        limit: query.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST),
    };
    let sessions = app
        .sessions
        .store()
        .sessions(&filter)
        .await
        .map_err(|e| store_failure(&e))?;
    Ok(Json(SessionList { sessions }))
}

async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, Failure> {
    let who = app.gate.identify(&headers)?;
    let not_found = || {
        Failure(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("no session {id} that you may see"),
        ))
    };
    let session: SessionInfo = app
        .sessions
        .store()
        .session(&id)
        .await
        .map_err(|e| store_failure(&e))?
        .ok_or_else(not_found)?;
    let auditor = is_auditor(&app, &who);
    if session.subject != who.subject && !auditor {
        // The same answer as a missing session: ids cannot be probed.
        warn!(target: "audit", event = "session.view_refused.v1", session = %id,
            subject = %who.subject);
        return Err(not_found());
    }
    let recording = app.sessions.read(&id).await.map_err(|e| {
        warn!(error = %e, session = %id, "cannot read the recording");
        Failure(ApiError::new(
            ErrorCode::Unavailable,
            format!("the broker cannot read the recording of {id} just now"),
        ))
    })?;
    info!(target: "audit", event = "session.viewed.v1", session = %id, subject = %who.subject,
        owner = %session.subject, auditor);
    let (events, truncated) = match recording {
        Some(recording) => (recording.events, recording.truncated),
        None => (
            Vec::new(),
            Some("no recording is stored for this session".to_owned()),
        ),
    };
    Ok(Json(SessionDetail {
        session,
        events,
        truncated,
    }))
}
