//! Who may hold which role on which resource, and who must agree first: the `policy` section's
//! model and its evaluation.
//!
//! Everything here is pure: no clock, no store, no I/O. The broker supplies the facts (who asks,
//! for what, with which votes so far) and acts on the answer.
//!
//! - [`Policy::decide`] answers a request: the first rule (file order) that applies to the
//!   principal, covers the resource and lists the role wins, and fixes the grant's rule, role,
//!   TTL and effective approval. Nothing matching means a [`Refusal`] that says what the person
//!   could request instead. Deny by default.
//! - [`may_decide`] says whether someone may vote on a request that needs an [`Approval`].
//! - [`tally`] turns the votes cast so far into approved, denied or still waiting.
//!
//! The rule and role names in a decision are what audit records name as the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::location::{Located, Location};
use crate::model::Resource;
use crate::profiles::{GuardrailProfile, GuardrailsRef, MaskingProfile};

/// The roles, the ordered rule list, and the profiles roles refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// What a grant may allow and how it is obtained, in file order; names are unique.
    pub roles: Vec<Role>,
    /// Rules in file order: the first match wins, so order is meaningful.
    pub rules: Vec<Rule>,
    /// Statement guardrail profiles (`policy.guardrails`), in file order; names are unique and
    /// never a built-in's. A profile no role names is allowed.
    pub guardrails: Vec<GuardrailProfile>,
    /// Masking profiles (`policy.masking`), in file order; names are unique.
    pub masking: Vec<MaskingProfile>,
    /// Who may list and replay everyone's sessions and read the audit trail
    /// (`policy.auditors`); everyone else sees their own sessions only.
    pub auditors: Auditors,
}

/// `policy.auditors`: subjects (exact, or globs matched part by part like rule subjects) and
/// groups. Empty by default: nobody reads other people's sessions or the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auditors {
    /// Subject patterns.
    pub subjects: Vec<String>,
    /// Groups whose members are auditors.
    pub groups: Vec<String>,
}

impl Auditors {
    /// Whether `principal` is an auditor.
    pub fn includes(&self, principal: &Principal<'_>) -> bool {
        self.subjects
            .iter()
            .any(|pattern| subject_match(pattern, principal.subject))
            || principal.groups.iter().any(|g| self.groups.contains(g))
    }
}

/// Whether a session may go on when its recording cannot be written (`record` on a role).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordMode {
    /// The session is refused, or ended, when its recording cannot be written (the default).
    #[default]
    Required,
    /// The session goes on unrecorded; the failure is audited.
    BestEffort,
}

impl RecordMode {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::BestEffort => "best-effort",
        }
    }
}

/// What a grant allows on a resource, for how long, and whether someone must agree first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Unique name (`[a-z0-9][a-z0-9-_]{0,62}`), what users ask for with `--role`.
    pub name: String,
    /// Free text shown in listings.
    pub description: Option<String>,
    /// The longest a grant of this role lasts; longer requests are capped, not refused.
    pub max_ttl: Duration,
    /// The lifetime of a grant requested without a TTL; never above `max_ttl`.
    pub default_ttl: Duration,
    /// Who must agree before a grant starts; `None` grants at once. A rule may override it.
    pub approval: Option<Approval>,
    /// Whether a session may go on unrecorded (`record`, default `required`).
    pub record: RecordMode,
    /// What the role enforces on SQL resources (today: `postgres`). Each kind with settings of
    /// its own gets a section like this one; a kind whose engine cannot enforce a section's
    /// settings refuses the role (see `needs`).
    pub sql: SqlRole,
    /// What the role may do on SSH hosts (`ssh:`); `None` when not written.
    pub ssh: Option<SshRole>,
    /// What the role may do on Kubernetes API servers (`kube:`); `None` when not written.
    pub kube: Option<KubeRole>,
    /// What the role may do on HTTP services (`http:`); `None` when not written.
    pub http: Option<HttpRole>,
    /// The settings written on the role that only some engines can enforce, each where it is
    /// written; a rule may give the role only on resources whose engine enforces them all.
    pub needs: Vec<Located<Need>>,
    /// Where the role is written, for messages about it.
    pub location: Location,
}

