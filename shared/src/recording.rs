//! The session recording format: a [`Header`] line, then one [`Event`] per line (JSON Lines).
//!
//! ```text
//! {"type":"header","v":1,"session":"ses_..","subject":"alice",...}
//! {"t":12,"n":1,"type":"statement","seq":1,"sql":"select 1","protocol":"simple","decision":{"outcome":"allowed"}}
//! {"t":14,"n":2,"type":"result","seq":1,"tag":"SELECT 1","rows":1,"duration_ms":2}
//! {"t":9001,"n":3,"type":"end","reason":"closed","bytes_up":120,"bytes_down":800,"statements":1}
//! ```
//!
//! # One envelope, one family per engine
//!
//! Every event line is an [`Event`]: the envelope (`t`, milliseconds since the session
//! started; `n`, the event's number in the session) with a [`Body`] flattened into it. The body
//! belongs to one family, and its `"type"` says which, because type names are unique across
//! families:
//!
//! | family | Rust type | `"type"` values | written by |
//! |---|---|---|---|
//! | session | [`SessionEvent`] | `note`, `end` (the start is the [`Header`] line) | every session |
//! | SQL | [`SqlEvent`] | `statement`, `result`, `error`, `rows` | the PostgreSQL engine |
//! | terminal | [`TerminalEvent`] | `output`, `input`, `resize` | the SSH engine |
//! | host | [`HostEvent`] | `exec`, `exit`, `file`, `forward` | the SSH engine |
//! | HTTP | [`HttpEvent`] | `http_request`, `http_response` | the HTTP/Kubernetes engine (later) |
//!
//! The JSON stays flat (`{"t":..,"type":"statement",...}`), exactly as version 1 recordings
//! were written before the families existed, so every recording ever written reads into these
//! types unchanged. A `"type"` this build does not know reads as [`Body::Unknown`], so a newer
//! broker can add event types without breaking older readers; `v` in the header changes only
//! when an existing field changes meaning or disappears.
//!
//! Values are recorded as the client received them, masked. Terminal data is bytes, not text
//! (a terminal stream may split a UTF-8 character or hold none at all); it is written as
//! base64 and converted to text, lossily, only where a text format demands it (asciicast v2).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The format version this build writes (and the only one there has been: every change so far
/// added event types or optional fields, which version 1 readers skip or ignore).
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a recording: who, what, where (with `"type":"header"`). It is the
/// session's start event, kept apart from [`Event`] because it has no `t`: it anchors it.
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
    /// `postgres`, `tcp` (later `ssh`, `http`); says which families to expect.
    pub kind: String,
    /// The grant's role.
    pub role: String,
    /// The grant.
    pub grant: String,
    /// The client's address.
    pub client: String,
}

/// The envelope: one thing that happened, `t` ms after the session started. The fields here
/// mean the same for every family; the [`Body`] is flattened into the same JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the session started.
    pub t: u64,
    /// The event's number in the session, from 1, taken when the event was recorded. Numbers
    /// are never reused, so a gap means events were recorded but not written (a `note` says
    /// how many were dropped). Two pumps recording at the same instant may write their lines
    /// in either order; `n` tells which was recorded first. `None` for events of recordings
    /// written before events were numbered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// What happened: an event of one family. Serialized as that family's internally tagged
/// object (`"type"` plus the event's fields); see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// About the session or its recording, whatever the engine.
    Session(SessionEvent),
    /// A SQL session (PostgreSQL engine).
    Sql(SqlEvent),
    /// A terminal session (SSH engine).
    Terminal(TerminalEvent),
    /// HTTP requests (HTTP and Kubernetes engines).
    Http(HttpEvent),
    /// Commands, file operations and forwards on a host (SSH engine).
    Host(HostEvent),
    /// An event type this build does not know (written by a newer broker). Readers skip it;
    /// written back, it is `{"type":"unknown"}`.
    Unknown,
}

impl From<SessionEvent> for Body {
    fn from(event: SessionEvent) -> Self {
        Self::Session(event)
    }
}

impl From<SqlEvent> for Body {
    fn from(event: SqlEvent) -> Self {
        Self::Sql(event)
    }
}

