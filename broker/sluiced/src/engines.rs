//! What each protocol engine can enforce, by resource kind: the one table the configuration
//! check, the gate and (later) config reloads consult, so a role is never run by an engine that
//! would ignore its settings.

use sluice_config::{Config, ConfigError, Need};
use sluice_shared::api::ResourceKind;

/// Whether the engine serving `kind` enforces `need`.
///
/// PostgreSQL reads every statement and result value and records both; TCP is an opaque relay
/// that records only a session's start, end and byte counts.
pub fn enforces(kind: &ResourceKind, need: Need) -> bool {
    match kind {
        ResourceKind::Postgres => match need {
            Need::SqlGuardrails | Need::SqlMasking | Need::ContentRecording => true,
        },
        ResourceKind::Tcp | ResourceKind::Other(_) => false,
    }
}

/// Every place the configuration gives a role on a resource whose engine cannot enforce it.
pub fn check(config: &Config) -> Vec<ConfigError> {
    config.unenforceable(enforces)
}