/// A role's settings for SQL resources, written at the role's top level (`guardrails`,
/// `masking`, `record_rows`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlRole {
    /// What sessions of this role may run: a built-in profile or one under
    /// `policy.guardrails` (always defined in a loaded configuration). `None` sets no statement
    /// guardrails: the database account's own privileges are the limit.
    pub guardrails: Option<GuardrailsRef>,
    /// The name of the masking profile under `policy.masking` (always defined in a loaded
    /// configuration) applied to what sessions of this role see; `None` masks nothing.
    pub masking: Option<String>,
    /// How many (masked) result rows per statement the recording keeps (`record_rows`,
    /// default 0: statements, outcomes and row counts only).
    pub record_rows: u32,
    /// What happens to statements that change anything when the session came through
    /// `sluice mcp` (`agent_writes`); `None`: the same as for people.
    pub agent_writes: Option<AgentWrites>,
}

/// `agent_writes`: writes by AI agents (sessions through `sluice mcp`) wait for a human, or
/// never run, while people with the same role write as the guardrails allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentWrites {
    /// Held until an approver agrees (`approve`).
    Approve,
    /// Refused (`block`).
    Block,
}

impl AgentWrites {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Block => "block",
        }
    }
}

/// A role's `ssh:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshRole {
    /// Whether sessions may open an interactive shell (default false once `ssh:` is written).
    pub shell: bool,
    /// Which exec commands run, are refused, or wait for approval.
    pub exec: SshExec,
    /// What SFTP, `scp`, `rsync` and `git` may do (`files`); `None`: no file transfers.
    pub files: Option<SshFiles>,
    /// `host:port` pairs (as the SSH host resolves them) that `ssh -L` may reach (`forward`).
    pub forward: Vec<String>,
    /// Logins on the host besides the resource's `user` that sessions may ask for (`logins`).
    pub logins: Vec<String>,
    /// Record what the client types (`record_input`, default false: passwords typed at
    /// prompts would be recorded too).
    pub record_input: bool,
    /// Remote forwards (`ssh -R`) may be opened on the host (`remote_forward`, default false).
    pub remote_forward: bool,
    /// The client's agent may be forwarded to the host (`agent`, default false).
    pub agent: bool,
}

/// A role's file rules: absolute path globs (`*` in a segment, `**` across), each covering the
/// tree below what it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshFiles {
    /// Nothing may be written (`read_only`).
    pub read_only: bool,
    /// When not empty, only these paths.
    pub allow: Vec<String>,
    /// Never these paths.
    pub deny: Vec<String>,
}

/// Exec rules: without `allow` rules every command not blocked runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshExec {
    /// Commands that may run.
    pub allow: Vec<ExecRuleSpec>,
    /// Commands that never run.
    pub block: Vec<ExecRuleSpec>,
    /// Commands that run once an approver agrees.
    pub approve: Vec<ExecRuleSpec>,
    /// Groups whose members may approve held commands (`approvers`); the role's approval
    /// groups when empty.
    pub approvers: Vec<String>,
}

/// One exec rule: a name and command globs over `program args…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRuleSpec {
    /// Named in refusals and approvals.
    pub name: String,
    /// Globs; one match is enough.
    pub commands: Vec<String>,
}

/// A role setting that only engines which understand the traffic can enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// `guardrails`: every statement decided before it runs.
    SqlGuardrails,
    /// `masking`: values rewritten in every result.
    SqlMasking,
    /// `record: required` or `record_rows` written out: what the session carries is recorded.
    ContentRecording,
    /// `ssh`: shell and exec rules.
    SshRules,
    /// `kube`: API request rules.
    KubeRules,
    /// `http`: method and path rules.
    HttpRules,
}

