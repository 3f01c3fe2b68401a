//! Just-in-time grants and their approvals, as they cross the wire.
//!
//! ```text
//! POST /v1/grants                      GrantRequest -> GrantResponse      request a role on a resource
//! GET  /v1/grants?all=true             -> GrantList                       mine (all: ended ones too)
//! GET  /v1/grants/{id}?wait=25&state=pending&votes=N -> Grant            long-poll while it is pending with N votes
//! POST /v1/grants/{id}/revoke          Decision -> Grant                  end it now (owner or an approver)
//! POST /v1/grants/{id}/approve         Decision -> Grant                  one approver's yes
//! POST /v1/grants/{id}/deny            Decision -> Grant                  one approver's no (reason required)
//! GET  /v1/approvals?wait=25&version=V -> ApprovalQueue                   pending requests I may decide
//! POST /v1/holds/{id}/approve|deny     Decision -> HoldDecision           a statement held in a session
//! ```
//!
//! Long-polls (`wait`, seconds, at most [`MAX_WAIT_SECS`]) answer as soon as something changed
//! or when the wait runs out, whichever is first; clients simply ask again. A grant long-poll
//! holds while the grant still matches every part of what the client says it last saw:
//! `state` (its state) and `votes` (how many votes it had), so a requester waiting for approval
//! hears of each vote as it is cast. Both are optional (with neither it answers at once);
//! brokers older than `votes` ignore it and answer only on a state change. A broker restart
//! changes [`ApprovalQueue::version`], so a watcher that reconnects sees the queue at once.
//! Times are seconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Path of the grants collection.
pub const GRANTS_PATH: &str = "/v1/grants";
/// Path of the approval queue.
pub const APPROVALS_PATH: &str = "/v1/approvals";
/// The longest long-poll the broker honours; longer waits are cut to this.
pub const MAX_WAIT_SECS: u64 = 30;
/// Header a tunnel request names its grant in.
pub const GRANT_HEADER: &str = "sluice-grant";

/// Where a grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Waiting for approvers.
    Pending,
    /// Usable until `expires_at`.
    Active,
    /// An approver said no.
    Denied,
    /// Reached its end (or nobody decided before the approval timeout).
    Expired,
    /// Ended early by its owner, an approver or the operator.
    Revoked,
    /// A state this CLI does not know (a newer broker).
    #[serde(other)]
    Unknown,
}

impl GrantState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }

    /// True once nothing can change the grant any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Denied | Self::Expired | Self::Revoked)
    }
}

impl std::fmt::Display for GrantState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Resource name.
    pub resource: String,
    /// Role to request; absent means the policy's default role for the caller on the resource.
    #[serde(default)]
    pub role: Option<String>,
    /// Requested lifetime in seconds; absent means the role's default. Capped at the role's
    /// maximum.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Why access is needed; shown to approvers and kept in the audit trail.
    #[serde(default)]
    pub reason: String,
    /// Return my active (or still pending) grant for the same resource and role instead of
    /// asking again (what `sluice connect` does); `sluice grant request` and `sluice run` ask
    /// for a fresh one.
    #[serde(default)]
    pub reuse: bool,
}

/// Who asked, as approvers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// Subject (user or workload name).
    pub subject: String,
    /// Groups at the time of the request.
    pub groups: Vec<String>,
    /// `oidc` (a person), `workload` (CI, agents) or `operator`.
    pub auth_method: String,
    /// Identity provider or workload rule that vouched for them.
    #[serde(default)]
    pub provider: Option<String>,
    /// CI claims of a workload (repository, workflow, ref, ...).
    #[serde(default)]
    pub ci: BTreeMap<String, String>,
}

/// What approving a grant takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Groups whose members may decide.
    pub groups: Vec<String>,
    /// How many distinct approvers must say yes.
    pub count: u32,
    /// Whether the requester may be one of them.
    pub self_approve: bool,
    /// When an undecided request expires, seconds since the epoch.
    pub expires_at: u64,
}