impl From<TerminalEvent> for Body {
    fn from(event: TerminalEvent) -> Self {
        Self::Terminal(event)
    }
}

impl From<HostEvent> for Body {
    fn from(event: HostEvent) -> Self {
        Self::Host(event)
    }
}

impl From<HttpEvent> for Body {
    fn from(event: HttpEvent) -> Self {
        Self::Http(event)
    }
}

/// Session-level events, written for every kind of session. The session's start is the
/// [`Header`] line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// Something about the recording itself ("3 events dropped").
    Note {
        /// What.
        message: String,
    },
    /// The broker's login to the target: as which user, and whether that user is a superuser
    /// (then the guardrails alone limit what the session can do).
    Login {
        /// The target user the broker logged in as.
        user: String,
        /// The server said `is_superuser = on`.
        superuser: bool,
    },
    /// The session ended: the last event of a session that ended normally.
    End {
        /// `closed`, `revoked: ...`, `error: ...`.
        reason: String,
        /// Bytes from the client.
        bytes_up: u64,
        /// Bytes to the client.
        bytes_down: u64,
        /// SQL texts sent; 0 for sessions that are not SQL. Always written: readers of the
        /// first version of the format require it.
        statements: u64,
    },
}

impl SessionEvent {
    /// The `"type"` values of this family.
    const TYPES: &'static [&'static str] = &["note", "login", "end"];
}

/// What a SQL client sent and what it got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SqlEvent {
    /// A SQL text the client sent, and what the broker decided.
    Statement {
        /// Numbered from 1 in the session; the answers below name it.
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
}

impl SqlEvent {
    /// The `"type"` values of this family.
    const TYPES: &'static [&'static str] = &["statement", "result", "error", "rows"];
}

/// A terminal's byte streams, shaped like asciicast v2's event stream so that a recording
/// converts to a `.cast` file line by line. Reserved for the SSH engine: nothing emits these
/// yet. Data is the bytes as the client's terminal received or sent them, written as base64
/// because a chunk of terminal output need not be valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalEvent {
    /// Bytes the target sent to the client's terminal (asciicast `"o"`).
    Output {
        /// The bytes, base64 in JSON.
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// Bytes the client typed (asciicast `"i"`). Off by default when the SSH engine arrives:
    /// keystrokes include passwords typed at prompts, so recording them is a role's choice.
    Input {
        /// The bytes, base64 in JSON.
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// The client's terminal size, at the start and after every change (asciicast `"r"`).
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
}

impl TerminalEvent {
    /// The `"type"` values of this family.
    const TYPES: &'static [&'static str] = &["output", "input", "resize"];
}

/// What an SSH session did on its host besides the terminal: exec commands and how they were
/// decided, exit statuses, file operations (SFTP, `scp`, `rsync`, `git`) and local forwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostEvent {
    /// An exec command (`ssh host CMD`) and what the broker decided.
    Exec {
        /// The command line as the client sent it.
        command: String,
        /// The decision (`allowed` also for a file transfer, judged by its `file` event).
        decision: Decision,
    },
    /// The exit status the host reported for a command or shell.
    Exit {
        /// The status.
        status: u32,
    },
    /// A file operation, as the host resolved its path.
    File {
        /// `read`, `write`, `list`, `stat`, `remove`, `rename`, `mkdir`, `rmdir`, `setstat`,
        /// `symlink`, `hardlink`, `scp-upload`, `rsync-download`, `git-upload`, ...
        op: String,
        /// The path.
        path: String,
        /// The second path of a rename or link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Bytes read or written (files and transfers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// `done`, `failed: <code>`, or `refused by <rule>: <reason>`.
        outcome: String,
    },
    /// A local forward (`ssh -L`) the client opened.
    Forward {
        /// `host:port`, from the SSH host.
        to: String,
        /// Whether the role allows it.
        allowed: bool,
    },
}

impl HostEvent {
    /// The `"type"` values of this family.
    const TYPES: &'static [&'static str] = &["exec", "exit", "file", "forward"];
}