/// A role's `http:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRole {
    /// A built-in profile (`http-read-only`) whose rules come before the role's own.
    pub profile: Option<String>,
    /// Requests that may be sent; when any is written, nothing else is.
    pub allow: Vec<HttpRuleSpec>,
    /// Requests that are refused.
    pub block: Vec<HttpRuleSpec>,
    /// Requests that wait for an approver.
    pub approve: Vec<HttpRuleSpec>,
    /// Who may approve held requests; the role's approval groups when empty.
    pub approvers: Vec<String>,
    /// A masking profile whose detectors scan every JSON string and text line of responses.
    pub masking: Option<crate::location::Located<String>>,
    /// JSON paths whose values are redacted in every JSON response (`mask`).
    pub mask: Vec<crate::location::Located<String>>,
    /// Keep each answer's body (as sent, masked, up to 64 KiB) in the recording
    /// (`record_bodies`; off by default).
    pub record_bodies: bool,
}

/// One HTTP request rule; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRuleSpec {
    /// Named in refusals and approvals.
    pub name: String,
    /// Methods (`GET`, `POST`, ..., `*`), upper case.
    pub methods: Vec<String>,
    /// Path globs, e.g. `/v1/customers/*`.
    pub paths: Vec<String>,
}

/// A role's `kube:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeRole {
    /// A built-in profile (`kube-read-only`, `kube-guarded`) whose rules come before the
    /// role's own (`profile`).
    pub profile: Option<String>,
    /// Requests that may be sent; when any is written, nothing else is.
    pub allow: Vec<KubeRuleSpec>,
    /// Requests that are refused.
    pub block: Vec<KubeRuleSpec>,
    /// Requests that wait for an approver.
    pub approve: Vec<KubeRuleSpec>,
    /// Who may approve held requests; the role's approval groups when empty.
    pub approvers: Vec<String>,
    /// `Impersonate-Group` values sent with each request when the resource impersonates.
    pub groups: Vec<String>,
    /// A masking profile (`policy.masking`) whose detectors scan every string of every JSON
    /// response and every line of logs (`masking`).
    pub masking: Option<crate::location::Located<String>>,
    /// JSON paths whose values are redacted in every response (`mask`), e.g.
    /// `$.spec.containers[*].env[*].value`.
    pub mask: Vec<crate::location::Located<String>>,
    /// Keep each answer's body (as sent, masked, up to 64 KiB) in the recording
    /// (`record_bodies`; off by default, as PostgreSQL result rows are).
    pub record_bodies: bool,
}

/// One Kubernetes request rule; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeRuleSpec {
    /// Named in refusals and approvals.
    pub name: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `*`.
    pub verbs: Vec<String>,
    /// `pods`, `pods/exec`, `apps/deployments`, `apps/*`, `*`.
    pub resources: Vec<String>,
    /// Namespace globs.
    pub namespaces: Vec<String>,
    /// Name globs.
    pub names: Vec<String>,
}

impl Need {
    /// What the setting asks of an engine, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SqlGuardrails => {
                "statement guardrails need an engine that reads each SQL statement"
            }
            Self::SqlMasking => "masking needs an engine that reads each result value",
            Self::ContentRecording => {
                "a content recording needs an engine that reads what the session carries"
            }
            Self::SshRules => "shell and exec rules need the SSH engine",
            Self::KubeRules => "Kubernetes request rules need the Kubernetes engine",
            Self::HttpRules => "HTTP request rules need the HTTP engine",
        }
    }
}

/// Who must agree before a grant starts, and how many of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Members of any of these groups may vote; never empty in a loaded configuration.
    pub groups: Vec<String>,
    /// Distinct approvers needed; at least 1.
    pub count: u32,
    /// Whether the requester may approve their own request (never, unless written).
    pub self_approve: bool,
    /// An undecided request expires after this long.
    pub timeout: Duration,
}

/// How a rule changes the approval its roles would otherwise need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOverride {
    /// `approval: none`: grants through this rule start at once.
    None,
    /// Grants through this rule need this approval instead of the role's.
    Require(Approval),
}

