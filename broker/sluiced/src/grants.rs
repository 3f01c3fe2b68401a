//! The grant lifecycle: request, vote, revoke and expire, persisted in the store, with a live
//! lease per active grant that every tunnel riding on it derives from.
//!
//! ```text
//!            policy: auto ──────────────▶ active ──┬─ revoke ──▶ revoked
//! request ─┤                                ▲      └─ time ────▶ expired
//!            policy: approval ─▶ pending ───┤ quorum of yes
//!                                   ├─ a no ──────────────────▶ denied
//!                                   ├─ withdrawn ─────────────▶ revoked
//!                                   └─ nobody decides in time ▶ expired
//! ```
//!
//! Every transition is a compare-and-set in the store, so two approvers, or an approval racing
//! an expiry, resolve to exactly one outcome. Policy is asked once, at request time; the grant
//! keeps a snapshot of the approval rule it was requested under. Every transition is an audit
//! event (tracing target `audit`) and bumps a version number that long-polls wait on.

use crate::gate::Identity;
use crate::live::LiveConfig;
use crate::tokens::now_secs;
use sluice_config::{Approval, Decision, Principal, Tally};
use sluice_engine::{Lease, LeaseHandle};
use sluice_shared::grants::{
    ApprovalQueue, ApprovalRule, Grant, GrantRequest, GrantResponse, GrantState, Requester, Vote,
};
use sluice_shared::{ApiError, ErrorCode};
use sluice_store::{GrantFilter, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{info, warn};

/// Who ends grants whose time ran out, in `ended_by`.
const BROKER: &str = "sluiced";
/// The longest reason kept; longer ones are cut (they end up in listings and audit lines).
const MAX_REASON: usize = 500;
/// Why a request nobody decided ended.
const APPROVAL_TIMEOUT: &str = "nobody decided within the approval timeout";
/// How many grants a listing returns at most.
const LIST_LIMIT: u32 = 200;

/// The broker's grants: the store, the policy they are decided by, and the live leases.
#[derive(Debug)]
pub struct Grants {
    store: Store,
    config: LiveConfig,
    /// Lease of every active grant, by id; ending one closes every tunnel using it.
    leases: Mutex<HashMap<String, Arc<LeaseHandle>>>,
    /// The (grant, state) pairs whose end is scheduled here, so hearing of a grant again arms
    /// no second timer.
    scheduled: Mutex<std::collections::HashSet<(String, GrantState)>>,
    /// Bumped on every change; long-polls wait for it to move.
    changes: Arc<watch::Sender<u64>>,
    /// See [`Self::race_point`].
    #[cfg(test)]
    race: Mutex<Option<RacePause>>,
}

/// Tells the test the race point is reached, then waits for its go.
#[cfg(test)]
type RacePause = (
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
);

/// How the caller of a grant long-poll last saw the grant; the poll answers once the grant
/// differs in any part given. With neither part it answers at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// The state it was in (`state=`).
    pub state: Option<GrantState>,
    /// How many votes it had (`votes=`), so a requester hears of each vote, not only of the
    /// decision.
    pub votes: Option<usize>,
}

impl Seen {
    /// True while `grant` still matches everything the caller saw.
    fn unchanged(&self, grant: &Grant) -> bool {
        (self.state.is_some() || self.votes.is_some())
            && self.state.is_none_or(|state| state == grant.state)
            && self.votes.is_none_or(|votes| votes == grant.votes.len())
    }
}

/// What a tunnel needs from its grant: the lease to race and the moment it must end by.
#[derive(Debug)]
pub struct GrantLease {
    /// Ends when the grant is revoked or expires.
    pub lease: Lease,
    /// The grant's end, seconds since the epoch: the tunnel ends then even if no timer fires.
    pub expires_at: u64,
    /// The grant's role.
    pub role: String,
}