/// HTTP requests through the broker and their responses, for the HTTP and Kubernetes engines.
/// Reserved: nothing emits these yet. `seq` pairs a response with its request, as it pairs SQL
/// answers with their statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HttpEvent {
    /// A request the client sent, and what the broker decided.
    HttpRequest {
        /// Numbered from 1 in the session.
        seq: u64,
        /// `GET`, `POST`, ...
        method: String,
        /// The path, without the query.
        path: String,
        /// The query string without its `?` (masked by the role's detectors); empty when there
        /// was none.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        query: String,
        /// The decision; a refused request has no response event.
        decision: Decision,
    },
    /// The response the client received.
    HttpResponse {
        /// The request it answers.
        seq: u64,
        /// The HTTP status code.
        status: u16,
        /// Bytes of the response body the client received.
        bytes: u64,
        /// Since the request.
        duration_ms: u64,
        /// The start of the body as the client received it (masked as sent), for responses
        /// that are not streams; at most [`HTTP_BODY_CAP`] bytes, as text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Whether the body went on past what `body` keeps.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        body_truncated: bool,
    },
}

/// The most of a response body a recording keeps.
pub const HTTP_BODY_CAP: usize = 64 * 1024;

impl HttpEvent {
    /// The `"type"` values of this family.
    const TYPES: &'static [&'static str] = &["http_request", "http_response"];
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// `{"type":"unknown"}`.
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Placeholder {
            Unknown,
        }
        match self {
            Self::Session(event) => event.serialize(serializer),
            Self::Sql(event) => event.serialize(serializer),
            Self::Terminal(event) => event.serialize(serializer),
            Self::Http(event) => event.serialize(serializer),
            Self::Host(event) => event.serialize(serializer),
            Self::Unknown => Placeholder::Unknown.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    /// Reads the `"type"` first and hands the object to the family that owns it; a type no
    /// family owns is [`Body::Unknown`]. A known type with missing or malformed fields is an
    /// error, not `Unknown`: that line is damaged, not from the future.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = serde_json::Value::deserialize(deserializer)?;
        let kind = match object.get("type") {
            Some(serde_json::Value::String(kind)) => kind.as_str(),
            Some(_) => return Err(D::Error::custom("`type` is not a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        let body = if SqlEvent::TYPES.contains(&kind) {
            serde_json::from_value(object).map(Self::Sql)
        } else if SessionEvent::TYPES.contains(&kind) {
            serde_json::from_value(object).map(Self::Session)
        } else if TerminalEvent::TYPES.contains(&kind) {
            serde_json::from_value(object).map(Self::Terminal)
        } else if HttpEvent::TYPES.contains(&kind) {
            serde_json::from_value(object).map(Self::Http)
        } else if HostEvent::TYPES.contains(&kind) {
            serde_json::from_value(object).map(Self::Host)
        } else {
            return Ok(Self::Unknown);
        };
        body.map_err(D::Error::custom)
    }
}

/// How a statement or an HTTP request was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// Sent to the target.
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
    /// An outcome this build does not know (written by a newer broker).
    #[serde(other)]
    Unknown,
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
            Self::Unknown => "decided in a way this build does not know".into(),
        }
    }
}

/// Terminal events as [asciicast v2] event lines (`[seconds, "o", "text"]`), for a `.cast`
/// file whose header the caller writes. Output becomes `"o"`, input `"i"`, resize `"r"`
/// (`"COLSxROWS"`); other events have no asciicast form and are left out.
///
/// asciicast holds text, so this is the one place terminal bytes become text: each chunk is
/// decoded as UTF-8 with invalid sequences replaced by U+FFFD (a character split between two
/// chunks shows as replacement characters).
///
/// [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/
pub fn asciicast_event(event: &Event) -> Option<String> {
    let Body::Terminal(terminal) = &event.body else {
        return None;
    };
    let (code, data) = match terminal {
        TerminalEvent::Output { data } => ("o", String::from_utf8_lossy(data).into_owned()),
        TerminalEvent::Input { data } => ("i", String::from_utf8_lossy(data).into_owned()),
        TerminalEvent::Resize { cols, rows } => ("r", format!("{cols}x{rows}")),
    };
    let seconds = serde_json::Number::from_f64(event.t as f64 / 1000.0)
        .map_or(serde_json::Value::from(0), serde_json::Value::Number);
    serde_json::to_string(&(seconds, code, data)).ok()
}

/// Serde for terminal data: bytes as standard base64 text.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
