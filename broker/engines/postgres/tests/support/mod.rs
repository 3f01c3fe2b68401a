//! Test harness: a throwaway PostgreSQL 15 cluster and a minimal PostgreSQL client that drives
//! `serve` over an in-memory stream.

#![allow(dead_code, clippy::unwrap_used)]

pub mod client;
pub mod cluster;

use sluice_engine_postgres::{Target, TargetTls};
use sluice_shared::Secret;
use std::time::Duration;

/// Runs a test body with a hang guard (not a timing threshold).
pub async fn within<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("test did not finish within 120s");
}

/// The cluster's application database as the broker's target, without TLS.
pub fn app_target(cluster: &cluster::Cluster) -> Target {
    Target {
        address: cluster.address(),
        database: cluster::DATABASE.to_owned(),
        user: "app".to_owned(),
        password: Secret::new(cluster::APP_PASSWORD.to_owned()),
        tls: TargetTls::Disable,
        settings: Vec::new(),
    }
}
