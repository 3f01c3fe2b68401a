//! HTTP handlers for grants and approvals (`/v1/grants`, `/v1/approvals`); the rules live in
//! [`crate::grants`].

use crate::api::{AppState, Failure};
use crate::grants::Seen;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde::Deserialize;
use sluice_shared::grants::{
    APPROVALS_PATH, ApprovalQueue, Decision, GRANTS_PATH, Grant, GrantList, GrantRequest,
    GrantResponse, GrantState, HOLDS_PATH, HoldDecision, MAX_WAIT_SECS,
};
use sluice_shared::{ApiError, ErrorCode};
use std::time::Duration;

/// The grant and approval routes.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(GRANTS_PATH, post(request).get(list))
        .route(&format!("{GRANTS_PATH}/{{id}}"), get(show))
        .route(&format!("{GRANTS_PATH}/{{id}}/approve"), post(approve))
        .route(&format!("{GRANTS_PATH}/{{id}}/deny"), post(deny))
        .route(&format!("{GRANTS_PATH}/{{id}}/revoke"), post(revoke))
        .route(APPROVALS_PATH, get(approvals))
        .route(&format!("{HOLDS_PATH}/{{id}}/approve"), post(approve_hold))
        .route(&format!("{HOLDS_PATH}/{{id}}/deny"), post(deny_hold))
}

fn body<T>(body: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, Failure> {
    body.map(|Json(v)| v).map_err(|e| {
        Failure(ApiError::new(
            ErrorCode::BadRequest,
            format!("expected {shape}: {}", e.body_text()),
        ))
    })
}

fn wait_of(secs: Option<u64>) -> Duration {
    Duration::from_secs(secs.unwrap_or(0).min(MAX_WAIT_SECS))
}

async fn request(
    State(app): State<AppState>,
    headers: HeaderMap,
    req: Result<Json<GrantRequest>, JsonRejection>,
) -> Result<Json<GrantResponse>, Failure> {
    let who = app.gate.identify(&headers)?;
    let req = body(
        req,
        "{\"resource\": \"...\", \"role\": \"...\", \"ttl_secs\": N, \"reason\": \"...\"}",
    )?;
    Ok(Json(app.grants.request(&who, req).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<GrantList>, Failure> {
    let who = app.gate.identify(&headers)?;
    Ok(Json(GrantList {
        grants: app.grants.list(&who, q.all).await?,
    }))
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    /// Seconds to wait while the grant is still in `state` with `votes` votes.
    wait: Option<u64>,
    /// The state the caller last saw.
    state: Option<GrantState>,
    /// How many votes the caller last saw.
    votes: Option<usize>,
}

async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Json<Grant>, Failure> {
    let who = app.gate.identify(&headers)?;
    let seen = Seen {
        state: q.state,
        votes: q.votes,
    };
    Ok(Json(
        app.grants.wait(&who, &id, seen, wait_of(q.wait)).await?,
    ))
}

async fn approve(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<Grant>, Failure> {
    vote(app, headers, id, decision, true).await
}

async fn deny(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<Grant>, Failure> {
    vote(app, headers, id, decision, false).await
}

/// One approver's answer on a grant request.
async fn vote(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
    approve: bool,
) -> Result<Json<Grant>, Failure> {
    let who = app.gate.identify(&headers)?;
    let decision = body(decision, "{\"reason\": \"...\"}")?;
    Ok(Json(
        app.grants.vote(&who, &id, approve, decision.reason).await?,
    ))
}

async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<Grant>, Failure> {
    let who = app.gate.identify(&headers)?;
    let decision = body(decision, "{\"reason\": \"...\"}")?;
    Ok(Json(app.grants.revoke(&who, &id, decision.reason).await?))
}

#[derive(Debug, Deserialize)]
struct ApprovalsQuery {
    /// Seconds to wait for a change from `version`.
    wait: Option<u64>,
    /// The version the caller last saw.
    version: Option<u64>,
}

async fn approvals(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Json<ApprovalQueue>, Failure> {
    let who = app.gate.identify(&headers)?;
    let mut queue = app
        .grants
        .approvals(&who, q.version, wait_of(q.wait))
        .await?;
    queue.statements = app.holds.pending_for_all(&who).await;
    Ok(Json(queue))
}

async fn approve_hold(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<HoldDecision>, Failure> {
    decide_hold(app, headers, id, decision, true).await
}

async fn deny_hold(
    app: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<HoldDecision>, Failure> {
    decide_hold(app, headers, id, decision, false).await
}

/// One approver's answer on a statement held in a live session.
async fn decide_hold(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    decision: Result<Json<Decision>, JsonRejection>,
    approve: bool,
) -> Result<Json<HoldDecision>, Failure> {
    let who = app.gate.identify(&headers)?;
    let decision = body(decision, "{\"reason\": \"...\"}")?;
    Ok(Json(
        app.holds
            .decide(&who, &id, approve, decision.reason)
            .await?,
    ))
}
