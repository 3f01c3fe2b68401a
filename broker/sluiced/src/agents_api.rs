//! The API `sluice mcp` uses beyond a person's: an agent token of its own, the audit record of
//! each tool call, and which columns a grant's masking rewrites (for the `describe` tool).
//!
//! An agent token is a session token with the caller's identity and expiry, `via: mcp`, and
//! the caller's token as its parent: logging that one out refuses the agent token too. It
//! cannot be derived again from an agent token.

use crate::api::{AppState, Failure};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use sluice_shared::api::{
    AgentTokenRequest, ExchangeResponse, MAX_MASKED_COLUMNS, MaskedColumns, MaskedColumnsRequest,
    ToolCallReport,
};
use sluice_shared::{ApiError, ErrorCode};
use std::time::Duration;

/// What `via` says on an agent token.
pub const VIA_MCP: &str = "mcp";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/agent", post(agent_token))
        .route("/v1/agents/tool-calls", post(tool_call))
        .route("/v1/grants/{id}/masked-columns", post(masked_columns))
}

/// Printable, at most `max` characters: what a client names itself goes into audit records.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn bad_body(e: axum::extract::rejection::JsonRejection, expected: &str) -> Failure {
    Failure::from(ApiError::new(
        ErrorCode::BadRequest,
        format!("expected {expected}: {e}"),
    ))
}

async fn agent_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AgentTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ExchangeResponse>, Failure> {
    let Json(request) = body.map_err(|e| bad_body(e, "{\"client\": \"NAME VERSION\"}"))?;
    let identity = app.gate.identify(&headers)?;
    if identity.via.is_some() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "an agent token cannot be exchanged for another; present your own session token",
        )
        .into());
    }
    let now = crate::tokens::now_secs();
    let left = identity.expires_at.saturating_sub(now).max(1);
    let provenance = crate::tokens::Provenance {
        idp: identity.provider.clone(),
        ci: identity.ci.clone(),
        not_after: Some(identity.expires_at),
        via: Some(VIA_MCP.to_owned()),
        parent: Some(identity.token_id.clone()),
    };
    let (token, claims) = app
        .gate
        .tokens()
        .issue_with(
            &identity.subject,
            &identity.groups,
            &identity.auth_method,
            Duration::from_secs(left),
            provenance,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot sign an agent token");
            ApiError::new(ErrorCode::Internal, "the broker could not sign a token")
        })?;
    tracing::info!(target: "audit", event = "auth.agent_token.v1", subject = %identity.subject,
        token_id = %claims.jti, parent = %identity.token_id,
        client = %printable(&request.client, 80));
    Ok(Json(ExchangeResponse {
        token,
        subject: claims.sub,
        groups: claims.groups,
        auth_method: claims.amr,
        expires_at: claims.exp,
    }))
}

async fn tool_call(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ToolCallReport>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, Failure> {
    let Json(report) = body.map_err(|e| bad_body(e, "{\"tool\", \"resource\", \"outcome\"}"))?;
    let identity = app.gate.identify(&headers)?;
    if identity.via.as_deref() != Some(VIA_MCP) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only an MCP server's agent token reports tool calls",
        )
        .into());
    }
    tracing::info!(target: "audit", event = "mcp.tool_called.v1", subject = %identity.subject,
        token_id = %identity.token_id, tool = %printable(&report.tool, 64),
        resource = %printable(report.resource.as_deref().unwrap_or("-"), 128),
        outcome = %printable(&report.outcome, 32));
    Ok(Json(serde_json::json!({})))
}

async fn masked_columns(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MaskedColumnsRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MaskedColumns>, Failure> {
    let Json(request) =
        body.map_err(|e| bad_body(e, "{\"columns\": [{\"schema\", \"table\", \"column\"}]}"))?;
    if request.columns.len() > MAX_MASKED_COLUMNS {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("ask about at most {MAX_MASKED_COLUMNS} columns at a time"),
        )
        .into());
    }
    let identity = app.gate.identify(&headers)?;
    let plan = app.gate.grant_plan(&identity, &id).await?;
    let Some(masking) = plan.sql.masking() else {
        return Ok(Json(MaskedColumns {
            rules: vec![None; request.columns.len()],
            detectors: Vec::new(),
        }));
    };
    let tables: Vec<String> = request
        .columns
        .iter()
        .map(|c| format!("{}.{}", c.schema, c.table))
        .collect();
    let columns: Vec<sluice_mask::Column<'_>> = request
        .columns
        .iter()
        .zip(&tables)
        .map(|(c, table)| sluice_mask::Column {
            name: &c.column,
            table: Some(table),
            type_oid: 25,
            binary: false,
        })
        .collect();
    let row = masking.plan(&columns);
    Ok(Json(MaskedColumns {
        rules: (0..columns.len())
            .map(|i| row.column_rule(i).map(str::to_owned))
            .collect(),
        detectors: masking
            .detectors()
            .iter()
            .map(|d| d.detector.as_str().to_owned())
            .collect(),
    }))
}
