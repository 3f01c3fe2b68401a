//! `GET /v1/audit`: the audit trail page by page, with its checkpoints and the key that signed
//! them, for auditors (`policy.auditors`) only. The chain lives in [`crate::audit`].

use crate::api::{AppState, Failure};
use crate::audit::Signer;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use sluice_config::Principal;
use sluice_shared::audit::{AUDIT_PATH, AuditPage, DEFAULT_PAGE, MAX_PAGE};
use sluice_shared::{ApiError, ErrorCode};
use sluice_store::{Store, StoreError};
use std::sync::Arc;
use tracing::{info, warn};

/// What the audit endpoint reads from.
#[derive(Debug)]
pub struct AuditAccess {
    /// The trail.
    store: Store,
    /// Who the auditors are.
    config: crate::live::LiveConfig,
    /// The checkpoint key, for its public half.
    signer: Arc<Signer>,
}

impl AuditAccess {
    /// Access to the trail in `store`, for the auditors of `config`.
    pub fn new(store: Store, config: crate::live::LiveConfig, signer: Arc<Signer>) -> Self {
        Self {
            store,
            config,
            signer,
        }
    }
}

/// The audit route.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(AUDIT_PATH, get(read))
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    /// The last seq the caller has; records after it.
    after: Option<u64>,
    /// Only records at or after this time, ms since the epoch.
    since: Option<u64>,
    /// Records per page (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    limit: Option<u32>,
}

async fn read(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, Failure> {
    let who = app.gate.identify(&headers)?;
    let access = &app.audit;
    let principal = Principal {
        subject: &who.subject,
        groups: &who.groups,
    };
    if !access.config.current().policy.auditors.includes(&principal) {
        info!(target: "audit", event = "audit.read.refused.v1", subject = %who.subject);
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "only auditors (policy.auditors) may read the audit trail, and {} (groups: {}) \
                 is not one",
                who.subject,
                if who.groups.is_empty() {
                    "none".to_string()
                } else {
                    who.groups.join(", ")
                }
            ),
        )
        .into());
    }
    let Query(query) = query.map_err(|e| {
        Failure(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "expected ?after=SEQ&since=UNIX_MS&limit=N (all optional, whole numbers): {}",
                e.body_text()
            ),
        ))
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let slice = access
        .store
        .audit_slice(query.after.unwrap_or(0), query.since, limit)
        .await
        .map_err(store_failure)?;
    info!(target: "audit", event = "audit.read.v1", subject = %who.subject);
    Ok(Json(AuditPage {
        records: slice.records,
        checkpoints: slice.checkpoints,
        public_key: access.signer.public_key().to_string(),
        key_id: access.signer.key_id().to_string(),
        head_seq: slice.head_seq,
    }))
}

/// A store failure as the API answers it: a row that cannot be read is tampering, a number
/// SQLite cannot hold is the caller's, anything else is the store being unavailable.
fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::CorruptAudit { .. } => Failure(ApiError::new(
            ErrorCode::Internal,
            format!(
                "{e}: the audit trail was changed outside the broker; compare it with an earlier \
                 `sluice audit export` or a backup of the store"
            ),
        )),
        // `after` or `since` beyond what SQLite stores.
        StoreError::Invalid { what } => Failure(ApiError::new(
            ErrorCode::BadRequest,
            format!("cannot read the audit trail from {what}"),
        )),
        e => {
            warn!(error = %e, "cannot read the audit trail from the store");
            Failure(ApiError::new(
                ErrorCode::Unavailable,
                "the broker cannot read its audit trail from the store just now; try again \
                 shortly",
            ))
        }
    }
}
