//! The generic approval hold every engine uses: a held statement, exec command or HTTP request
//! is one [`HoldRequest`] (what, rendered for approvers; which rule; why) through one
//! [`Approvals`] service, answered by one [`HoldOutcome`]. The client's cancel or disconnect
//! withdraws it.

use std::future::Future;
use std::pin::Pin;

/// An action held for approval, as the approver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// What kind of action: `sql` (a statement), later `exec`, `http`.
    pub kind: String,
    /// The action exactly as the client sent it (the SQL text, the command line, the request
    /// line), for the approver.
    pub what: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// How a hold ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Run it; `by` approved.
    Approved {
        /// Who approved.
        by: String,
    },
    /// Do not run it; the client gets `message` as an ERROR.
    Denied {
        /// Who denied (or "timeout") and why, for the client.
        message: String,
    },
}

/// A pending hold: its id (told to the waiting client) and the decision to come.
pub struct Hold {
    /// The approval request id (`sluice approve ID`).
    pub id: String,
    /// Who may decide, for the client's notice (e.g. "dba-leads").
    pub approvers: String,
    /// Resolves when someone decides or the hold times out.
    pub decision: Pin<Box<dyn Future<Output = HoldOutcome> + Send>>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("id", &self.id)
            .field("approvers", &self.approvers)
            .finish_non_exhaustive()
    }
}

/// Asks people to approve held statements.
pub trait Approvals: Send + Sync {
    /// Files the request. An `Err` (the approval service is unavailable) refuses the statement
    /// with that message: fail closed.
    fn request(&self, hold: HoldRequest) -> Result<Hold, String>;

    /// Withdraws request `id` because its client no longer waits (`why`: it cancelled the
    /// statement or went away): approvers stop seeing it and can no longer decide it. Returns
    /// false when it was already decided; its [`Hold::decision`] then resolves at once.
    /// Dropping the decision unresolved must withdraw it too; this only says why, first.
    fn withdraw(&self, _id: &str, _why: &str) -> bool {
        true
    }
}
