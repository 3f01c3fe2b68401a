//! Recorded sessions as the API lists and shows them: `GET /v1/sessions` and
//! `GET /v1/sessions/{id}`.
//!
//! Everyone sees their own sessions; auditors (`policy.auditors`) see everyone's. A session the
//! caller may not see is answered exactly like one that does not exist, so ids cannot be probed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::recording::Event;

/// `GET` lists sessions (`?resource=&user=&since=&limit=`); `GET {SESSIONS_PATH}/{id}` shows one
/// with its recorded events.
pub const SESSIONS_PATH: &str = "/v1/sessions";

/// Listings return at most this many sessions, newest first.
pub const MAX_LIST: u32 = 1000;

/// One session through the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session id (`ses_...`).
    pub id: String,
    /// Who: the subject of the session token.
    pub subject: String,
    /// How they logged in: `oidc`, `workload` or `operator`.
    pub auth_method: String,
    /// CI claims of a workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, String>,
    /// The resource.
    pub resource: String,
    /// `postgres` or `tcp`.
    pub kind: String,
    /// The role of the grant.
    pub role: String,
    /// The grant the tunnel rode on.
    pub grant: String,
    /// The client's address as the CLI reported it.
    pub client: String,
    /// Start, seconds since the Unix epoch.
    pub started_at: u64,
    /// End, seconds since the Unix epoch; `None` while running, or when the broker stopped
    /// before it could write the end.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// Bytes from the client to the target.
    #[serde(default)]
    pub bytes_up: u64,
    /// Bytes from the target to the client.
    #[serde(default)]
    pub bytes_down: u64,
    /// SQL texts the client sent (PostgreSQL).
    #[serde(default)]
    pub statements: u64,
    /// How it ended (`closed`, `revoked: ...`, `error: ...`), once it has.
    #[serde(default)]
    pub end: Option<String>,
    /// `recorded`, `failed: why` (best-effort roles), or `none`.
    pub recording: String,
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionInfo>,
}

/// `GET /v1/sessions/{id}`: the session and its recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// The session.
    pub session: SessionInfo,
    /// Recorded events in order.
    pub events: Vec<Event>,
    /// Why the recording stops early, when it does (the broker was killed mid-write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}
