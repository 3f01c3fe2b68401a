//! Statements held for approval inside live sessions: filed by a session's guard, listed in
//! approvers' queues, decided by one approver (never the session's own subject), denied on
//! timeout, withdrawn when the client cancels the statement or goes away.
//!
//! Holds live in memory, with the session that waits for them: a held statement belongs to a
//! live session, and a broker restart ends every session anyway. With a store shared by several
//! brokers each hold is also written to the store (in order, by one task), so an approver on
//! any broker sees it and decides it there (a compare-and-set in the store); this broker hears
//! the decision (`Holds::refresh`, from the fan-out) and resumes the session.

use crate::gate::Identity;
use crate::tokens::now_secs;
use sluice_engine_postgres::hooks::{Approvals, Hold, HoldOutcome, HoldRequest};
use sluice_shared::grants::{HoldDecision, Requester, StatementHold};
use sluice_shared::{ApiError, ErrorCode};
use sluice_store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

/// How many ended holds are remembered, so a late decision learns why it is too late.
const ENDED_KEPT: usize = 256;

/// The broker's held statements.
#[derive(Debug)]
pub struct Holds {
    queue: Mutex<Queue>,
    changes: Arc<watch::Sender<u64>>,
    /// With a shared store: where holds are mirrored for the other brokers' approvers.
    shared: Option<Shared>,
}

/// The shared store and the queue of writes to it (one task writes them in order, so a hold's
/// end never reaches the store before the hold).
#[derive(Debug)]
struct Shared {
    store: Store,
    writes: mpsc::UnboundedSender<Write>,
}

/// A change of a local hold, for the shared store.
#[derive(Debug)]
enum Write {
    File(Box<StatementHold>),
    End {
        id: String,
        state: &'static str,
        by: Option<String>,
        reason: Option<String>,
    },
}

/// Held statements, and the last few that ended.
#[derive(Debug, Default)]
struct Queue {
    /// Waiting for a decision, by id.
    pending: HashMap<String, Pending>,
    /// Recently ended holds and how they ended ("it was withdrawn: ..."), oldest first, at most
    /// [`ENDED_KEPT`].
    ended: VecDeque<(StatementHold, String)>,
}

impl Queue {
    /// Takes `id` out of the queue, remembering how it ended.
    fn end(&mut self, id: &str, how: String) -> Option<Pending> {
        let entry = self.pending.remove(id)?;
        if self.ended.len() == ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back((entry.hold.clone(), how));
        Some(entry)
    }
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
    /// `mcp` when the session came through `sluice mcp` (an agent token).
    pub via: Option<String>,
}

