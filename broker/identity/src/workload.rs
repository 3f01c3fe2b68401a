//! Workload identity: a verified CI or cluster token, matched against a configured rule, becomes
//! a broker subject with groups.
//!
//! A rule names the issuer and audience it accepts, claim patterns that must all match (exact, or
//! globs with `*` and `?`), a subject template built from claims, and the groups the workload
//! gets. Presets supply the defaults for GitHub Actions, GitLab CI and Kubernetes service
//! accounts, including which claims an approver should see.
//!
//! Advice for GitHub rules: names can be re-registered after a rename or deletion, so prefer
//! matching `repository_id` / `repository_owner_id` as well as `repository`.

use std::collections::BTreeMap;

use crate::claims;
use crate::rejection::{Rejection, echo};
use crate::verify::Verified;

/// One claim a rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMatch {
    /// Dotted claim path (`repository`, `kubernetes.io.namespace`).
    pub claim: String,
    /// Exact text, or a glob where `*` is any run of characters and `?` one character.
    pub pattern: String,
}

impl ClaimMatch {
    /// A claim requirement.
    pub fn new(claim: impl Into<String>, pattern: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
            pattern: pattern.into(),
        }
    }
}

/// A configured rule for one kind of workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRule {
    /// The rule's name, recorded on the identity for audit.
    pub name: String,
    /// `iss` the token must carry (also enforced by the issuer policy; checked again here so a
    /// rule can never be satisfied by another issuer's token).
    pub issuer: String,
    /// A value `aud` must contain.
    pub audience: String,
    /// Subject of the resulting identity, with `{claim.path}` placeholders.
    pub subject_template: String,
    /// Claim requirements; all must match.
    pub claims: Vec<ClaimMatch>,
    /// Broker groups granted to matching workloads.
    pub groups: Vec<String>,
    /// Claims copied into [`WorkloadIdentity::ci_claims`] for approvers and audit, when present.
    pub display_claims: Vec<String>,
}

/// A configuration mistake in a rule, found by [`WorkloadRule::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The preset has no default issuer (Kubernetes) and none was given.
    #[error("preset {0:?} needs an explicit issuer")]
    IssuerRequired(Preset),
    /// Issuer, audience or subject template is empty.
    #[error("rule `{rule}`: `{field}` must not be empty")]
    Empty {
        /// The rule's name.
        rule: String,
        /// The empty field.
        field: &'static str,
    },
    /// A `{` without `}` or an empty `{}` in the subject template.
    #[error("rule `{0}`: subject template has an unbalanced or empty placeholder")]
    Template(String),
}

/// Well-known workload token issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// GitHub Actions OIDC tokens.
    GithubActions,
    /// GitLab CI `id_tokens` (gitlab.com by default; self-managed instances differ).
    GitlabCi,
    /// Kubernetes projected service account tokens (issuer is per cluster).
    Kubernetes,
}

impl Preset {
    /// The issuer to expect unless configured otherwise.
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            Preset::GithubActions => Some("https://token.actions.githubusercontent.com"),
            Preset::GitlabCi => Some("https://gitlab.com"),
            Preset::Kubernetes => None,
        }
    }

    /// The default subject template.
    pub fn subject_template(self) -> &'static str {
        match self {
            Preset::GithubActions => "github:{repository}:{ref}:{workflow}",
            Preset::GitlabCi => "gitlab:{project_path}:{ref}",
            Preset::Kubernetes => {
                "system:serviceaccount:{kubernetes.io.namespace}:{kubernetes.io.serviceaccount.name}"
            }
        }
    }

    /// Claims worth showing an approver.
    pub fn display_claims(self) -> &'static [&'static str] {
        match self {
            Preset::GithubActions => &[
                "repository",
                "workflow",
                "ref",
                "sha",
                "actor",
                "run_id",
                "event_name",
                "environment",
            ],
            Preset::GitlabCi => &[
                "project_path",
                "ref",
                "pipeline_id",
                "user_login",
                "environment",
            ],
            Preset::Kubernetes => &[
                "kubernetes.io.namespace",
                "kubernetes.io.serviceaccount.name",
            ],
        }
    }

    /// A rule with this preset's defaults, no claim requirements and no groups.
    pub fn rule(
        self,
        name: impl Into<String>,
        issuer: Option<String>,
        audience: impl Into<String>,
    ) -> Result<WorkloadRule, RuleError> {
        let issuer = issuer
            .or_else(|| self.default_issuer().map(str::to_owned))
            .ok_or(RuleError::IssuerRequired(self))?;
        Ok(WorkloadRule {
            name: name.into(),
            issuer,
            audience: audience.into(),
            subject_template: self.subject_template().to_owned(),
            claims: Vec::new(),
            groups: Vec::new(),
            display_claims: self
                .display_claims()
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        })
    }
}