/// Which roles a set of principals may request on a set of resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, recorded in audit events as the reason for a decision.
    pub name: String,
    /// Subject patterns (exact, or globs with `*` and `?`, so workload subjects such as
    /// `github:acme/api:refs/heads/main:*` can be matched); any match applies the rule.
    pub subjects: Vec<String>,
    /// Groups the rule applies to; a principal in any of them matches.
    pub groups: Vec<String>,
    /// Resource names or globs; empty means "any name" (then `labels` is not empty).
    pub resources: Vec<String>,
    /// Labels the resource must all carry with exactly these values; empty means no constraint.
    pub labels: BTreeMap<String, String>,
    /// Roles that may be requested through this rule; never empty, the first is the default.
    pub roles: Vec<String>,
    /// Replaces the roles' approval for grants through this rule.
    pub approval: Option<ApprovalOverride>,
    /// Where the rule is written, for messages about it.
    pub location: Location,
}

/// Who is asking (or voting): the identity behind a session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The user or workload subject, e.g. `alice` or `github:acme/api:refs/heads/main:deploy`.
    pub subject: &'a str,
    /// The groups the identity provider or trust rule gave them.
    pub groups: &'a [String],
}

/// The answer to a request for a role on a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A grant may be created (at once, or once approved when `approval` is set).
    Grant(Grantable),
    /// No rule allows it.
    Refuse(Refusal),
}

/// What a grant would be: the facts the broker stores and audits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grantable {
    /// The rule that allowed it.
    pub rule: String,
    /// The role granted.
    pub role: String,
    /// The grant's lifetime: the request's, the role's default, or the role's cap.
    pub ttl: Duration,
    /// The TTL asked for, only when it was longer than the role's `max_ttl` and was capped, so
    /// the requester can be told.
    pub requested_ttl: Option<Duration>,
    /// The effective approval: the rule's override, else the role's; `None` grants at once.
    pub approval: Option<Approval>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal, for error codes (never classify by the message).
    pub kind: RefusalKind,
    /// A sentence for the requester, naming the roles they could request instead.
    pub message: String,
}

/// Classifies a [`Refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// No rule gives the principal any role on the resource.
    NoAccess,
    /// Some rule gives the principal a role on the resource, but not the one asked for.
    RoleNotAllowed,
    /// The role asked for is not defined at all (probably a typo).
    UnknownRole,
}

/// The state of an approval after the votes cast so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// Enough distinct approvers said yes.
    Approved,
    /// Someone said no; one valid deny is enough.
    Denied {
        /// The first approver who denied.
        by: String,
    },
    /// Not decided yet.
    Waiting {
        /// Distinct approvers who said yes so far.
        have: u32,
        /// Distinct approvers needed in total (the approval's `count`).
        need: u32,
    },
}

impl Policy {
    /// Decides a request by `who` for `role` (or the default role when `None`) on `resource`,
    /// lasting `ttl` (or the role's default when `None`).
    ///
    /// The first rule in file order that applies to the principal, covers the resource and lists
    /// the role wins. Without a role, the first rule that applies and covers wins and its first
    /// role is used. A TTL above the role's `max_ttl` is capped, not refused.
    pub fn decide(
        &self,
        who: &Principal<'_>,
        resource: &Resource,
        role: Option<&str>,
        ttl: Option<Duration>,
    ) -> Decision {
        for rule in self.matching(who, resource) {
            let wanted = match role {
                Some(role) if rule.roles.iter().any(|listed| listed == role) => role,
                Some(_) => continue,
                None => match rule.roles.first() {
                    Some(first) => first.as_str(),
                    None => continue,
                },
            };
            // A loaded configuration defines every role a rule lists; a hand-built policy that
            // does not cannot grant what it never defined.
            let Some(definition) = self.role(wanted) else {
                continue;
            };
            return Decision::Grant(grantable(rule, definition, ttl));
        }
        Decision::Refuse(self.refusal(who, resource, role))
    }

