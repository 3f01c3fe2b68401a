//! Login exchanges: a person's OIDC ID token or a workload's platform token in, a broker session
//! token out.
//!
//! ```text
//! POST /v1/auth/token {kind, token}
//!   └─ route by the token's unverified `iss` to the configured issuers of that kind
//!      └─ sluice_identity::peek (shape, alg allow-list) ─ KeyCache (JWKS, refreshed on an unknown
//!         kid at most once per interval, served from cache while the IdP is down)
//!         ─ verify (signature, iss, aud, exp, nbf, iat) ─ person() | evaluate(rule)
//!   └─ TokenService::issue_with: short TTL, never past the exchanged token's own expiry
//! ```
//!
//! The unverified `iss` only chooses which policy to verify against; the policy checks it again.
//! Every accepted and refused exchange is an audit event (tracing target `audit`).

use crate::tokens::{Provenance, TokenService};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_config::{Config, JwksSource, WorkloadPreset};
use sluice_identity::{
    CacheTiming, ClaimMatch, IssuerPolicy, KeyCache, Lookup, PeopleIssuer, Preset, Rejection,
    WorkloadRule,
};
use sluice_shared::api::{
    AuthConfig, ExchangeRequest, ExchangeResponse, OidcProvider, TokenKind, WorkloadTrust,
};
use sluice_shared::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// How long one JWKS or discovery fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// The cached keys of one issuer, shared by every rule that trusts it.
#[derive(Debug)]
struct IssuerKeys {
    issuer: String,
    source: JwksSource,
    cache: tokio::sync::Mutex<KeyCache>,
}

#[derive(Debug)]
struct People {
    name: String,
    client_id: String,
    scopes: Vec<String>,
    policy: IssuerPolicy,
    reader: PeopleIssuer,
    keys: Arc<IssuerKeys>,
}

#[derive(Debug)]
struct Workload {
    preset: Option<WorkloadPreset>,
    policy: IssuerPolicy,
    rule: WorkloadRule,
    keys: Arc<IssuerKeys>,
}

/// Verifies identity tokens against the configured issuers and mints session tokens.
#[derive(Debug)]
pub struct Exchanger {
    people: Vec<People>,
    workloads: Vec<Workload>,
    http: reqwest::Client,
    tokens: Arc<TokenService>,
    ttl: Duration,
}

/// A refused exchange: the rejection code for audit, the message for the caller.
fn refused(code: &str, message: String) -> ApiError {
    ApiError::new(
        ErrorCode::LoginRefused,
        format!("the identity token was refused: {message} ({code})"),
    )
}

