//! `GET /metrics`: the broker's state in the Prometheus text format, for a scraper that sends
//! the token configured under `metrics` (no `metrics` section: the endpoint answers 404).
//!
//! Counters are kept where things happen (tunnels opened and refused, SQL statements decided);
//! the rest is read when scraped (tunnels open, live grants and pending approvals, held
//! statements, the recorder's totals, the audit queue, and how long the store took to answer
//! that read). Labels are kinds, outcomes and states, never a name, a subject or a value.

use crate::api::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sluice_shared::Secret;
use sluice_shared::grants::GrantState;
use std::sync::Arc;

/// What `/metrics` needs: the recorder's handle and the token.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    token: Arc<Secret<String>>,
    audit: crate::audit::AuditDepth,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Installs the process's metrics recorder (once) and keeps what scraping needs.
    pub fn install(
        token: Secret<String>,
        audit: crate::audit::AuditDepth,
        node: &str,
    ) -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot start the metrics recorder: {e}"))?;
        metrics::gauge!("sluice_build_info", "version" => env!("CARGO_PKG_VERSION"), "node" => node.to_owned())
            .set(1.0);
        Ok(Self {
            handle,
            token: Arc::new(token),
            audit,
        })
    }
}

/// A tunnel the gate and the engine let through, by kind.
pub fn tunnel_opened(kind: &str) {
    metrics::counter!("sluice_tunnels_opened_total", "kind" => kind.to_owned()).increment(1);
}

/// A tunnel refused, by the API error code it got.
pub fn tunnel_refused(code: &str) {
    metrics::counter!("sluice_tunnels_refused_total", "code" => code.to_owned()).increment(1);
}

/// An SSH command, a Kubernetes request or an HTTP request decided, by kind and outcome.
pub fn decided(kind: &'static str, decision: &sluice_shared::recording::Decision) {
    use sluice_shared::recording::Decision;
    let outcome = match decision {
        Decision::Allowed => "allowed",
        Decision::Blocked { .. } => "blocked",
        Decision::Approved { .. } => "approved",
        Decision::Denied { .. } => "denied",
        Decision::Unknown => "unknown",
    };
    metrics::counter!("sluice_requests_decided_total", "kind" => kind, "decision" => outcome)
        .increment(1);
}

/// Values masked in answers, by kind (nothing to do for none).
pub fn masked(kind: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!("sluice_masked_values_total", "kind" => kind).increment(count);
    }
}

/// What one answer's masking masked (a Kubernetes or HTTP response, a log line), added to
/// `sluice_masked_values_total` when the answer is done with (the tally is dropped), whether it
/// was sent in full or abandoned halfway: what was masked was masked.
#[derive(Debug)]
pub struct MaskTally {
    kind: &'static str,
    counts: sluice_mask::MaskCounts,
}

impl MaskTally {
    /// An empty tally for an answer of a `kind` resource.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            counts: sluice_mask::MaskCounts::default(),
        }
    }
}

impl std::ops::Deref for MaskTally {
    type Target = sluice_mask::MaskCounts;

    fn deref(&self) -> &Self::Target {
        &self.counts
    }
}

impl std::ops::DerefMut for MaskTally {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.counts
    }
}

impl Drop for MaskTally {
    fn drop(&mut self) {
        masked(self.kind, self.counts.total());
    }
}

/// A SQL statement decided: allowed, blocked, approved or denied.
pub fn statement(decision: &'static str) {
    metrics::counter!("sluice_sql_statements_total", "decision" => decision).increment(1);
}

/// `GET /metrics`.
pub async fn scrape(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(metrics) = app.metrics.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off: add `metrics: {token: env:NAME}` to the broker's configuration\n",
        )
            .into_response();
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = metrics.token.expose().as_bytes();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), expected)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "send the metrics token as `Authorization: Bearer TOKEN`\n",
        )
            .into_response();
    }
    observe(&app, metrics).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.handle.render(),
    )
        .into_response()
}

/// Sets what is read at scrape time.
async fn observe(app: &AppState, metrics: &Metrics) {
    metrics::gauge!("sluice_tunnels_open").set(app.tunnels.open() as f64);
    metrics::gauge!("sluice_statements_held").set(app.holds.pending_count() as f64);
    let started = std::time::Instant::now();
    let live = app.grants.live().await;
    metrics::gauge!("sluice_store_read_seconds").set(started.elapsed().as_secs_f64());
    match live {
        Ok(grants) => {
            metrics::gauge!("sluice_store_up").set(1.0);
            let count = |state: GrantState| grants.iter().filter(|g| g.state == state).count();
            metrics::gauge!("sluice_grants", "state" => "pending")
                .set(count(GrantState::Pending) as f64);
            metrics::gauge!("sluice_grants", "state" => "active")
                .set(count(GrantState::Active) as f64);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the live grants from the store");
            metrics::gauge!("sluice_store_up").set(0.0);
        }
    }
    let totals = app.sessions.recorder_totals();
    metrics::counter!("sluice_recording_bytes_total").absolute(totals.bytes_written());
    metrics::counter!("sluice_recording_dropped_events_total").absolute(totals.events_dropped());
    metrics::gauge!("sluice_audit_queue_depth").set(metrics.audit.now() as f64);
}