impl WorkloadRule {
    /// Configuration-time checks; call when loading rules.
    pub fn check(&self) -> Result<(), RuleError> {
        for (field, value) in [
            ("issuer", &self.issuer),
            ("audience", &self.audience),
            ("subject_template", &self.subject_template),
        ] {
            if value.is_empty() {
                return Err(RuleError::Empty {
                    rule: self.name.clone(),
                    field,
                });
            }
        }
        match parse_template(&self.subject_template) {
            Some(_) => Ok(()),
            None => Err(RuleError::Template(self.name.clone())),
        }
    }
}

/// A workload allowed by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// The subject rendered from the rule's template.
    pub subject: String,
    /// The rule's groups.
    pub groups: Vec<String>,
    /// The rule's name.
    pub rule: String,
    /// The rule's display claims that the token carried, as text.
    pub ci_claims: BTreeMap<String, String>,
}

/// Applies a rule to a verified token.
pub fn evaluate(rule: &WorkloadRule, token: &Verified) -> Result<WorkloadIdentity, Rejection> {
    if token.issuer() != rule.issuer {
        return Err(Rejection::WrongIssuer(echo(token.issuer())));
    }
    if !token.audiences().contains(&rule.audience) {
        return Err(Rejection::WrongAudience);
    }
    for required in &rule.claims {
        let value = claims::find(token.claims(), &required.claim)
            .ok_or_else(|| Rejection::MissingClaim(required.claim.clone()))?;
        let matched =
            claims::text(value).is_some_and(|text| claims::glob(&required.pattern, &text));
        if !matched {
            return Err(Rejection::ClaimMismatch(required.claim.clone()));
        }
    }
    // An unchecked, broken template fails closed rather than rendering something unintended.
    let pieces = parse_template(&rule.subject_template)
        .ok_or_else(|| Rejection::ClaimMismatch("subject_template".into()))?;
    let mut subject = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => subject.push_str(text),
            Piece::Claim(path) => {
                let value = claims::find(token.claims(), path)
                    .ok_or_else(|| Rejection::MissingClaim(path.to_owned()))?;
                let text = claims::text(value)
                    .filter(|text| !text.is_empty() && !text.chars().any(char::is_control))
                    .ok_or_else(|| Rejection::InvalidClaim(path.to_owned()))?;
                subject.push_str(&text);
            }
        }
    }
    let ci_claims = rule
        .display_claims
        .iter()
        .filter_map(|path| {
            let value = claims::find(token.claims(), path)?;
            Some((path.clone(), claims::text(value)?))
        })
        .collect();
    Ok(WorkloadIdentity {
        subject,
        groups: rule.groups.clone(),
        rule: rule.name.clone(),
        ci_claims,
    })
}

enum Piece<'a> {
    Text(&'a str),
    Claim(&'a str),
}

/// Splits a template into text and `{claim}` pieces; `None` on `{` without `}`, `{}`, or `}`
/// outside a placeholder.
fn parse_template(template: &str) -> Option<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (text, after) = rest.split_at(open);
        if text.contains('}') {
            return None;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let close = after.find('}')?;
        let path = &after[1..close];
        if path.is_empty() || path.contains('{') {
            return None;
        }
        pieces.push(Piece::Claim(path));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Some(pieces)
}
