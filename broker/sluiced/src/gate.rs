//! The gate: the one security entry point every API call and tunnel passes through.
//!
//! Token check, resource lookup and the grant check happen here and nowhere else. What it hands
//! on is an [`Authorized`] value that only this module can construct, so the tunnel code cannot
//! reach an engine without an active grant.

use crate::grants::{GrantLease, Grants};
use crate::live::{LiveConfig, Snapshot};
use crate::plan::RolePlan;
use crate::tokens::{Claims, Revocations, TokenError, TokenService};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sluice_config::{Config, Decision, Principal, Resource};
use sluice_shared::api::{ResourceInfo, ResourceList, RoleInfo};
use sluice_shared::grants::GRANT_HEADER;
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;

/// Who is calling, as proven by their session token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Subject name.
    pub subject: String,
    /// Groups, for policy.
    pub groups: Vec<String>,
    /// How the token was obtained.
    pub auth_method: String,
    /// Token id.
    pub token_id: String,
    /// Token expiry, seconds since the epoch.
    pub expires_at: u64,
    /// The identity provider or workload rule behind the token.
    pub provider: Option<String>,
    /// CI claims of a workload.
    pub ci: std::collections::BTreeMap<String, String>,
    /// `mcp` when the token is an agent token: sessions under it come through `sluice mcp`.
    pub via: Option<String>,
    /// The token an agent token was derived from.
    pub parent: Option<String>,
}

impl Identity {
    /// The identity as a held action's requester, for approvers.
    pub fn requester(&self) -> sluice_shared::grants::Requester {
        sluice_shared::grants::Requester {
            subject: self.subject.clone(),
            groups: self.groups.clone(),
            auth_method: self.auth_method.clone(),
            provider: self.provider.clone(),
            ci: self.ci.clone(),
        }
    }
}

impl From<Claims> for Identity {
    fn from(c: Claims) -> Self {
        Self {
            subject: c.sub,
            groups: c.groups,
            auth_method: c.amr,
            token_id: c.jti,
            expires_at: c.exp,
            provider: c.idp,
            ci: c.ci,
            via: c.via,
            parent: c.parent,
        }
    }
}

/// Proof that an identity holds an active grant on a resource. Only [`Gate::authorize`] makes
/// one.
#[derive(Debug)]
pub struct Authorized {
    identity: Identity,
    resource: Resource,
    grant_id: String,
    grant: GrantLease,
    plan: Arc<RolePlan>,
}

impl Authorized {
    /// The caller.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    /// The resource they may use.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
    /// The grant the tunnel rides on.
    pub fn grant_id(&self) -> &str {
        &self.grant_id
    }
    /// The grant's role.
    pub fn role(&self) -> &str {
        &self.grant.role
    }
    /// What the role enforces, from the configuration the tunnel was authorized under.
    pub fn plan(&self) -> &Arc<RolePlan> {
        &self.plan
    }
    /// The grant's lease and end, which bound the tunnel's life.
    pub fn into_grant(self) -> GrantLease {
        self.grant
    }
}

/// Checks tokens and policy against one configuration snapshot.
#[derive(Debug, Clone)]
pub struct Gate {
    config: LiveConfig,
    tokens: Arc<TokenService>,
    revocations: Arc<Revocations>,
    grants: Arc<Grants>,
}

impl Gate {
    /// A gate over a configuration and a token service.
    pub fn new(
        config: LiveConfig,
        tokens: Arc<TokenService>,
        revocations: Arc<Revocations>,
        grants: Arc<Grants>,
    ) -> Self {
        Self {
            config,
            tokens,
            revocations,
            grants,
        }
    }