impl Holds {
    /// An empty registry that bumps `changes` (the approval queue's version) on every change.
    pub fn new(changes: Arc<watch::Sender<u64>>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            changes,
            shared: None,
        })
    }

    /// Like [`Self::new`], and with a PostgreSQL store shared by several brokers, every hold
    /// is written there for the others' approvers.
    pub fn sharing(changes: Arc<watch::Sender<u64>>, store: Store) -> Arc<Self> {
        if store.dialect() != sluice_store::Dialect::Postgres {
            return Self::new(changes);
        }
        let (writes, mut queue) = mpsc::unbounded_channel();
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(write) = queue.recv().await {
                let written = match &write {
                    Write::File(hold) => writer.insert_hold(hold).await,
                    Write::End {
                        id,
                        state,
                        by,
                        reason,
                    } => writer
                        .end_hold(id, state, by.as_deref(), reason.as_deref(), now_secs())
                        .await
                        .map(|_| ()),
                };
                if let Err(e) = written {
                    warn!(error = %e, ?write, "cannot share a held action with the other brokers");
                }
            }
        });
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            changes,
            shared: Some(Shared { store, writes }),
        })
    }

    fn share(&self, write: Write) {
        if let Some(shared) = &self.shared {
            let _ = shared.writes.send(write);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
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
            kind: request.kind,
            sql: request.what,
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
        self.share(Write::File(Box::new(hold.clone())));
        self.lock()
            .pending
            .insert(id.clone(), Pending { hold, answer });
        self.bump();
        // Moved into the decision: when the session drops it undecided (its client went away,
        // access ended), the hold leaves every queue at once.
        let withdraw = WithdrawOnDrop {
            holds: Arc::clone(self),
            id: id.clone(),
        };
        let timeout = session.timeout;
        let decision = Box::pin(async move {
            let this = &withdraw.holds;
            let hold_id = &withdraw.id;
            let outcome = tokio::select! {
                outcome = decided => outcome.unwrap_or(HoldOutcome::Denied {
                    message: "the approval was withdrawn".into(),
                }),
                () = tokio::time::sleep(timeout) => {
                    let message = format!(
                        "nobody decided within {}",
                        humantime::format_duration(timeout)
                    );
                    if this.lock().end(hold_id, message.clone()).is_some() {
                        this.share(Write::End {
                            id: hold_id.clone(),
                            state: "ended",
                            by: None,
                            reason: Some(message.clone()),
                        });
                        this.bump();
                    }
                    info!(target: "audit", event = "statement.expired.v1", hold = %hold_id);
                    HoldOutcome::Denied { message }
                }
            };
            // Gone from every queue whatever happened (`decide` already took it out).
            drop(withdraw);
            outcome
        });
        Ok(Hold {
            id,
            approvers: session.approvers.join(" or "),
            decision,
        })
    }

    /// Withdraws held statement `id` because its client no longer waits for it (`why`: it
    /// cancelled the statement, disconnected, its session ended): it leaves every queue and
    /// can no longer be decided. False when it was not waiting (already decided or expired).
    pub fn withdraw(&self, id: &str, why: &str) -> bool {
        let Some(entry) = self
            .lock()
            .end(id, format!("it was withdrawn because {why}"))
        else {
            return false;
        };
        // Dropping `answer` tells a decision still being awaited.
        drop(entry.answer);
        self.share(Write::End {
            id: id.to_owned(),
            state: "ended",
            by: None,
            reason: Some(format!("it was withdrawn because {why}")),
        });
        self.bump();
        info!(target: "audit", event = "statement.withdrawn.v1", hold = %id,
            subject = %entry.hold.requester.subject, resource = %entry.hold.resource,
            grant = %entry.hold.grant, reason = %why);
        true
    }

    /// Held statements waiting for a decision, whoever may decide them.
    pub fn pending_count(&self) -> usize {
        let mut queue = self.lock();
        queue.pending.retain(|_, p| !p.answer.is_closed());
        queue.pending.len()
    }

    /// Held statements the caller may decide: they are in one of the approver groups and it is
    /// not their own session. Oldest first. Entries whose session is gone are dropped.
    pub fn pending_for(&self, who: &Identity) -> Vec<StatementHold> {
        let mut queue = self.lock();
        // A backstop: sessions withdraw their holds when they drop them.
        queue.pending.retain(|_, p| !p.answer.is_closed());
        let pending = &queue.pending;
        let mut list: Vec<StatementHold> = pending
            .values()
            .filter(|p| may_decide(&p.hold, who).is_ok())
            .map(|p| p.hold.clone())
            .collect();
        list.sort_by_key(|h| h.created_at);
        list
    }

    /// Held statements the caller may decide on every broker sharing the store (on one
    /// broker, [`Self::pending_for`]). Oldest first.
    pub async fn pending_for_all(&self, who: &Identity) -> Vec<StatementHold> {
        let mut list = self.pending_for(who);
        let Some(shared) = &self.shared else {
            return list;
        };
        let now = now_secs();
        let alive_since = now.saturating_sub(crate::fanout::SILENT_AFTER.as_secs());
        match shared.store.pending_holds(alive_since, now).await {
            Ok(stored) => {
                // This broker's own holds are in `list` already (from memory).
                let own = shared.store.node();
                list.extend(
                    stored
                        .into_iter()
                        .filter(|held| own != Some(held.node.as_str()))
                        .filter(|held| may_decide(&held.hold, who).is_ok())
                        .map(|held| held.hold),
                );
                list.sort_by_key(|h| h.created_at);
            }
            Err(e) => warn!(error = %e, "cannot read the other brokers' held actions"),
        }
        list
    }

    /// One approver's decision; the session runs or refuses the statement at once. A hold of
    /// a session on another broker sharing the store is decided in the store, and that broker
    /// resumes its session when it hears of it.
    pub async fn decide(
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
        let local = self.lock().pending.contains_key(id);
        if !local && let Some(shared) = &self.shared {
            let stored = shared.store.hold(id).await.map_err(|e| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!("cannot read statement {id}: {e}"),
                )
            })?;
            if let Some(stored) = stored
                && shared.store.node() != Some(stored.node.as_str())
            {
                return decide_remote(&shared.store, who, &stored, approve, reason).await;
            }
        }
        self.decide_local(who, id, approve, reason)
    }

    fn decide_local(
        &self,
        who: &Identity,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<HoldDecision, ApiError> {
        let mut queue = self.lock();
        let Some(entry) = queue.pending.get(id) else {
            // Say how it ended, to those who could have decided it.
            let ended = queue.ended.iter().rev().find(|(hold, _)| hold.id == id);
            let how = match ended {
                Some((hold, how)) => {
                    may_decide(hold, who)
                        .map_err(|why| ApiError::new(ErrorCode::Forbidden, why))?;
                    how.as_str()
                }
                None => "it was decided, timed out, or its session ended",
            };
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("statement {id} is no longer waiting: {how}"),
            ));
        };
        may_decide(&entry.hold, who).map_err(|why| ApiError::new(ErrorCode::Forbidden, why))?;
        let verdict = if approve { "approved" } else { "denied" };
        let Some(entry) = queue.end(id, format!("it was {verdict} by {}", who.subject)) else {
            return Err(ApiError::new(ErrorCode::Conflict, "already decided"));
        };
        drop(queue);
        let outcome = outcome_of(approve, &who.subject, reason.as_deref());
        let delivered = entry.answer.send(outcome).is_ok();
        self.share(Write::End {
            id: id.to_owned(),
            state: verdict,
            by: Some(who.subject.clone()),
            reason: reason.clone(),
        });
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

    /// Applies what another broker did to held statement `id` (filed it, or an approver there
    /// decided one of this broker's): the waiting session here resumes, and approval watchers
    /// wake whatever it was.
    pub async fn refresh(&self, id: &str) {
        self.reread(id).await;
        self.bump();
    }

    /// Reads again every statement held here (a notification may have been lost); watchers
    /// wake only if one of them was decided elsewhere meanwhile.
    pub async fn recheck(&self) {
        let ids: Vec<String> = self.lock().pending.keys().cloned().collect();
        let mut decided = false;
        for id in ids {
            decided |= self.reread(&id).await;
        }
        if decided {
            self.bump();
        }
    }

    /// Reads a hold of this broker's back from the store and applies a decision made
    /// elsewhere; true when it did.
    async fn reread(&self, id: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        if !self.lock().pending.contains_key(id) {
            return false;
        }
        match shared.store.hold(id).await {
            Ok(Some(stored)) => self.apply_remote(&stored),
            Ok(None) => false,
            Err(e) => {
                warn!(hold = %id, error = %e, "cannot read a held action again");
                false
            }
        }
    }

    /// Resumes the session waiting for `stored` if an approver elsewhere decided it; true when
    /// it did.
    fn apply_remote(&self, stored: &sluice_store::StoredHold) -> bool {
        let approve = match stored.state.as_str() {
            "approved" => true,
            "denied" => false,
            _ => return false,
        };
        let by = stored.decided_by.clone().unwrap_or_default();
        let verdict = if approve { "approved" } else { "denied" };
        let Some(entry) = self
            .lock()
            .end(&stored.hold.id, format!("it was {verdict} by {by}"))
        else {
            return false;
        };
        let _ = entry
            .answer
            .send(outcome_of(approve, &by, stored.reason.as_deref()));
        true
    }
}