impl Grants {
    /// Loads the live grants from the store: ends what expired while the broker was down and
    /// schedules the end of the rest.
    pub async fn start(store: Store, config: LiveConfig) -> Result<Arc<Self>, StoreError> {
        let grants = Arc::new(Self {
            store,
            config,
            leases: Mutex::new(HashMap::new()),
            scheduled: Mutex::default(),
            // Random per start, so a watcher that reconnects after a restart sees a change.
            changes: Arc::new(watch::channel(rand::random::<u64>()).0),
            #[cfg(test)]
            race: Mutex::new(None),
        });
        for grant in grants.store.live().await? {
            grants.schedule(&grant);
        }
        Ok(grants)
    }

    /// The version channel: anything long-polls wait on (held statements too) bumps it.
    pub fn changes(&self) -> Arc<watch::Sender<u64>> {
        Arc::clone(&self.changes)
    }

    /// The current change version.
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Handles `POST /v1/grants`.
    pub async fn request(
        self: &Arc<Self>,
        who: &Identity,
        req: GrantRequest,
    ) -> Result<GrantResponse, ApiError> {
        let config = self.config.current();
        let Some(resource) = config.resource(&req.resource) else {
            return Err(ApiError::new(
                ErrorCode::ResourceUnknown,
                format!(
                    "this broker has no resource named '{}'; `sluice resources` lists them",
                    req.resource
                ),
            ));
        };
        let principal = Principal {
            subject: &who.subject,
            groups: &who.groups,
        };
        let ttl = req.ttl_secs.map(Duration::from_secs);
        let grantable = match config
            .policy
            .decide(&principal, resource, req.role.as_deref(), ttl)
        {
            Decision::Grant(grantable) => grantable,
            Decision::Refuse(refusal) => {
                info!(target: "audit", event = "grant.refused.v1", subject = %who.subject,
                    resource = %req.resource, role = req.role.as_deref().unwrap_or("(default)"),
                    reason = %refusal.message);
                return Err(ApiError::new(ErrorCode::Forbidden, refusal.message));
            }
        };
        let now = now_secs();
        if req.reuse
            && let Some(existing) = self
                .store
                .find_reusable(&who.subject, &resource.name, &grantable.role, now)
                .await
                .map_err(store_failure)?
        {
            return Ok(GrantResponse {
                grant: existing,
                reused: true,
            });
        }
        let reason = clean_reason(&req.reason);
        if grantable.approval.is_some() && reason.is_empty() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "role '{}' on '{}' needs approval: give approvers a reason with --reason",
                    grantable.role, resource.name
                ),
            ));
        }
        let ttl_secs = grantable.ttl.as_secs().max(1);
        let mut grant = Grant {
            id: format!("g_{}", crate::tokens::random_id()),
            state: GrantState::Pending,
            requester: Requester {
                subject: who.subject.clone(),
                groups: who.groups.clone(),
                auth_method: who.auth_method.clone(),
                provider: who.provider.clone(),
                ci: who.ci.clone(),
            },
            resource: resource.name.clone(),
            role: grantable.role.clone(),
            rule: grantable.rule.clone(),
            reason,
            ttl_secs,
            requested_ttl_secs: grantable.requested_ttl.map(|t| t.as_secs()),
            approval: grantable.approval.as_ref().map(|a| ApprovalRule {
                groups: a.groups.clone(),
                count: a.count,
                self_approve: a.self_approve,
                expires_at: now + a.timeout.as_secs(),
            }),
            votes: Vec::new(),
            created_at: now,
            activated_at: None,
            expires_at: None,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        };
        if grant.approval.is_none() {
            grant.state = GrantState::Active;
            grant.activated_at = Some(now);
            grant.expires_at = Some(now + ttl_secs);
        }
        self.store.insert(&grant).await.map_err(store_failure)?;
        info!(target: "audit", event = "grant.requested.v1", grant = %grant.id,
            subject = %who.subject, auth_method = %who.auth_method, resource = %grant.resource,
            role = %grant.role, rule = %grant.rule, ttl_secs, reason = %grant.reason,
            approval = grant.approval.is_some());
        if grant.state == GrantState::Active {
            info!(target: "audit", event = "grant.activated.v1", grant = %grant.id,
                subject = %who.subject, by = "policy", expires_at = grant.expires_at);
        }
        self.schedule(&grant);
        self.bump();
        Ok(GrantResponse {
            grant,
            reused: false,
        })
    }

    /// Every pending or active grant (for the metrics).
    pub async fn live(&self) -> Result<Vec<Grant>, StoreError> {
        self.store.live().await
    }

    /// A grant the caller may see: their own, or one they may decide.
    pub async fn get(&self, who: &Identity, id: &str) -> Result<Grant, ApiError> {
        let grant = self
            .store
            .get(id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| not_found(id))?;
        if grant.requester.subject == who.subject || self.may_see_as_approver(who, &grant) {
            Ok(grant)
        } else {
            Err(not_found(id))
        }
    }

    /// Like [`Self::get`], but waits up to `wait` while the grant still looks the way the
    /// caller last [`Seen`] it.
    pub async fn wait(
        &self,
        who: &Identity,
        id: &str,
        seen: Seen,
        wait: Duration,
    ) -> Result<Grant, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changes.subscribe();
        loop {
            // Marked seen before the read: a change landing between the read and the wait
            // below still wakes it.
            changes.borrow_and_update();
            let grant = self.get(who, id).await?;
            if !seen.unchanged(&grant) {
                return Ok(grant);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(grant),
            }
        }
    }

    /// The caller's grants, newest first: live ones, or all with `all`.
    pub async fn list(&self, who: &Identity, all: bool) -> Result<Vec<Grant>, ApiError> {
        let states = if all {
            Vec::new()
        } else {
            vec![GrantState::Pending, GrantState::Active]
        };
        self.store
            .list(&GrantFilter {
                subject: Some(who.subject.clone()),
                states,
                limit: LIST_LIMIT,
            })
            .await
            .map_err(store_failure)
    }

    /// Pending grants the caller may decide and has not voted on, once the version differs
    /// from `seen` (or `wait` ran out).
    pub async fn approvals(
        &self,
        who: &Identity,
        seen: Option<u64>,
        wait: Duration,
    ) -> Result<ApprovalQueue, ApiError> {
        if let Some(seen) = seen {
            let mut changes = self.changes.subscribe();
            let _ = tokio::time::timeout(wait, changes.wait_for(|v| *v != seen)).await;
        }
        let version = self.version();
        let mut pending = self
            .store
            .list(&GrantFilter {
                subject: None,
                states: vec![GrantState::Pending],
                limit: LIST_LIMIT,
            })
            .await
            .map_err(store_failure)?;
        pending.retain(|grant| {
            self.may_vote(who, grant).is_ok()
                && !grant.votes.iter().any(|v| v.approver == who.subject)
        });
        pending.reverse();
        Ok(ApprovalQueue {
            version,
            pending,
            statements: Vec::new(),
        })
    }

    /// One approver's yes or no.
    pub async fn vote(
        self: &Arc<Self>,
        who: &Identity,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Grant, ApiError> {
        let grant = self.get(who, id).await?;
        let reason = reason.map(|r| clean_reason(&r)).filter(|r| !r.is_empty());
        if !approve && reason.is_none() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "a denial needs a reason for the requester: --reason TEXT",
            ));
        }
        if grant.state != GrantState::Pending {
            return Err(already_decided(&grant));
        }
        if grant
            .approval
            .as_ref()
            .is_some_and(|rule| rule.expires_at <= now_secs())
        {
            // The timer may not have fired yet; the deadline is what counts.
            self.expire(id, GrantState::Pending, APPROVAL_TIMEOUT).await;
            return Err(self.lost_race(id).await);
        }
        self.may_vote(who, &grant)
            .map_err(|why| ApiError::new(ErrorCode::Forbidden, why))?;
        let vote = Vote {
            approver: who.subject.clone(),
            approve,
            reason: reason.clone(),
            at: now_secs(),
        };
        match self.store.add_vote(id, &vote).await {
            Ok(()) => {}
            Err(StoreError::AlreadyVoted) => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("you already voted on {id}"),
                ));
            }
            Err(StoreError::NotInState { .. }) => return Err(self.lost_race(id).await),
            Err(e) => return Err(store_failure(e)),
        }
        info!(target: "audit", event = if approve { "grant.approval.v1" } else { "grant.denial.v1" },
            grant = %id, approver = %who.subject, requester = %grant.requester.subject,
            reason = reason.as_deref().unwrap_or(""));
        self.bump();

        let refreshed = self
            .store
            .get(id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| not_found(id))?;
        let Some(rule) = &refreshed.approval else {
            return Ok(refreshed);
        };
        let votes: Vec<(String, bool)> = refreshed
            .votes
            .iter()
            .map(|v| (v.approver.clone(), v.approve))
            .collect();
        let now = now_secs();
        let result = match sluice_config::tally(&approval_of(rule), &votes) {
            Tally::Waiting { .. } => return Ok(refreshed),
            Tally::Approved => self.store.activate(id, now, now + refreshed.ttl_secs).await,
            Tally::Denied { by } => {
                let why = refreshed
                    .votes
                    .iter()
                    .find(|v| v.approver == by)
                    .and_then(|v| v.reason.clone())
                    .unwrap_or_default();
                self.store
                    .finish(
                        id,
                        &[GrantState::Pending],
                        GrantState::Denied,
                        now,
                        &by,
                        &why,
                    )
                    .await
            }
        };
        match result {
            Ok(grant) => {
                self.audit_end_or_activation(&grant);
                self.schedule(&grant);
                self.bump();
                Ok(grant)
            }
            Err(StoreError::NotInState { .. }) => Err(self.lost_race(id).await),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// Ends a pending or active grant now; its tunnels close.
    pub async fn revoke(
        &self,
        who: &Identity,
        id: &str,
        reason: Option<String>,
    ) -> Result<Grant, ApiError> {
        let grant = self.get(who, id).await?;
        let own = grant.requester.subject == who.subject;
        if !own && !self.may_see_as_approver(who, &grant) {
            return Err(not_found(id));
        }
        if grant.state.is_final() {
            return Err(already_decided(&grant));
        }
        let reason = reason
            .map(|r| clean_reason(&r))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "revoked".to_string());
        match self
            .store
            .finish(
                id,
                &[GrantState::Pending, GrantState::Active],
                GrantState::Revoked,
                now_secs(),
                &who.subject,
                &reason,
            )
            .await
        {
            Ok(grant) => {
                self.end_lease(&grant);
                self.audit_end_or_activation(&grant);
                self.bump();
                Ok(grant)
            }
            Err(StoreError::NotInState { .. }) => Err(self.lost_race(id).await),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// The lease for a tunnel on `resource` under grant `id`, if the caller owns an active,
    /// unexpired grant for that resource. Fails closed when the store is unavailable.
    pub async fn lease_for_tunnel(
        &self,
        who: &Identity,
        id: &str,
        resource: &str,
    ) -> Result<GrantLease, ApiError> {
        let grant = self
            .store
            .get(id)
            .await
            .map_err(store_failure)?
            .filter(|g| g.requester.subject == who.subject)
            .ok_or_else(|| not_found(id))?;
        let inactive = |why: String| ApiError::new(ErrorCode::GrantInactive, why);
        if grant.resource != resource {
            return Err(inactive(format!(
                "grant {id} is for '{}', not '{resource}'",
                grant.resource
            )));
        }
        let now = now_secs();
        match (grant.state, grant.expires_at) {
            (GrantState::Active, Some(expires_at)) if expires_at > now => {
                #[cfg(test)]
                self.race_point().await;
                let lease = self.lease_handle(&grant.id).lease();
                // A revoke between the read above and the handle would have ended no handle,
                // leaving this tunnel on a revoked grant until `expires_at`. Read again now that
                // the handle exists: a revoke before this read is seen here, one after it ends
                // the handle.
                match self.store.get(id).await.map_err(store_failure)? {
                    Some(current) if current.state == GrantState::Active => {}
                    Some(ended) => {
                        self.end_lease(&ended);
                        return Err(inactive(describe_end(&ended)));
                    }
                    None => return Err(not_found(id)),
                }
                Ok(GrantLease {
                    lease,
                    expires_at,
                    role: grant.role,
                })
            }
            (GrantState::Pending, _) => Err(inactive(format!(
                "grant {id} is still waiting for approval"
            ))),
            (GrantState::Active, _) => Err(inactive(format!(
                "grant {id} was expired: the grant's time ran out"
            ))),
            _ => Err(inactive(describe_end(&grant))),
        }
    }

    /// Test seam: pauses [`Self::lease_for_tunnel`] between its read and the lease, where a
    /// revoke could slip in, while a test holds the pause.
    #[cfg(test)]
    async fn race_point(&self) {
        let pause = self.race.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((reached, go)) = pause {
            let _ = reached.send(());
            let _ = go.await;
        }
    }

    /// The refusal when a compare-and-set lost to another change: what the grant is now.
    async fn lost_race(&self, id: &str) -> ApiError {
        match self.store.get(id).await {
            Ok(Some(grant)) => already_decided(&grant),
            Ok(None) => not_found(id),
            Err(e) => store_failure(e),
        }
    }

    fn lease_handle(&self, id: &str) -> Arc<LeaseHandle> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(LeaseHandle::new()))
            .clone()
    }

    fn end_lease(&self, grant: &Grant) {
        let handle = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&grant.id);
        if let Some(handle) = handle {
            handle.end(describe_end(grant));
        }
    }

    /// Applies what another broker sharing the store did to grant `id`: its tunnels here end
    /// if it ended, its end is scheduled here too if it is live (so it ends on time even if
    /// that broker stops), and long-polls here wake to read it.
    pub async fn refresh(self: &Arc<Self>, id: &str) {
        match self.store.get(id).await {
            Ok(Some(grant)) => {
                if grant.state.is_final() {
                    self.end_lease(&grant);
                    self.forget_schedule(&grant.id);
                } else {
                    self.schedule(&grant);
                }
            }
            Ok(None) => {}
            Err(e) => warn!(grant = %id, error = %e, "cannot read a grant another broker changed"),
        }
        self.bump();
    }

    /// Reads the live grants again (a notification from another broker may have been lost):
    /// tunnels here on a grant no longer active end, live grants' ends are scheduled here. One
    /// query while nothing changed; one more per grant that ended. Long-polls wake when this
    /// found something, or always with `wake` (after notifications were lost: a vote may be
    /// among them, which changes no lease).
    pub async fn recheck(self: &Arc<Self>, wake: bool) {
        let live = match self.store.live().await {
            Ok(live) => live,
            Err(e) => {
                warn!(error = %e, "cannot read the live grants again");
                return;
            }
        };
        let active: std::collections::HashSet<&str> = live
            .iter()
            .filter(|grant| grant.state == GrantState::Active)
            .map(|grant| grant.id.as_str())
            .collect();
        let gone: Vec<String> = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|id| !active.contains(id.as_str()))
            .cloned()
            .collect();
        let mut changed = false;
        for id in gone {
            match self.store.get(&id).await {
                Ok(Some(grant)) if grant.state != GrantState::Active => {
                    self.end_lease(&grant);
                    changed = true;
                }
                Ok(_) => {}
                Err(e) => warn!(grant = %id, error = %e, "cannot read a grant again"),
            }
        }
        for grant in &live {
            changed |= self.schedule(grant);
        }
        if wake || changed {
            self.bump();
        }
    }

    fn forget_schedule(&self, id: &str) {
        self.scheduled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(scheduled, _)| scheduled != id);
    }

    /// Starts the timer that ends a pending request (approval timeout) or an active grant,
    /// once per grant and state; true when it started one (the grant was new here).
    fn schedule(self: &Arc<Self>, grant: &Grant) -> bool {
        let (at, from, reason) = match grant.state {
            GrantState::Active => match grant.expires_at {
                Some(at) => (at, GrantState::Active, "the grant's time ran out"),
                None => return false,
            },
            GrantState::Pending => match &grant.approval {
                Some(rule) => (rule.expires_at, GrantState::Pending, APPROVAL_TIMEOUT),
                None => return false,
            },
            _ => return false,
        };
        let fresh = self
            .scheduled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((grant.id.clone(), from));
        if !fresh {
            return false;
        }
        let this = Arc::clone(self);
        let id = grant.id.clone();
        tokio::spawn(async move {
            let when = UNIX_EPOCH + Duration::from_secs(at);
            if let Ok(left) = when.duration_since(SystemTime::now()) {
                tokio::time::sleep(left).await;
            }
            this.expire(&id, from, reason).await;
            this.scheduled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(id, from));
        });
        true
    }

    async fn expire(&self, id: &str, from: GrantState, reason: &str) {
        match self
            .store
            .finish(id, &[from], GrantState::Expired, now_secs(), BROKER, reason)
            .await
        {
            Ok(grant) => {
                self.end_lease(&grant);
                self.audit_end_or_activation(&grant);
                self.bump();
            }
            // Decided, revoked or (for a pending request) approved in the meantime.
            Err(StoreError::NotInState { .. }) => {}
            Err(e) => {
                // Fail closed: the tunnels end even if the store cannot record it; the next
                // tunnel open re-reads the grant and checks its expiry itself.
                warn!(grant = %id, error = %e, "cannot record a grant's expiry");
                if let Some(handle) = self
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id)
                {
                    handle.end(reason);
                }
            }
        }
    }

    fn audit_end_or_activation(&self, grant: &Grant) {
        let by = grant.ended_by.as_deref().unwrap_or("");
        let reason = grant.end_reason.as_deref().unwrap_or("");
        match grant.state {
            GrantState::Active => info!(target: "audit", event = "grant.activated.v1",
                grant = %grant.id, subject = %grant.requester.subject, by = "approvers",
                expires_at = grant.expires_at),
            GrantState::Denied => info!(target: "audit", event = "grant.denied.v1",
                grant = %grant.id, subject = %grant.requester.subject, by, reason),
            GrantState::Expired => info!(target: "audit", event = "grant.expired.v1",
                grant = %grant.id, subject = %grant.requester.subject, reason),
            GrantState::Revoked => info!(target: "audit", event = "grant.revoked.v1",
                grant = %grant.id, subject = %grant.requester.subject, by, reason),
            GrantState::Pending | GrantState::Unknown => {}
        }
    }

    /// Whether the caller may vote on a pending grant.
    fn may_vote(&self, who: &Identity, grant: &Grant) -> Result<(), String> {
        let Some(rule) = &grant.approval else {
            return Err(format!("{} did not need approval", grant.id));
        };
        sluice_config::may_decide(
            &approval_of(rule),
            &Principal {
                subject: &who.subject,
                groups: &who.groups,
            },
            &grant.requester.subject,
        )
    }

    /// Whether the caller belongs to the grant's approver groups (approvers may see and revoke
    /// what they approve, including their own when self-approval is off).
    fn may_see_as_approver(&self, who: &Identity, grant: &Grant) -> bool {
        grant
            .approval
            .as_ref()
            .is_some_and(|rule| rule.groups.iter().any(|g| who.groups.contains(g)))
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// The config type for a stored approval snapshot (the timeout has already been applied).
fn approval_of(rule: &ApprovalRule) -> Approval {
    Approval {
        groups: rule.groups.clone(),
        count: rule.count,
        self_approve: rule.self_approve,
        timeout: Duration::ZERO,
    }
}

/// A reason as stored: trimmed, control characters replaced, at most [`MAX_REASON`] chars.
fn clean_reason(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect()
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::GrantNotFound,
        format!("no grant '{id}' that you may see; `sluice grant list --all` lists yours"),
    )
}