    /// Every `(role, rule name)` the principal could request on the resource, in rule order,
    /// each role once (with the rule [`Policy::decide`] would pick for it).
    pub fn requestable(&self, who: &Principal<'_>, resource: &Resource) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = Vec::new();
        for rule in self.matching(who, resource) {
            for role in &rule.roles {
                if self.role(role).is_some() && !found.iter().any(|(seen, _)| seen == role) {
                    found.push((role.clone(), rule.name.clone()));
                }
            }
        }
        found
    }

    /// The role with this name, if defined.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.name == name)
    }

    /// The rule with this name, if defined (to show where a decision's rule is written).
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// The guardrail profile with this name under `policy.guardrails`, if defined; built-ins
    /// are not profiles here (see [`GuardrailsRef`]).
    pub fn guardrail_profile(&self, name: &str) -> Option<&GuardrailProfile> {
        self.guardrails.iter().find(|profile| profile.name == name)
    }

    /// The masking profile with this name, if defined.
    pub fn masking_profile(&self, name: &str) -> Option<&MaskingProfile> {
        self.masking.iter().find(|profile| profile.name == name)
    }

    /// The first rule that applies to `subject` or one of `groups` and covers the resource
    /// named `resource`, whatever its roles; `None` means no access.
    ///
    /// Superseded by [`Policy::decide`], kept until the broker asks for roles. Only the name is
    /// known here, so a rule that constrains labels never matches: without the labels it cannot
    /// be shown to cover the resource, and guessing would grant too much.
    pub fn allowing(&self, subject: &str, groups: &[String], resource: &str) -> Option<&Rule> {
        let who = Principal { subject, groups };
        self.rules.iter().find(|rule| {
            rule.applies_to(&who) && rule.labels.is_empty() && rule.covers_name(resource)
        })
    }

    /// Rules that apply to `who` and cover `resource`, in file order.
    fn matching<'p>(
        &'p self,
        who: &'p Principal<'_>,
        resource: &'p Resource,
    ) -> impl Iterator<Item = &'p Rule> {
        self.rules
            .iter()
            .filter(move |rule| rule.applies_to(who) && rule.covers(resource))
    }

    /// The refusal for a request [`Policy::decide`] found no rule for.
    fn refusal(&self, who: &Principal<'_>, resource: &Resource, role: Option<&str>) -> Refusal {
        let options = self.requestable(who, resource);
        let listed = options
            .iter()
            .map(|(role, _)| role.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let person = describe(who);
        let name = &resource.name;
        let no_access = format!("policy gives {person} no access to \"{name}\"");
        match role {
            Some(role) if self.role(role).is_none() => {
                let mut message = format!("there is no role \"{role}\"");
                let close =
                    crate::extract::suggest(role, self.roles.iter().map(|r| r.name.as_str()));
                if let Some(close) = close {
                    // Infallible: writing to a String cannot fail.
                    let _ = write!(message, " (did you mean \"{close}\"?)");
                }
                if options.is_empty() {
                    let _ = write!(message, "; {no_access}");
                } else {
                    let _ = write!(message, "; roles you may request on \"{name}\": {listed}");
                }
                Refusal {
                    kind: RefusalKind::UnknownRole,
                    message,
                }
            }
            Some(role) if !options.is_empty() => Refusal {
                kind: RefusalKind::RoleNotAllowed,
                message: format!(
                    "no policy rule gives {person} the role \"{role}\" on \"{name}\"; roles you \
                     may request there: {listed}"
                ),
            },
            _ => Refusal {
                kind: RefusalKind::NoAccess,
                message: no_access,
            },
        }
    }
}

/// The grant `rule` allows for `role`, with the TTL defaulted or capped.
fn grantable(rule: &Rule, role: &Role, ttl: Option<Duration>) -> Grantable {
    let (ttl, requested_ttl) = match ttl {
        None => (role.default_ttl, None),
        Some(asked) if asked > role.max_ttl => (role.max_ttl, Some(asked)),
        Some(asked) => (asked, None),
    };
    let approval = match &rule.approval {
        None => role.approval.clone(),
        Some(ApprovalOverride::None) => None,
        Some(ApprovalOverride::Require(approval)) => Some(approval.clone()),
    };
    Grantable {
        rule: rule.name.clone(),
        role: role.name.clone(),
        ttl,
        requested_ttl,
        approval,
    }
}