/// What the waiting session hears.
fn outcome_of(approve: bool, by: &str, reason: Option<&str>) -> HoldOutcome {
    if approve {
        HoldOutcome::Approved { by: by.to_owned() }
    } else {
        HoldOutcome::Denied {
            message: format!("denied by {by}: {}", reason.unwrap_or_default()),
        }
    }
}

/// Decides a statement held on another broker, in the store (the first decision wins).
async fn decide_remote(
    store: &Store,
    who: &Identity,
    stored: &sluice_store::StoredHold,
    approve: bool,
    reason: Option<String>,
) -> Result<HoldDecision, ApiError> {
    let id = &stored.hold.id;
    may_decide(&stored.hold, who).map_err(|why| ApiError::new(ErrorCode::Forbidden, why))?;
    let verdict = if approve { "approved" } else { "denied" };
    let changed = store
        .end_hold(
            id,
            verdict,
            Some(&who.subject),
            reason.as_deref(),
            now_secs(),
        )
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("cannot decide statement {id}: {e}"),
            )
        })?;
    if !changed {
        let how = match store.hold(id).await {
            Ok(Some(now)) => match (now.decided_by, now.reason) {
                (Some(by), _) => format!("it was {} by {by}", now.state),
                (None, Some(why)) => why,
                (None, None) => "it was decided, timed out, or its session ended".into(),
            },
            _ => "it was decided, timed out, or its session ended".into(),
        };
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("statement {id} is no longer waiting: {how}"),
        ));
    }
    info!(target: "audit",
        event = if approve { "statement.approved.v1" } else { "statement.denied.v1" },
        hold = %id, approver = %who.subject, subject = %stored.hold.requester.subject,
        reason = reason.as_deref().unwrap_or(""), session_on = %stored.node);
    Ok(HoldDecision {
        id: id.clone(),
        approved: approve,
    })
}

