//! Statements held for approval inside live sessions: filed by a session's guard, listed in
//! approvers' queues, decided by one approver (never the session's own subject), denied on
//! timeout.
//!
//! Holds live in memory only: a held statement belongs to a live session, and a broker restart
//! ends every session anyway.

use crate::gate::Identity;
use crate::tokens::now_secs;
use sluice_engine_postgres::hooks::{Approvals, Hold, HoldOutcome, HoldRequest};
use sluice_shared::grants::{HoldDecision, Requester, StatementHold};
use sluice_shared::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::info;

/// The broker's held statements.
#[derive(Debug)]
pub struct Holds {
    pending: Mutex<HashMap<String, Pending>>,
    changes: Arc<watch::Sender<u64>>,
}

#[derive(Debug)]
struct Pending {
    hold: StatementHold,
    answer: oneshot::Sender<HoldOutcome>,
}

/// The session a guard files holds for.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session.
    pub requester: Requester,
    /// Its resource.
    pub resource: String,
    /// Its role.
    pub role: String,
    /// Its grant.
    pub grant: String,
    /// Who may decide its held statements.
    pub approvers: Vec<String>,
    /// How long a held statement waits before it is denied.
    pub timeout: Duration,
}

impl Holds {
    /// An empty registry that bumps `changes` (the approval queue's version) on every change.
    pub fn new(changes: Arc<watch::Sender<u64>>) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(HashMap::new()),
            changes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Files a held statement; the returned future resolves when someone decides or the
    /// timeout passes.
    pub fn file(self: &Arc<Self>, session: &Session, request: HoldRequest) -> Result<Hold, String> {
        if session.approvers.is_empty() {
            return Err(format!(
                "{}; nobody may approve statements for role {} (give the role an approval \
                 group), so it is refused",
                request.reason, session.role
            ));
        }
        let now = now_secs();
        let id = format!("s_{}", crate::tokens::random_id());
        let hold = StatementHold {
            id: id.clone(),
            requester: session.requester.clone(),
            resource: session.resource.clone(),
            role: session.role.clone(),
            grant: session.grant.clone(),
            sql: request.sql,
            rule: request.rule,
            reason: request.reason,
            approvers: session.approvers.clone(),
            created_at: now,
            expires_at: now + session.timeout.as_secs(),
        };
        info!(target: "audit", event = "statement.held.v1", hold = %id,
            subject = %hold.requester.subject, resource = %hold.resource, grant = %hold.grant,
            rule = %hold.rule);
        let (answer, decided) = oneshot::channel();
        self.lock().insert(id.clone(), Pending { hold, answer });
        self.bump();
        let this = Arc::clone(self);
        let timeout = session.timeout;
        let hold_id = id.clone();
        let decision = Box::pin(async move {
            let outcome = tokio::select! {
                outcome = decided => outcome.unwrap_or(HoldOutcome::Denied {
                    message: "the approval was withdrawn".into(),
                }),
                () = tokio::time::sleep(timeout) => {
                    info!(target: "audit", event = "statement.expired.v1", hold = %hold_id);
                    HoldOutcome::Denied {
                        message: format!(
                            "nobody decided within {}",
                            humantime::format_duration(timeout)
                        ),
                    }
                }
            };
            // Gone from every queue whatever happened. (When the session ends first, this
            // future is dropped and the entry goes at the next listing: its answer channel is
            // closed.)
            if this.lock().remove(&hold_id).is_some() {
                this.bump();
            }
            outcome
        });
        Ok(Hold {
            id,
            approvers: session.approvers.join(" or "),
            decision,
        })
    }

    /// Held statements the caller may decide: they are in one of the approver groups and it is
    /// not their own session. Oldest first. Entries whose session is gone are dropped.
    pub fn pending_for(&self, who: &Identity) -> Vec<StatementHold> {
        let mut pending = self.lock();
        pending.retain(|_, p| !p.answer.is_closed());
        let mut list: Vec<StatementHold> = pending
            .values()
            .filter(|p| may_decide(&p.hold, who).is_ok())
            .map(|p| p.hold.clone())
            .collect();
        list.sort_by_key(|h| h.created_at);
        list
    }

    /// One approver's decision; the session runs or refuses the statement at once.
    pub fn decide(
        &self,
        who: &Identity,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<HoldDecision, ApiError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if !approve && reason.is_none() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "a denial needs a reason for the person waiting: --reason TEXT",
            ));
        }
        let mut pending = self.lock();
        let Some(entry) = pending.get(id) else {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "statement {id} is no longer waiting: it was decided, timed out, or its \
                     session ended"
                ),
            ));
        };
        may_decide(&entry.hold, who).map_err(|why| ApiError::new(ErrorCode::Forbidden, why))?;
        let Some(entry) = pending.remove(id) else {
            return Err(ApiError::new(ErrorCode::Conflict, "already decided"));
        };
        drop(pending);
        let outcome = if approve {
            HoldOutcome::Approved {
                by: who.subject.clone(),
            }
        } else {
            HoldOutcome::Denied {
                message: format!(
                    "denied by {}: {}",
                    who.subject,
                    reason.as_deref().unwrap_or_default()
                ),
            }
        };
        let delivered = entry.answer.send(outcome).is_ok();
        self.bump();
        info!(target: "audit",
            event = if approve { "statement.approved.v1" } else { "statement.denied.v1" },
            hold = %id, approver = %who.subject, subject = %entry.hold.requester.subject,
            reason = reason.as_deref().unwrap_or(""));
        if !delivered {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("statement {id}'s session ended before the decision arrived"),
            ));
        }
        Ok(HoldDecision {
            id: id.to_string(),
            approved: approve,
        })
    }
}

/// Approvers are members of an approver group, never the session's own subject.
fn may_decide(hold: &StatementHold, who: &Identity) -> Result<(), String> {
    if hold.requester.subject == who.subject {
        return Err("you cannot approve a statement held in your own session".into());
    }
    if !hold.approvers.iter().any(|g| who.groups.contains(g)) {
        return Err(format!(
            "only members of {} may decide statement {}",
            hold.approvers.join(" or "),
            hold.id
        ));
    }
    Ok(())
}

/// The engine's view of one session's approvals.
#[derive(Debug)]
pub struct SessionApprovals {
    /// The registry.
    pub holds: Arc<Holds>,
    /// The session.
    pub session: Session,
}

impl Approvals for SessionApprovals {
    fn request(&self, hold: HoldRequest) -> Result<Hold, String> {
        self.holds.file(&self.session, hold)
    }
}