    /// The configuration the gate decides by now.
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    /// The plan of one of the caller's active grants, as a tunnel under it would run now.
    pub async fn grant_plan(
        &self,
        identity: &Identity,
        grant_id: &str,
    ) -> Result<Arc<RolePlan>, ApiError> {
        let grant = self.grants.get(identity, grant_id).await?;
        if grant.requester.subject != identity.subject
            || grant.state != sluice_shared::grants::GrantState::Active
        {
            return Err(ApiError::new(
                ErrorCode::GrantInactive,
                format!("grant {grant_id} is not an active grant of yours"),
            ));
        }
        let snapshot = self.config.snapshot();
        Self::replan(&snapshot, identity, &grant.resource, grant_id, &grant.role)
    }

    /// Whether the session token `id` was revoked (logged out).
    pub fn token_revoked(&self, id: &str) -> bool {
        self.revocations.is_revoked(id)
    }

    /// The broker's token service: its public key and the identity assertions it signs.
    pub fn tokens(&self) -> &Arc<TokenService> {
        &self.tokens
    }

    /// The live configuration, for sessions that re-check themselves at each reload.
    pub fn live(&self) -> &LiveConfig {
        &self.config
    }

    /// The identity behind the request's bearer token.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorCode::TokenMissing,
                "no session token was presented",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::TokenInvalid,
                    "the Authorization header is not of the form `Bearer <token>`",
                )
            })?;
        let identity = self
            .tokens
            .verify(token)
            .map(Identity::from)
            .map_err(|e| match e {
                TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, e.to_string()),
                TokenError::Invalid(_) => ApiError::new(ErrorCode::TokenInvalid, e.to_string()),
            })?;
        let parent_revoked = identity
            .parent
            .as_deref()
            .is_some_and(|parent| self.revocations.is_revoked(parent));
        if parent_revoked || self.revocations.is_revoked(&identity.token_id) {
            return Err(ApiError::new(
                ErrorCode::TokenRevoked,
                "the session token was revoked (logged out)",
            ));
        }
        Ok(identity)
    }

    /// The identity behind the request and the resource, if policy lets it request at least one
    /// role there (what `sluice connect` checks before it listens).
    pub fn may_request(
        &self,
        headers: &HeaderMap,
        resource: &str,
    ) -> Result<(Identity, Resource), ApiError> {
        let identity = self.identify(headers)?;
        let config = self.config();
        let found = resource_in(&config, resource)?;
        let principal = Principal {
            subject: &identity.subject,
            groups: &identity.groups,
        };
        if config.policy.requestable(&principal, found).is_empty() {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "policy gives {} (groups: {}) no role on '{resource}'",
                    identity.subject,
                    if identity.groups.is_empty() {
                        "none".to_string()
                    } else {
                        identity.groups.join(", ")
                    }
                ),
            ));
        }
        Ok((identity, found.clone()))
    }

    /// The identity behind a tunnel request, if it names an active grant of theirs on
    /// `resource`. Fails closed when the grant store is unavailable.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        resource: &str,
    ) -> Result<Authorized, ApiError> {
        let identity = self.identify(headers)?;
        let snapshot = self.config.snapshot();
        let found = resource_in(&snapshot.config, resource)?.clone();
        let Some(grant_id) = headers
            .get(GRANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        else {
            return Err(ApiError::new(
                ErrorCode::GrantInactive,
                format!(
                    "a tunnel needs a grant: `sluice grant request {resource} --role ROLE` \
                     (or `sluice connect {resource}`, which asks for one)"
                ),
            ));
        };
        let grant = self
            .grants
            .lease_for_tunnel(&identity, grant_id, resource)
            .await?;
        let plan = plan_of(&snapshot, &identity, &found, grant_id, &grant.role)?;
        Ok(Authorized {
            identity,
            resource: found,
            grant_id: grant_id.to_string(),
            grant,
            plan,
        })
    }

    /// The plan a session of `role` on `resource` runs under in `snapshot`, if that policy
    /// still gives the role there to the identity and the resource's engine enforces everything
    /// the role asks. A grant was checked against the policy of its time; a role renamed or
    /// removed since, a rule that no longer covers the subject, or a role now given where it
    /// cannot be enforced refuses the tunnel (or ends the session) instead of running it with
    /// whatever is left.
    pub fn replan(
        snapshot: &Snapshot,
        identity: &Identity,
        resource: &str,
        grant_id: &str,
        role: &str,
    ) -> Result<Arc<RolePlan>, ApiError> {
        let resource = snapshot.config.resource(resource).ok_or_else(|| {
            ApiError::new(
                ErrorCode::GrantInactive,
                format!("the broker's current policy has no resource named '{resource}'"),
            )
        })?;
        plan_of(snapshot, identity, resource, grant_id, role)
    }
}