/// Takes a hold out of the queues when its decision is dropped undecided; a no-op once it is
/// decided or expired.
#[derive(Debug)]
struct WithdrawOnDrop {
    holds: Arc<Holds>,
    id: String,
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        self.holds.withdraw(&self.id, "its session ended");
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

impl SessionApprovals {
    /// The approvals of one tunnel's session: the gate's identity asks, on the grant's resource
    /// and role, decided by `approvers` (or refused when there are none) within `timeout`.
    pub fn for_tunnel(
        holds: &Arc<Holds>,
        authz: &crate::gate::Authorized,
        approvers: Vec<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            holds: Arc::clone(holds),
            session: Session {
                requester: authz.identity().requester(),
                resource: authz.resource().name.clone(),
                role: authz.role().to_owned(),
                grant: authz.grant_id().to_owned(),
                approvers,
                timeout,
                via: authz.identity().via.clone(),
            },
        }
    }
}

impl Approvals for SessionApprovals {
    fn request(&self, hold: HoldRequest) -> Result<Hold, String> {
        self.holds.file(&self.session, hold)
    }

    fn withdraw(&self, id: &str, why: &str) -> bool {
        self.holds.withdraw(id, why)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn identity(subject: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: subject.into(),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            auth_method: "oidc".into(),
            token_id: "t".into(),
            expires_at: u64::MAX,
            provider: None,
            ci: BTreeMap::new(),
            via: None,
            parent: None,
        }
    }

    fn session() -> Session {
        Session {
            requester: Requester {
                subject: "alice".into(),
                groups: vec!["eng".into()],
                auth_method: "oidc".into(),
                provider: None,
                ci: BTreeMap::new(),
            },
            resource: "pg".into(),
            role: "careful".into(),
            grant: "g_1".into(),
            approvers: vec!["dba".into()],
            timeout: Duration::from_secs(600),
            via: None,
        }
    }

    fn request() -> HoldRequest {
        HoldRequest {
            kind: "sql".into(),
            what: "delete from customers where id = 42".into(),
            rule: "deletes-need-a-dba".into(),
            reason: "deletes need a dba".into(),
        }
    }

    #[tokio::test]
    async fn a_withdrawn_hold_leaves_the_queue_and_cannot_be_decided() {
        let (changes, version) = watch::channel(0);
        let holds = Holds::new(Arc::new(changes));
        let bob = identity("bob", &["dba"]);
        let hold = holds.file(&session(), request()).unwrap();
        assert_eq!(holds.pending_for(&bob).len(), 1);
        let before = *version.borrow();

        assert!(holds.withdraw(&hold.id, "the client cancelled it"));
        assert!(holds.pending_for(&bob).is_empty());
        assert_ne!(*version.borrow(), before, "approvals --watch hears it");
        let err = holds.decide(&bob, &hold.id, true, None).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert!(err.message.contains("withdrawn"), "{}", err.message);
        assert!(err.message.contains("cancelled"), "{}", err.message);
        // Only those who could have decided it learn how it ended.
        let err = holds
            .decide(&identity("mallory", &["eng"]), &hold.id, true, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        // A second withdrawal finds nothing; the decision says it was withdrawn.
        assert!(!holds.withdraw(&hold.id, "again"));
        match hold.decision.await {
            HoldOutcome::Denied { message } => assert!(message.contains("withdrawn")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn dropping_an_undecided_decision_withdraws_at_once() {
        let (changes, _version) = watch::channel(0);
        let holds = Holds::new(Arc::new(changes));
        let bob = identity("bob", &["dba"]);
        let hold = holds.file(&session(), request()).unwrap();
        let id = hold.id.clone();
        drop(hold);
        assert!(holds.lock().pending.is_empty(), "gone before any listing");
        let err = holds.decide(&bob, &id, true, None).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert!(err.message.contains("session ended"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_decided_hold_is_not_withdrawn() {
        let (changes, _version) = watch::channel(0);
        let holds = Holds::new(Arc::new(changes));
        let bob = identity("bob", &["dba"]);
        let hold = holds.file(&session(), request()).unwrap();
        holds.decide(&bob, &hold.id, true, None).await.unwrap();
        assert!(!holds.withdraw(&hold.id, "the client cancelled it"));
        assert_eq!(
            hold.decision.await,
            HoldOutcome::Approved { by: "bob".into() }
        );
        let err = holds.decide(&bob, &hold.id, true, None).await.unwrap_err();
        assert!(err.message.contains("approved by bob"), "{}", err.message);
    }
}