fn store_failure(e: StoreError) -> ApiError {
    warn!(error = %e, "grant store failure");
    ApiError::new(
        ErrorCode::Unavailable,
        "the broker cannot reach its grant store; access is refused until it can (try again shortly)",
    )
}

/// "grant g_x was denied by bob: not during the freeze" and the like.
fn already_decided(grant: &Grant) -> ApiError {
    let what = match grant.state {
        GrantState::Active => format!("grant {} was already approved and is active", grant.id),
        _ => describe_end(grant),
    };
    ApiError::new(ErrorCode::Conflict, what)
}

/// How a grant ended, for people: state, who, why.
fn describe_end(grant: &Grant) -> String {
    let mut text = format!("grant {} was {}", grant.id, grant.state);
    if let Some(by) = grant.ended_by.as_deref().filter(|b| *b != BROKER) {
        text.push_str(&format!(" by {by}"));
    }
    if let Some(reason) = grant.end_reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(": {reason}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_flattened_and_bounded() {
        assert_eq!(clean_reason("  fix\nINC-1\t "), "fix INC-1");
        assert_eq!(clean_reason(&"x".repeat(900)).len(), MAX_REASON);
    }

    /// One tcp resource; `glass` needs two yeses from `dba`, and dbas may ask for it.
    const CONFIG: &str = "\
listen: 127.0.0.1:8443
tls: {cert: tls/server.crt, key: tls/server.key, ca: tls/ca.crt}
tokens: {signing_key: keys/session-signing.pem}
store: {sqlite: sluice.db}
resources:
  svc: {kind: tcp, address: 127.0.0.1:9}
policy:
  roles:
    glass:
      max_ttl: 30m
      approval: {groups: [dba], count: 2}
  rules:
    - {name: dba-glass, groups: [dba], resources: [svc], roles: [glass]}
";

    fn dba(subject: &str) -> Identity {
        Identity {
            subject: subject.to_string(),
            groups: vec!["dba".to_string()],
            auth_method: "operator".to_string(),
            token_id: format!("t_{subject}"),
            expires_at: now_secs() + 3600,
            provider: None,
            ci: Default::default(),
            via: None,
            parent: None,
        }
    }

    async fn grants() -> Arc<Grants> {
        let config = sluice_config::parse(CONFIG, std::path::Path::new("/etc/sluice/sluice.yaml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let store = Store::open_in_memory().await.expect("in-memory store");
        Grants::start(
            store,
            LiveConfig::new(Arc::new(config))
                .expect("the plans compile")
                .1,
        )
        .await
        .expect("start")
    }

    async fn pending(grants: &Arc<Grants>, who: &Identity) -> Grant {
        let request = GrantRequest {
            resource: "svc".into(),
            role: Some("glass".into()),
            ttl_secs: None,
            reason: "prod is down".into(),
            reuse: false,
        };
        let grant = grants.request(who, request).await.expect("request").grant;
        assert_eq!(grant.state, GrantState::Pending);
        grant
    }

    #[test]
    fn a_long_poll_waits_only_while_the_grant_looks_as_seen() {
        let mut grant: Grant = serde_json::from_value(serde_json::json!({
            "id": "g_1", "state": "pending", "resource": "svc", "role": "glass",
            "rule": "r", "reason": "x", "ttl_secs": 60, "created_at": 1,
            "requester": {"subject": "carol", "groups": [], "auth_method": "operator"},
        }))
        .expect("grant");
        let seen = |state, votes| Seen { state, votes };
        let pending = Some(GrantState::Pending);
        assert!(seen(pending, None).unchanged(&grant));
        assert!(seen(pending, Some(0)).unchanged(&grant));
        assert!(seen(None, Some(0)).unchanged(&grant));
        assert!(!seen(None, None).unchanged(&grant), "nothing to wait on");
        grant.votes.push(Vote {
            approver: "bob".into(),
            approve: true,
            reason: None,
            at: 2,
        });
        assert!(seen(pending, None).unchanged(&grant), "old clients");
        assert!(!seen(pending, Some(0)).unchanged(&grant));
        assert!(seen(pending, Some(1)).unchanged(&grant));
        grant.state = GrantState::Active;
        assert!(!seen(pending, Some(1)).unchanged(&grant));
    }

    #[tokio::test]
    async fn a_requester_waiting_with_votes_hears_of_each_vote() {
        let grants = grants().await;
        let (carol, bob, dave) = (dba("carol"), dba("bob"), dba("dave"));
        let grant = pending(&grants, &carol).await;

        // Waits far longer than the test may run: only the vote can end it.
        let forever = Duration::from_secs(3600);
        let seen = Seen {
            state: Some(GrantState::Pending),
            votes: Some(0),
        };
        let waiter = tokio::spawn({
            let (grants, carol, id) = (Arc::clone(&grants), carol.clone(), grant.id.clone());
            async move { grants.wait(&carol, &id, seen, forever).await }
        });
        grants
            .vote(&bob, &grant.id, true, None)
            .await
            .expect("bob approves");
        // A hang guard, not a latency threshold.
        let seen_by_carol = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the vote answers the long-poll")
            .expect("join")
            .expect("wait");
        assert_eq!(seen_by_carol.state, GrantState::Pending, "one of two");
        assert_eq!(seen_by_carol.votes.len(), 1);
        assert_eq!(seen_by_carol.votes[0].approver, "bob");

        // Having seen bob's vote, the next poll waits for the decision.
        let seen = Seen {
            state: Some(GrantState::Pending),
            votes: Some(1),
        };
        let waiter = tokio::spawn({
            let (grants, carol, id) = (Arc::clone(&grants), carol.clone(), grant.id.clone());
            async move { grants.wait(&carol, &id, seen, forever).await }
        });
        grants
            .vote(&dave, &grant.id, true, None)
            .await
            .expect("dave approves");
        let mut latest = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the vote answers the long-poll")
            .expect("join")
            .expect("wait");
        // Dave's vote and the activation are two changes; the poll may answer between them.
        if latest.state == GrantState::Pending {
            assert_eq!(latest.votes.len(), 2);
            let seen = Seen {
                state: Some(GrantState::Pending),
                votes: Some(2),
            };
            latest = grants
                .wait(&carol, &grant.id, seen, forever)
                .await
                .expect("wait");
        }
        assert_eq!(latest.state, GrantState::Active);
    }

    #[tokio::test]
    async fn a_revoke_between_the_grant_read_and_the_lease_ends_the_tunnel() {
        let grants = grants().await;
        let (carol, bob, dave) = (dba("carol"), dba("bob"), dba("dave"));
        let grant = pending(&grants, &carol).await;
        for approver in [&bob, &dave] {
            grants
                .vote(approver, &grant.id, true, None)
                .await
                .expect("approve");
        }
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (go, go_rx) = tokio::sync::oneshot::channel();
        *grants.race.lock().expect("lock") = Some((reached_tx, go_rx));
        let opening = tokio::spawn({
            let (grants, carol, id) = (Arc::clone(&grants), carol.clone(), grant.id.clone());
            async move { grants.lease_for_tunnel(&carol, &id, "svc").await }
        });
        reached.await.expect("the tunnel read the grant as active");
        grants
            .revoke(&bob, &grant.id, Some("done".into()))
            .await
            .expect("revoke");
        go.send(()).expect("resume");
        match opening.await.expect("join") {
            Err(e) => {
                assert_eq!(e.code, ErrorCode::GrantInactive, "{e}");
                assert!(e.message.contains("revoked"), "{e}");
            }
            Ok(granted) => panic!(
                "a tunnel opened on a revoked grant (lease ended: {:?})",
                granted.lease.ended()
            ),
        }
    }

    #[tokio::test]
    async fn without_votes_a_long_poll_ignores_votes_as_before() {
        let grants = grants().await;
        let (carol, bob) = (dba("carol"), dba("bob"));
        let grant = pending(&grants, &carol).await;
        grants
            .vote(&bob, &grant.id, true, None)
            .await
            .expect("bob approves");
        // `state=pending` alone: still pending, so it waits until the (short) wait runs out.
        let seen = Seen {
            state: Some(GrantState::Pending),
            votes: None,
        };
        let polled = grants
            .wait(&carol, &grant.id, seen, Duration::from_millis(50))
            .await
            .expect("wait");
        assert_eq!((polled.state, polled.votes.len()), (GrantState::Pending, 1));
        // A stale vote count answers at once, however long the wait.
        let seen = Seen {
            state: Some(GrantState::Pending),
            votes: Some(0),
        };
        let polled = tokio::time::timeout(
            Duration::from_secs(30),
            grants.wait(&carol, &grant.id, seen, Duration::from_secs(3600)),
        )
        .await
        .expect("answers at once")
        .expect("wait");
        assert_eq!(polled.votes.len(), 1);
    }
}