/// `alice (groups: dev, ops)`, or `(groups: none)`, as refusals name the principal.
fn describe(who: &Principal<'_>) -> String {
    let groups = if who.groups.is_empty() {
        "none".to_owned()
    } else {
        who.groups.join(", ")
    };
    format!("{} (groups: {groups})", who.subject)
}

impl Rule {
    /// True when a subject pattern matches the principal's subject or the rule shares a group
    /// with them.
    pub fn applies_to(&self, who: &Principal<'_>) -> bool {
        self.subjects
            .iter()
            .any(|pattern| subject_match(pattern, who.subject))
            || self.groups.iter().any(|group| who.groups.contains(group))
    }

    /// True when the resource's name matches `resources` (or `resources` is empty) and it
    /// carries every label in `labels`. A rule with neither covers nothing.
    pub fn covers(&self, resource: &Resource) -> bool {
        let constrained = !self.resources.is_empty() || !self.labels.is_empty();
        let name_ok = self.resources.is_empty() || self.covers_name(&resource.name);
        let labels_ok = self
            .labels
            .iter()
            .all(|(key, value)| resource.labels.get(key) == Some(value));
        constrained && name_ok && labels_ok
    }

    /// True when one of the rule's resource patterns matches the name.
    fn covers_name(&self, name: &str) -> bool {
        self.resources
            .iter()
            .any(|pattern| glob_match(pattern, name))
    }
}

/// May `approver` vote on a request by `requester` that needs `approval`? `Err` says why not,
/// in words for the approver.
pub fn may_decide(
    approval: &Approval,
    approver: &Principal<'_>,
    requester: &str,
) -> Result<(), String> {
    if !approval
        .groups
        .iter()
        .any(|group| approver.groups.contains(group))
    {
        return Err(format!(
            "you are not in any of the approver groups: {}",
            approval.groups.join(", ")
        ));
    }
    if !approval.self_approve && approver.subject == requester {
        return Err("self-approval is not allowed for this role".to_owned());
    }
    Ok(())
}

/// The state of a request after `votes` (approver subject, approve?), in the order cast.
///
/// Votes must already have passed [`may_decide`]. Each approver counts once however often they
/// vote; any deny denies (the first one is named); otherwise the request is approved once the
/// distinct yes-votes reach `count`.
pub fn tally(approval: &Approval, votes: &[(String, bool)]) -> Tally {
    let mut approvers: Vec<&str> = Vec::new();
    for (approver, approve) in votes {
        if !approve {
            return Tally::Denied {
                by: approver.clone(),
            };
        }
        if !approvers.contains(&approver.as_str()) {
            approvers.push(approver);
        }
    }
    let have = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
    if have >= approval.count {
        Tally::Approved
    } else {
        Tally::Waiting {
            have,
            need: approval.count,
        }
    }
}

/// True when a pattern contains glob characters (otherwise it must name an existing resource).
pub(crate) fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Matches a subject against a pattern part by part: both are split at `:` and must have the
/// same number of parts, each matched with [`glob_match`]. So `*` and `?` never match a `:`,
/// and free text inside a workload subject (a GitHub workflow name such as
/// `x:refs/heads/main:y`) cannot shift the parts a pattern pins, such as the branch in
/// `github:acme/api:refs/heads/main:*`.
pub fn subject_match(pattern: &str, subject: &str) -> bool {
    let mut patterns = pattern.split(':');
    let mut parts = subject.split(':');
    loop {
        match (patterns.next(), parts.next()) {
            (Some(p), Some(s)) if glob_match(p, s) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` exactly one.
///
/// Greedy with a single backtrack point, so it runs in O(pattern × text) worst case and cannot
/// be made to explode by a hostile pattern.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}