/// One approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver.
    pub approver: String,
    /// `true` approve, `false` deny.
    pub approve: bool,
    /// Their reason (required to deny).
    #[serde(default)]
    pub reason: Option<String>,
    /// When, seconds since the epoch.
    pub at: u64,
}

/// A grant: a role on a resource for a time, and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grant id (`g_` + random).
    pub id: String,
    /// Current state.
    pub state: GrantState,
    /// Who asked.
    pub requester: Requester,
    /// Resource name.
    pub resource: String,
    /// Role granted.
    pub role: String,
    /// The policy rule that allowed the request.
    pub rule: String,
    /// Why access was asked for.
    pub reason: String,
    /// Lifetime once active, seconds (after any cap).
    pub ttl_secs: u64,
    /// What was asked for when the role's maximum cut it down.
    #[serde(default)]
    pub requested_ttl_secs: Option<u64>,
    /// Present when approval is (or was) needed.
    #[serde(default)]
    pub approval: Option<ApprovalRule>,
    /// Approvers' answers so far.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// When it was requested.
    pub created_at: u64,
    /// When it became active.
    #[serde(default)]
    pub activated_at: Option<u64>,
    /// When it ends (set once active).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// When it reached a final state.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// Who ended it (approver who denied, revoker, or `sluiced` for expiry).
    #[serde(default)]
    pub ended_by: Option<String>,
    /// Why it ended.
    #[serde(default)]
    pub end_reason: Option<String>,
}

/// `POST /v1/grants` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantResponse {
    /// The grant (active when policy granted it outright, pending when it waits for approvers).
    pub grant: Grant,
    /// True when an existing active grant for the same resource and role was returned instead
    /// of a new one.
    #[serde(default)]
    pub reused: bool,
}

/// `GET /v1/grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantList {
    /// Newest first.
    pub grants: Vec<Grant>,
}

/// Body of approve, deny and revoke.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Why; required to deny.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /v1/approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalQueue {
    /// Changes whenever any grant changes state or gets a vote; pass it back as `version` to
    /// wait for the next change. Random per broker start.
    pub version: u64,
    /// Pending grants the caller may decide and has not voted on, oldest first.
    pub pending: Vec<Grant>,
    /// Statements held inside live sessions that the caller may decide, oldest first.
    #[serde(default)]
    pub statements: Vec<StatementHold>,
}

/// Path prefix of held statements: `POST /v1/holds/{id}/approve|deny` with a [`Decision`].
pub const HOLDS_PATH: &str = "/v1/holds";

/// One statement held for approval inside a live session. Ids start with `s_` (grants with
/// `g_`), so `sluice approve ID` knows which to call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementHold {
    /// Hold id (`s_` + random).
    pub id: String,
    /// Whose session it is.
    pub requester: Requester,
    /// Resource of the session.
    pub resource: String,
    /// Role the session runs under.
    pub role: String,
    /// The grant the session rides on.
    pub grant: String,
    /// What kind of action is held: `sql` (absent from older brokers, which only held
    /// statements), later `exec` and `http`.
    #[serde(default = "sql_kind")]
    pub kind: String,
    /// The held action exactly as the client sent it: the SQL text for `sql` holds (the field
    /// keeps its name so older CLIs still read every hold).
    pub sql: String,
    /// The guardrail rule that asked for approval.
    pub rule: String,
    /// Why the rule holds it.
    pub reason: String,
    /// Groups whose members may decide.
    pub approvers: Vec<String>,
    /// When it was held.
    pub created_at: u64,
    /// When it is denied if nobody decides.
    pub expires_at: u64,
}

fn sql_kind() -> String {
    "sql".to_owned()
}

/// The answer to a decision on a held statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldDecision {
    /// Hold id.
    pub id: String,
    /// `true` approved (the statement runs now), `false` denied.
    pub approved: bool,
}