impl Exchanger {
    /// Builds the verifiers from the `identity` section.
    pub fn new(config: &Config, tokens: Arc<TokenService>) -> Result<Self> {
        let identity = &config.identity;
        let timing = CacheTiming {
            min_refresh_interval: identity.jwks_refresh_interval,
            max_stale: identity.jwks_max_stale,
            ..CacheTiming::default()
        };
        let mut shared: HashMap<String, Arc<IssuerKeys>> = HashMap::new();
        let mut keys_for = |issuer: &str, source: &JwksSource| {
            let id = format!("{issuer}\n{source:?}");
            shared
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(IssuerKeys {
                        issuer: issuer.to_string(),
                        source: source.clone(),
                        cache: tokio::sync::Mutex::new(KeyCache::new(timing)),
                    })
                })
                .clone()
        };
        let policy = |issuer: &str, audience: &str| {
            let mut p = IssuerPolicy::new(issuer, vec![audience.to_string()]);
            p.leeway = identity.leeway;
            p
        };

        let mut people = Vec::new();
        for p in &identity.oidc {
            people.push(People {
                name: p.name.clone(),
                client_id: p.client_id.clone(),
                scopes: p.scopes.clone(),
                policy: policy(&p.issuer, &p.audience),
                reader: PeopleIssuer {
                    issuer: p.issuer.clone(),
                    username_claim: p.username_claim.clone(),
                    groups_claim: p.groups_claim.clone(),
                    group_mapping: p.group_mapping.clone(),
                },
                keys: keys_for(&p.issuer, &p.jwks),
            });
        }
        let mut workloads = Vec::new();
        for w in &identity.workload {
            let mut rule = match w.preset {
                Some(preset) => preset_of(preset)
                    .rule(w.name.clone(), w.issuer.clone(), w.audience.clone())
                    .with_context(|| format!("{}: identity.workload {}", w.location, w.name))?,
                None => WorkloadRule {
                    name: w.name.clone(),
                    issuer: w.issuer.clone().unwrap_or_default(),
                    audience: w.audience.clone(),
                    subject_template: String::new(),
                    claims: Vec::new(),
                    groups: Vec::new(),
                    display_claims: w.claims.iter().map(|(c, _)| c.clone()).collect(),
                },
            };
            if let Some(subject) = &w.subject {
                rule.subject_template = subject.clone();
            }
            rule.claims = w
                .claims
                .iter()
                .map(|(claim, pattern)| ClaimMatch::new(claim.clone(), pattern.clone()))
                .collect();
            rule.groups = w.groups.clone();
            if let Err(e) = rule.check() {
                bail!("{}: identity.workload {}: {e}", w.location, w.name);
            }
            workloads.push(Workload {
                preset: w.preset,
                policy: policy(&rule.issuer, &rule.audience),
                keys: keys_for(&rule.issuer, &w.jwks),
                rule,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client for JWKS fetches")?;
        Ok(Self {
            people,
            workloads,
            http,
            tokens,
            ttl: config.tokens.default_ttl,
        })
    }

    /// What `GET /v1/auth/config` shows.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            oidc: self
                .people
                .iter()
                .map(|p| OidcProvider {
                    name: p.name.clone(),
                    issuer: p.reader.issuer.clone(),
                    client_id: p.client_id.clone(),
                    scopes: p.scopes.clone(),
                })
                .collect(),
            workload: self
                .workloads
                .iter()
                .map(|w| WorkloadTrust {
                    name: w.rule.name.clone(),
                    preset: w.preset.map(|p| p.as_str().to_string()),
                    audience: w.rule.audience.clone(),
                })
                .collect(),
        }
    }

    /// Exchanges an identity token. Every outcome is audited.
    pub async fn exchange(&self, req: &ExchangeRequest) -> Result<ExchangeResponse, ApiError> {
        let kind = match req.kind {
            TokenKind::Oidc => "oidc",
            TokenKind::Workload => "workload",
        };
        let result = self.exchange_inner(req).await;
        match &result {
            Ok(done) => info!(
                target: "audit",
                event = "auth.exchange.accepted.v1",
                kind,
                subject = %done.subject,
                groups = %done.groups.join(","),
                expires_at = done.expires_at,
            ),
            Err(e) => info!(
                target: "audit",
                event = "auth.exchange.refused.v1",
                kind,
                reason = %e.message,
            ),
        }
        result
    }

    async fn exchange_inner(&self, req: &ExchangeRequest) -> Result<ExchangeResponse, ApiError> {
        let token = req.token.trim();
        let iss = unverified_issuer(token)
            .ok_or_else(|| refused("malformed", "it is not a JWT with an `iss` claim".into()))?;
        match req.kind {
            TokenKind::Oidc => {
                let candidates: Vec<&People> = self
                    .people
                    .iter()
                    .filter(|p| p.reader.issuer == iss)
                    .collect();
                let Some(people) = candidates.first() else {
                    return Err(untrusted("identity provider", &iss));
                };
                let verified = self.verify(token, &people.policy, &people.keys).await?;
                let person = sluice_identity::person(&people.reader, &verified)
                    .map_err(|r| refused(r.code(), r.to_string()))?;
                self.mint(
                    &person.subject,
                    &person.groups,
                    "oidc",
                    Provenance {
                        idp: Some(people.name.clone()),
                        ci: Default::default(),
                        not_after: Some(epoch_secs(verified.expires_at())),
                        ..Default::default()
                    },
                )
            }
            TokenKind::Workload => {
                let candidates: Vec<&Workload> = self
                    .workloads
                    .iter()
                    .filter(|w| w.rule.issuer == iss)
                    .collect();
                if candidates.is_empty() {
                    return Err(untrusted("workload issuer", &iss));
                }
                // Rules for one issuer are tried in order; the first that matches wins, and
                // when none does, the last rule's reason is reported.
                let mut last = None;
                for w in candidates {
                    let verified = match self.verify(token, &w.policy, &w.keys).await {
                        Ok(v) => v,
                        Err(e) => {
                            last = Some(e);
                            continue;
                        }
                    };
                    match sluice_identity::evaluate(&w.rule, &verified) {
                        Ok(id) => {
                            return self.mint(
                                &id.subject,
                                &id.groups,
                                "workload",
                                Provenance {
                                    idp: Some(id.rule),
                                    ci: id.ci_claims,
                                    not_after: Some(epoch_secs(verified.expires_at())),
                                    ..Default::default()
                                },
                            );
                        }
                        Err(r) => last = Some(refused(r.code(), r.to_string())),
                    }
                }
                Err(last.unwrap_or_else(|| untrusted("workload issuer", &iss)))
            }
        }
    }

    /// Peek, find the key (refreshing the JWKS if policy allows), verify.
    async fn verify(
        &self,
        token: &str,
        policy: &IssuerPolicy,
        keys: &IssuerKeys,
    ) -> Result<sluice_identity::Verified, ApiError> {
        let peeked =
            sluice_identity::peek(token, policy).map_err(|r| refused(r.code(), r.to_string()))?;
        let now = Instant::now();
        let mut cache = keys.cache.lock().await;
        if matches!(cache.lookup(peeked.kid(), now), Lookup::Refresh) {
            match self.fetch_jwks(keys).await {
                Ok(document) => {
                    if let Err(e) = cache.store(&document, now) {
                        warn!(issuer = %keys.issuer, error = %e, "the JWKS holds no usable key");
                    }
                }
                Err(e) => {
                    warn!(issuer = %keys.issuer, error = %e, "cannot fetch the JWKS; using cached keys if still valid");
                    cache.record_failure(now);
                }
            }
        }
        let key = cache
            .resolve(peeked.kid(), now)
            .map_err(|r: Rejection| refused(r.code(), r.to_string()))?;
        sluice_identity::verify(&peeked, policy, key, SystemTime::now())
            .map_err(|r| refused(r.code(), r.to_string()))
    }

    async fn fetch_jwks(&self, keys: &IssuerKeys) -> Result<String> {
        match &keys.source {
            JwksSource::File(path) => std::fs::read_to_string(&path.value)
                .with_context(|| format!("cannot read {}", path.value.display())),
            JwksSource::Uri(uri) => self.get(uri).await,
            JwksSource::Discovery => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    keys.issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = serde_json::from_str(&self.get(&url).await?)
                    .with_context(|| format!("{url} is not JSON"))?;
                let jwks_uri = doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .with_context(|| format!("{url} has no jwks_uri"))?;
                if !url_allowed(jwks_uri) {
                    bail!("{url} names a jwks_uri that is neither https nor on this host");
                }
                self.get(jwks_uri).await
            }
        }
    }

    async fn get(&self, url: &str) -> Result<String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: HTTP {}", resp.status());
        }
        let body = resp.bytes().await.with_context(|| format!("GET {url}"))?;
        if body.len() > MAX_DOCUMENT {
            bail!("GET {url}: the document is larger than {MAX_DOCUMENT} bytes");
        }
        String::from_utf8(body.to_vec()).with_context(|| format!("GET {url}: not UTF-8"))
    }

    fn mint(
        &self,
        subject: &str,
        groups: &[String],
        method: &str,
        provenance: Provenance,
    ) -> Result<ExchangeResponse, ApiError> {
        let (token, claims) = self
            .tokens
            .issue_with(subject, groups, method, self.ttl, provenance)
            .map_err(|e| {
                warn!(error = %e, "cannot sign a session token");
                ApiError::new(
                    ErrorCode::Internal,
                    "the broker could not sign a session token",
                )
            })?;
        Ok(ExchangeResponse {
            token,
            subject: claims.sub,
            groups: claims.groups,
            auth_method: claims.amr,
            expires_at: claims.exp,
        })
    }
}

fn untrusted(what: &str, iss: &str) -> ApiError {
    let shown: String = iss.chars().filter(|c| !c.is_control()).take(100).collect();
    refused(
        "untrusted_issuer",
        format!("no {what} with issuer '{shown}' is trusted by this broker"),
    )
}

fn preset_of(preset: WorkloadPreset) -> Preset {
    match preset {
        WorkloadPreset::Github => Preset::GithubActions,
        WorkloadPreset::Gitlab => Preset::GitlabCi,
        WorkloadPreset::Kubernetes => Preset::Kubernetes,
    }
}

/// `iss` from the payload, without verifying anything: only to choose the policy.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

/// https anywhere, http only to this host (a development IdP).
fn url_allowed(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => matches!(
            parsed.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        ),
        _ => false,
    }
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
