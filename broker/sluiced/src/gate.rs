//! The gate: the one security entry point every API call and tunnel passes through.
//!
//! Token check, resource lookup and policy decision happen here and nowhere else. What it hands
//! on is an [`Authorized`] value that only this module can construct, so the tunnel code cannot
//! reach an engine without having passed the gate.

use crate::tokens::{Claims, Revocations, TokenError, TokenService};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sluice_config::{Config, Resource};
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
        }
    }
}

/// Proof that an identity may use a resource. Only [`Gate::authorize`] makes one.
#[derive(Debug, Clone)]
pub struct Authorized {
    identity: Identity,
    resource: Resource,
    rule: String,
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
    /// The policy rule that allowed it.
    pub fn rule(&self) -> &str {
        &self.rule
    }
}

/// Checks tokens and policy against one configuration snapshot.
#[derive(Debug, Clone)]
pub struct Gate {
    config: Arc<Config>,
    tokens: Arc<TokenService>,
    revocations: Arc<Revocations>,
}

impl Gate {
    /// A gate over a configuration and a token service.
    pub fn new(
        config: Arc<Config>,
        tokens: Arc<TokenService>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Self {
            config,
            tokens,
            revocations,
        }
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
        if self.revocations.is_revoked(&identity.token_id) {
            return Err(ApiError::new(
                ErrorCode::TokenRevoked,
                "the session token was revoked (logged out)",
            ));
        }
        Ok(identity)
    }

    /// The identity behind the request, if policy lets it use `resource`.
    pub fn authorize(&self, headers: &HeaderMap, resource: &str) -> Result<Authorized, ApiError> {
        let identity = self.identify(headers)?;
        let Some(found) = self.config.resource(resource) else {
            return Err(ApiError::new(
                ErrorCode::ResourceUnknown,
                format!("this broker has no resource named '{resource}'"),
            ));
        };
        let Some(rule) = self
            .config
            .policy
            .allowing(&identity.subject, &identity.groups, resource)
        else {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "policy gives {} (groups: {}) no access to '{resource}'",
                    identity.subject,
                    if identity.groups.is_empty() {
                        "none".to_string()
                    } else {
                        identity.groups.join(", ")
                    }
                ),
            ));
        };
        Ok(Authorized {
            rule: rule.name.clone(),
            resource: found.clone(),
            identity,
        })
    }
}
