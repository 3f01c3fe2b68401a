//! The session recording format: a [`Header`] line, then one [`Event`] per line (JSON Lines).
//!
//! ```text
//! {"type":"header","v":1,"session":"ses_..","subject":"alice",...}
//! {"t":12,"type":"statement","seq":1,"sql":"select 1","protocol":"simple","decision":{"outcome":"allowed"}}
//! {"t":14,"type":"result","seq":1,"tag":"SELECT 1","rows":1,"duration_ms":2}
//! {"t":9001,"type":"end","reason":"closed","bytes_up":120,"bytes_down":800,"statements":1}
//! ```
//!
//! `t` is milliseconds since the session started. Values are recorded as the client received
//! them, masked. Terminal sessions (the SSH engine, later) add `output`/`input`/`resize`
//! events shaped like asciicast v2's `o`/`i`/`r`, so one replayer handles both. Readers skip
//! event types they do not know, so the format can grow without a version bump; `v` changes
//! only when an existing field changes meaning.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a recording: who, what, where (with `"type":"header"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "header")]
pub struct Header {
    /// Format version ([`FORMAT_VERSION`]).
    pub v: u32,
    /// Session id.
    pub session: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Who.
    pub subject: String,
    /// How they logged in: `oidc`, `workload`, `operator`.
    pub auth: String,
    /// CI claims of a workload.
    #[serde(default)]
    pub ci: BTreeMap<String, String>,
    /// The resource.
    pub resource: String,
    /// `postgres`, `tcp` (later `ssh`).
    pub kind: String,
    /// The grant's role.
    pub role: String,
    /// The grant.
    pub grant: String,
    /// The client's address.
    pub client: String,
}

/// One thing that happened, `t` ms after the session started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the session started.
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// A SQL text the client sent, and what the broker decided.
    Statement {
        /// Numbered from 1 in the session.
        seq: u64,
        /// The text (literals masked by the role's detectors).
        sql: String,
        /// `simple` or `extended`.
        protocol: String,
        /// The decision.
        decision: Decision,
    },
    /// A command the server completed.
    Result {
        /// The statement it answers.
        seq: u64,
        /// The command tag (`SELECT 3`, `UPDATE 1`).
        tag: String,
        /// Rows returned or affected, from the tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// Since the statement (or the previous result of the same text).
        duration_ms: u64,
    },
    /// An error the client received.
    Error {
        /// The statement it answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// SQLSTATE.
        code: String,
        /// The message (masked).
        message: String,
        /// Since the statement.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// Result rows as the client received them (masked), up to the role's `record_rows`.
    Rows {
        /// The statement they answer.
        seq: u64,
        /// Column names.
        columns: Vec<String>,
        /// Values as text; `None` is NULL.
        rows: Vec<Vec<Option<String>>>,
        /// More rows came than were kept.
        truncated: bool,
    },
    /// Terminal output (reserved for the SSH engine; asciicast v2 `o`).
    Output {
        /// The bytes, as UTF-8 text.
        data: String,
    },
    /// Terminal input (reserved; asciicast v2 `i`).
    Input {
        /// The bytes, as UTF-8 text.
        data: String,
    },
    /// Terminal size (reserved; asciicast v2 `r`).
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Something about the recording itself ("3 events dropped").
    Note {
        /// What.
        message: String,
    },
    /// The session ended.
    End {
        /// `closed`, `revoked: ...`, `error: ...`.
        reason: String,
        /// Bytes from the client.
        bytes_up: u64,
        /// Bytes to the client.
        bytes_down: u64,
        /// SQL texts sent.
        statements: u64,
    },
    /// An event type this build does not know (written by a newer broker).
    #[serde(other)]
    Unknown,
}

/// How a statement was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// Sent to the database.
    Allowed,
    /// Refused.
    Blocked {
        /// The rule.
        rule: String,
        /// What the client was told.
        message: String,
    },
    /// Held, approved, then sent.
    Approved {
        /// The rule that held it.
        rule: String,
        /// Who approved.
        by: String,
        /// The approval request.
        request: String,
    },
    /// Held and not approved.
    Denied {
        /// The rule that held it.
        rule: String,
        /// Why.
        reason: String,
        /// The approval request, when one was filed.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        request: String,
    },
}

impl Decision {
    /// One line for people: `allowed`, `blocked by no-ddl`, `approved by bob (s_1)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Allowed => "allowed".into(),
            Self::Blocked { rule, .. } => format!("blocked by {rule}"),
            Self::Approved { by, request, .. } => format!("approved by {by} ({request})"),
            Self::Denied {
                reason, request, ..
            } if request.is_empty() => {
                format!("denied: {reason}")
            }
            Self::Denied {
                reason, request, ..
            } => format!("denied ({request}): {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_unknown_types_are_skipped() {
        let event = Event {
            t: 12,
            body: Body::Statement {
                seq: 1,
                sql: "select 1".into(),
                protocol: "simple".into(),
                decision: Decision::Blocked {
                    rule: "no-ddl".into(),
                    message: "no".into(),
                },
            },
        };
        let line = serde_json::to_string(&event).unwrap_or_default();
        assert!(line.contains(r#""type":"statement""#), "{line}");
        assert!(line.contains(r#""outcome":"blocked""#), "{line}");
        let back: Event = serde_json::from_str(&line).unwrap_or(Event {
            t: 0,
            body: Body::Unknown,
        });
        assert_eq!(back, event);
        let future: Event =
            serde_json::from_str(r#"{"t":5,"type":"hologram","x":1}"#).unwrap_or(Event {
                t: 0,
                body: Body::Note {
                    message: "did not parse".into(),
                },
            });
        assert_eq!(future.body, Body::Unknown);
    }
}