/// See [`Gate::replan`].
fn plan_of(
    snapshot: &Snapshot,
    identity: &Identity,
    resource: &Resource,
    grant_id: &str,
    role: &str,
) -> Result<Arc<RolePlan>, ApiError> {
    still_allowed(&snapshot.config, identity, resource, grant_id, role)?;
    // Compiled from the same configuration, so present whenever the role is.
    snapshot.plans.get(role).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the broker has no plan for role '{role}'"),
        )
    })
}

/// Whether the policy gives `role` on `resource` to the identity, where it can be enforced.
fn still_allowed(
    config: &Config,
    identity: &Identity,
    resource: &Resource,
    grant_id: &str,
    role: &str,
) -> Result<(), ApiError> {
    let policy = &config.policy;
    let Some(spec) = policy.role(role) else {
        return Err(ApiError::new(
            ErrorCode::GrantInactive,
            format!(
                "grant {grant_id} is for role '{role}', which the broker's current policy no \
                     longer defines (`sluice resources` lists the roles you may ask for)"
            ),
        ));
    };
    let principal = Principal {
        subject: &identity.subject,
        groups: &identity.groups,
    };
    if !policy
        .requestable(&principal, resource)
        .iter()
        .any(|(name, _)| name == role)
    {
        return Err(ApiError::new(
            ErrorCode::GrantInactive,
            format!(
                "grant {grant_id}: the broker's current policy no longer gives {} role \
                     '{role}' on '{}' (`sluice resources` lists the roles you may ask for)",
                identity.subject, resource.name
            ),
        ));
    }
    let kind = resource.kind_ref();
    if let Some(need) = spec
        .needs
        .iter()
        .find(|need| !crate::engines::enforces(kind, need.value))
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "role '{role}' cannot be enforced on '{}' (kind {kind}): {} ({}); the \
                     operator should run `sluiced check-config`",
                resource.name,
                need.value.describe(),
                need.key
            ),
        ));
    }
    Ok(())
}

impl Gate {
    /// Every resource the identity may request a role on, with the roles (the default first).
    pub fn requestable(&self, identity: &Identity) -> ResourceList {
        let principal = Principal {
            subject: &identity.subject,
            groups: &identity.groups,
        };
        let config = self.config();
        let policy = &config.policy;
        let resources = config
            .resources
            .iter()
            .filter_map(|resource| {
                let roles: Vec<RoleInfo> = policy
                    .requestable(&principal, resource)
                    .into_iter()
                    .filter_map(|(role, rule)| {
                        let Decision::Grant(grantable) =
                            policy.decide(&principal, resource, Some(&role), None)
                        else {
                            return None;
                        };
                        let spec = policy.role(&role)?;
                        Some(RoleInfo {
                            name: role,
                            rule,
                            max_ttl_secs: spec.max_ttl.as_secs(),
                            approvers: grantable.approval.map(|a| a.groups),
                            description: spec.description.clone(),
                        })
                    })
                    .collect();
                (!roles.is_empty()).then(|| ResourceInfo {
                    name: resource.name.clone(),
                    kind: resource.kind(),
                    description: resource.description.clone(),
                    labels: resource.labels.clone(),
                    roles,
                })
            })
            .collect();
        ResourceList { resources }
    }
}

fn resource_in<'c>(config: &'c Config, name: &str) -> Result<&'c Resource, ApiError> {
    config.resource(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ResourceUnknown,
            format!("this broker has no resource named '{name}'"),
        )
    })
}
