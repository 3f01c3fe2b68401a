//! The `policy` section: roles, and the rules that give them to people and workloads.
//!
//! Read like the rest of the schema (see `schema.rs`): every problem is recorded at its key and
//! the section is only built when there were none. Roles are read first, wherever they are
//! written, so rules can be checked against them. Cross-checks: a role's `default_ttl` is not
//! above its `max_ttl`; a rule names who (`subjects` or `groups`) and what (`resources` or
//! `labels`); plain resource names exist; every role a rule lists is defined; a role's
//! `guardrails` is a built-in or a profile and its `masking` a profile (those sections are read
//! by `profile_schema.rs`, before the roles). Names are checked against everything written under
//! `resources`, `policy.roles`, `policy.guardrails` and `policy.masking`, valid or not, so one
//! broken definition is reported once rather than again by everything that names it.

use std::time::Duration;

use crate::extract::{Cx, Item, join_key, suggest};
use crate::location::Located;
use crate::policy::{
    AgentWrites, Approval, ApprovalOverride, Auditors, Need, Policy, RecordMode, Role, Rule,
    SqlRole, is_glob,
};
use crate::profile_schema::{self, ProfileNames};
use crate::schema::{duration, is_resource_name_char, labels, optional};
use crate::tree::NodeKind;

const POLICY_KEYS: &[&str] = &["guardrails", "masking", "roles", "rules", "auditors"];
const AUDITOR_KEYS: &[&str] = &["subjects", "groups"];
const ROLE_KEYS: &[&str] = &[
    "description",
    "max_ttl",
    "default_ttl",
    "approval",
    "guardrails",
    "masking",
    "record",
    "record_rows",
    "agent_writes",
    "ssh",
    "kube",
    "http",
];
const APPROVAL_KEYS: &[&str] = &["groups", "count", "self_approve", "timeout"];
const RULE_KEYS: &[&str] = &[
    "name",
    "subjects",
    "groups",
    "resources",
    "labels",
    "roles",
    "approval",
];

/// A role's default grant lifetime when it only sets `max_ttl` (or `max_ttl`, when shorter):
/// long enough for a task, short enough that a forgotten grant does not linger.
const DEFAULT_ROLE_TTL: Duration = Duration::from_secs(60 * 60);
/// How long a request waits for its approvers before it expires.
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The names written under a section of name-keyed definitions (`policy.roles`,
/// `policy.guardrails`, `policy.masking`), as far as references can be checked against them.
#[derive(Debug)]
pub(crate) enum Names {
    /// The section is not written at all.
    Absent,
    /// The section is written but is not a mapping (already reported): references are not
    /// checked against it, which would only repeat that error.
    Unreadable,
    /// Every name written, valid or not.
    Written(Vec<String>),
}

/// Reads the `policy` section; `resource_names` is every name written under `resources`.
pub(crate) fn policy(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    resource_names: &[String],
) -> Option<Policy> {
    let fields = cx.fields(item, POLICY_KEYS)?;
    let (guardrails, guardrail_names) = match fields.entry("guardrails") {
        Some(item) => profile_schema::guardrails(cx, &item),
        None => (Some(Vec::new()), Names::Absent),
    };
    let (masking, masking_names) = match fields.entry("masking") {
        Some(item) => profile_schema::masking(cx, &item),
        None => (Some(Vec::new()), Names::Absent),
    };
    let profiles = ProfileNames {
        guardrails: guardrail_names,
        masking: masking_names,
    };
    let (roles, role_names) = match fields.entry("roles") {
        Some(item) => roles(cx, &item, &profiles),
        None => (Some(Vec::new()), Names::Absent),
    };
    let rules = match fields.entry("rules") {
        None => Some(Vec::new()),
        Some(rules_item) => cx.list(&rules_item, "a list of rules").and_then(|items| {
            let mut rules = Some(Vec::with_capacity(items.len()));
            // Name and line of each rule read so far, to report duplicates against the first.
            let mut seen: Vec<(String, usize)> = Vec::new();
            for item in &items {
                let rule = rule(cx, item, resource_names, &role_names, &mut seen);
                rules = rules.zip(rule).map(|(mut all, one)| {
                    all.push(one);
                    all
                });
            }
            rules
        }),
    };
    let auditors = match fields.entry("auditors") {
        None => Some(Auditors::default()),
        Some(item) => auditors(cx, &item),
    };
    Some(Policy {
        roles: roles?,
        rules: rules?,
        guardrails: guardrails?,
        masking: masking?,
        auditors: auditors?,
    })
}

/// `policy.auditors`: `subjects` and/or `groups`.
fn auditors(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Auditors> {
    let fields = cx.fields(item, AUDITOR_KEYS)?;
    let subjects = optional(fields.optional("subjects"), |item| cx.string_list(item))
        .map(|list| list.map(values).unwrap_or_default());
    let groups = optional(fields.optional("groups"), |item| cx.string_list(item))
        .map(|list| list.map(values).unwrap_or_default());
    let auditors = Auditors {
        subjects: subjects?,
        groups: groups?,
    };
    if auditors.subjects.is_empty() && auditors.groups.is_empty() {
        cx.invalid(
            item,
            "name the auditors with subjects and/or groups, e.g. {groups: [security]}; remove \
             the key to let everyone see only their own sessions",
        );
        return None;
    }
    Some(auditors)
}

/// A role's `record`: `required` or `best-effort`.
fn record_mode(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<RecordMode> {
    let text = cx.text(item)?;
    match text.as_str() {
        "required" => Some(RecordMode::Required),
        "best-effort" => Some(RecordMode::BestEffort),
        other => {
            let hint = suggest(other, ["required", "best-effort"])
                .map(|close| format!("; did you mean \"{close}\"?"))
                .unwrap_or_default();
            cx.invalid(
                item,
                format!(
                    "unknown record mode \"{other}\": write required (refuse or end sessions \
                     that cannot be recorded) or best-effort (go on, and audit the failure){hint}"
                ),
            );
            None
        }
    }
}

/// A role's `agent_writes`: `approve` or `block`.
fn agent_writes(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<AgentWrites> {
    let text = cx.text(item)?;
    match text.as_str() {
        "approve" => Some(AgentWrites::Approve),
        "block" => Some(AgentWrites::Block),
        other => {
            cx.invalid(
                item,
                format!(
                    "unknown agent_writes \"{other}\": write approve (an agent's writes wait \
                     for an approver) or block (an agent never writes)"
                ),
            );
            None
        }
    }
}

/// A role's `record_rows`: how many result rows per statement to keep, 0 to 10000.
fn record_rows(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<u32> {
    let text = cx.text(item)?;
    match text.trim().parse::<u32>() {
        Ok(rows) if rows <= 10_000 => Some(rows),
        _ => {
            cx.invalid(
                item,
                format!(
                    "expected a whole number of result rows to record per statement, 0 to \
                     10000, found \"{text}\""
                ),
            );
            None
        }
    }
}

/// Reads every role, and returns the names written for checking rules.
fn roles(cx: &mut Cx<'_>, item: &Item<'_>, profiles: &ProfileNames) -> (Option<Vec<Role>>, Names) {
    let Some(fields) = cx.mapping(
        item,
        "a mapping of role names to roles, e.g. {read: {max_ttl: 8h}}",
    ) else {
        return (None, Names::Unreadable);
    };
    let mut names = Vec::new();
    let mut roles = Some(Vec::new());
    for (name, item) in fields.all() {
        names.push(name.to_owned());
        let role = role(cx, name, &item, profiles);
        roles = roles.zip(role).map(|(mut all, one)| {
            all.push(one);
            all
        });
    }
    (roles, Names::Written(names))
}

/// `[a-z0-9][a-z0-9-_]{0,62}`: resource names without the dot, so a role can follow a resource
/// name after a dot in messages and identifiers without ambiguity. Profile names follow it too.
pub(crate) fn is_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

fn role(cx: &mut Cx<'_>, name: &str, item: &Item<'_>, profiles: &ProfileNames) -> Option<Role> {
    let name_ok = is_role_name(name);
    if !name_ok {
        cx.invalid(
            item,
            "invalid role name: use 1 to 63 lowercase letters, digits, '-' or '_', starting with \
             a letter or digit",
        );
    }
    let fields = cx.fields(item, ROLE_KEYS)?;
    let description = optional(fields.optional("description"), |item| cx.string(item));
    let max_ttl = cx
        .required(&fields, "max_ttl")
        .and_then(|item| duration(cx, &item));
    let default_item = fields.optional("default_ttl");
    let default_ttl = optional(default_item.clone(), |item| duration(cx, item));
    let approval = match fields.entry("approval") {
        None => Some(None),
        Some(item) if item.node.kind == NodeKind::Null => {
            // An `approval:` whose lines are all commented out must not silently mean
            // "grant at once".
            cx.invalid(
                &item,
                "a value is required: who must approve, e.g. {groups: [dba-leads]}; remove the \
                 key to grant this role at once",
            );
            None
        }
        Some(item) => approval(cx, &item).map(Some),
    };
    let mut needs = Vec::new();
    if let Some(item) = fields.optional("guardrails") {
        needs.push(cx.located(&item, Need::SqlGuardrails));
    }
    if let Some(item) = fields.optional("masking") {
        needs.push(cx.located(&item, Need::SqlMasking));
    }
    let guardrails = optional(fields.optional("guardrails"), |item| {
        profile_schema::guardrails_ref(cx, item, &profiles.guardrails)
    });
    let masking = optional(fields.optional("masking"), |item| {
        profile_schema::masking_ref(cx, item, &profiles.masking)
    });
    let ssh = optional(fields.optional("ssh"), |item| {
        crate::ssh_schema::role(cx, item)
    });
    if let Some(item) = fields.optional("ssh") {
        needs.push(cx.located(&item, Need::SshRules));
    }
    let kube = optional(fields.optional("kube"), |item| {
        crate::kube_schema::role(cx, item)
    });
    if let Some(item) = fields.optional("kube") {
        needs.push(cx.located(&item, Need::KubeRules));
    }
    let http = optional(fields.optional("http"), |item| {
        crate::http_schema::role(cx, item)
    });
    if let Some(item) = fields.optional("http") {
        needs.push(cx.located(&item, Need::HttpRules));
    }
    let agent_writes = optional(fields.optional("agent_writes"), |item| {
        agent_writes(cx, item)
    });
    // Only an engine that classifies statements can tell a write from a read.
    if let Some(item) = fields.optional("agent_writes") {
        needs.push(cx.located(&item, Need::SqlGuardrails));
    }
    let record = optional(fields.optional("record"), |item| record_mode(cx, item));
    let record_rows = optional(fields.optional("record_rows"), |item| record_rows(cx, item))
        .map(|rows| rows.unwrap_or(0));
    // Written out, `record: required` and `record_rows` ask for a recording of what the session
    // carries; the default `required` only asks that the session's record can be written.
    if let (Some(item), Some(Some(RecordMode::Required))) = (fields.optional("record"), &record) {
        needs.push(cx.located(&item, Need::ContentRecording));
    }
    if let (Some(item), Some(rows)) = (fields.optional("record_rows"), &record_rows)
        && *rows > 0
    {
        needs.push(cx.located(&item, Need::ContentRecording));
    }
    let max_ttl = max_ttl?;
    let default_ttl = match (default_ttl?, &default_item) {
        (Some(default), Some(default_item)) if default > max_ttl => {
            cx.invalid(
                default_item,
                format!(
                    "default_ttl ({}) is longer than max_ttl ({})",
                    humantime::format_duration(default),
                    humantime::format_duration(max_ttl)
                ),
            );
            return None;
        }
        (Some(default), _) => default,
        (None, _) => DEFAULT_ROLE_TTL.min(max_ttl),
    };
    if !name_ok {
        return None;
    }
    Some(Role {
        name: name.to_owned(),
        description: description?,
        max_ttl,
        default_ttl,
        approval: approval?,
        record: record?.unwrap_or_default(),
        sql: SqlRole {
            guardrails: guardrails?,
            masking: masking?,
            record_rows: record_rows?,
            agent_writes: agent_writes?,
        },
        ssh: ssh?,
        kube: kube?,
        http: http?,
        needs,
        location: cx.location(item.pos),
    })
}

/// An approval mapping: `groups` (required, not empty), `count`, `self_approve`, `timeout`.
fn approval(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Approval> {
    let fields = cx.fields(item, APPROVAL_KEYS)?;
    let groups = cx.required(&fields, "groups").and_then(|list_item| {
        let groups = cx.string_list(&list_item)?;
        if groups.is_empty() {
            cx.invalid(
                &list_item,
                "list at least one group whose members may approve, e.g. [dba-leads]",
            );
            return None;
        }
        Some(groups)
    });
    let count = optional(fields.optional("count"), |item| count(cx, item)).map(|c| c.unwrap_or(1));
    let self_approve = optional(fields.optional("self_approve"), |item| cx.boolean(item))
        .map(|allowed| allowed.unwrap_or(false));
    let timeout = optional(fields.optional("timeout"), |item| duration(cx, item))
        .map(|timeout| timeout.unwrap_or(DEFAULT_APPROVAL_TIMEOUT));
    Some(Approval {
        groups: values(groups?),
        count: count?,
        self_approve: self_approve?,
        timeout: timeout?,
    })
}

/// The number of distinct approvers needed: a whole number, at least 1.
fn count(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<u32> {
    let text = cx.text(item)?;
    match text.trim().parse::<u32>() {
        Ok(0) => {
            cx.invalid(
                item,
                "must be at least 1; remove approval to grant without one",
            );
            None
        }
        Ok(count) => Some(count),
        Err(_) => {
            cx.invalid(
                item,
                format!("expected a whole number of approvers, e.g. 2, found \"{text}\""),
            );
            None
        }
    }
}

/// A rule's `approval`: `none`, or an approval mapping that replaces the roles' own.
fn approval_override(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<ApprovalOverride> {
    match &item.node.kind {
        NodeKind::Scalar(text) if text == "none" => Some(ApprovalOverride::None),
        NodeKind::Scalar(text) => {
            let message = match suggest(text, ["none"]) {
                Some(close) => format!("unknown approval \"{text}\"; did you mean \"{close}\"?"),
                None => format!(
                    "unknown approval \"{text}\"; write none, or a mapping with {}",
                    APPROVAL_KEYS.join(", ")
                ),
            };
            cx.invalid(item, message);
            None
        }
        NodeKind::Null => {
            cx.invalid(
                item,
                "a value is required: none to grant at once, or who must approve, e.g. \
                 {groups: [dba-leads], count: 2}",
            );
            None
        }
        _ => approval(cx, item).map(ApprovalOverride::Require),
    }
}

fn rule(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    resource_names: &[String],
    role_names: &Names,
    seen: &mut Vec<(String, usize)>,
) -> Option<Rule> {
    let fields = cx.fields(item, RULE_KEYS)?;
    let name = cx.required(&fields, "name").and_then(|name_item| {
        let name = cx.text(&name_item)?;
        if let Some((_, line)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
            cx.invalid(
                &name_item,
                format!("duplicate rule name \"{name}\" (first used at line {line})"),
            );
            return None;
        }
        seen.push((name.clone(), name_item.pos.line));
        Some(name)
    });
    let subjects = optional(fields.optional("subjects"), |item| cx.string_list(item))
        .map(Option::unwrap_or_default);
    let groups = optional(fields.optional("groups"), |item| cx.string_list(item))
        .map(Option::unwrap_or_default);
    if let (Some(subjects), Some(groups)) = (&subjects, &groups)
        && subjects.is_empty()
        && groups.is_empty()
    {
        cx.invalid(
            item,
            "a rule needs at least one entry in subjects or groups, otherwise it matches no one",
        );
    }
    let resources = optional(fields.optional("resources"), |list_item| {
        let patterns = cx.string_list(list_item)?;
        if patterns.is_empty() {
            cx.invalid(
                list_item,
                "list at least one resource name or glob, e.g. [\"*\"]",
            );
            return None;
        }
        let mut ok = true;
        for pattern in &patterns {
            if let Err(message) = check_pattern(&pattern.value, resource_names) {
                ok = false;
                cx.push(pattern.error(message));
            }
        }
        ok.then(|| values(patterns))
    });
    let labels =
        optional(fields.optional("labels"), |item| labels(cx, item)).map(Option::unwrap_or_default);
    if let (Some(None), Some(labels)) = (&resources, &labels)
        && labels.is_empty()
    {
        cx.error(
            item.pos,
            &join_key(&item.key, "resources"),
            "missing required key: a rule needs resources, labels or both, otherwise it covers \
             nothing",
        );
    }
    if fields.entry("roles").is_none() {
        // Said at length because every rule written before roles existed lacks it.
        cx.error(
            item.pos,
            &join_key(&item.key, "roles"),
            "missing required key: list the roles this rule gives, defined under policy.roles, \
             e.g. roles: [read]",
        );
    }
    let roles = fields.entry("roles").and_then(|list_item| {
        if list_item.node.kind == NodeKind::Null {
            cx.invalid(&list_item, "a value is required");
            return None;
        }
        let listed = cx.string_list(&list_item)?;
        if listed.is_empty() {
            cx.invalid(
                &list_item,
                "list at least one role, e.g. [read]; the first is the rule's default",
            );
            return None;
        }
        let mut ok = true;
        for (index, role) in listed.iter().enumerate() {
            let check = if listed[..index].iter().any(|r| r.value == role.value) {
                Err(format!("role \"{}\" is listed twice", role.value))
            } else {
                check_role(&role.value, role_names)
            };
            if let Err(message) = check {
                ok = false;
                cx.push(role.error(message));
            }
        }
        ok.then(|| values(listed))
    });
    let approval = match fields.entry("approval") {
        None => Some(None),
        Some(item) => approval_override(cx, &item).map(Some),
    };
    Some(Rule {
        name: name?,
        subjects: values(subjects?),
        groups: values(groups?),
        resources: resources?.unwrap_or_default(),
        labels: labels?,
        roles: roles?,
        approval: approval?,
        location: cx.location(item.pos),
    })
}

/// The values of located strings, once their locations have served for errors.
pub(crate) fn values(list: Vec<Located<String>>) -> Vec<String> {
    list.into_iter().map(|item| item.value).collect()
}

/// A role a rule lists must be defined under `policy.roles`.
fn check_role(role: &str, role_names: &Names) -> Result<(), String> {
    match role_names {
        Names::Unreadable => Ok(()),
        Names::Absent => Err(format!(
            "no role named \"{role}\": policy.roles is missing; define it there, e.g. \
             roles: {{{role}: {{max_ttl: 8h}}}}"
        )),
        Names::Written(names) if names.iter().any(|name| name == role) => Ok(()),
        Names::Written(names) if names.is_empty() => Err(format!(
            "no role named \"{role}\": policy.roles defines none"
        )),
        Names::Written(names) => Err(match suggest(role, names.iter().map(String::as_str)) {
            Some(close) => {
                format!("no role named \"{role}\" in policy.roles; did you mean \"{close}\"?")
            }
            None => format!(
                "no role named \"{role}\" in policy.roles (defined: {})",
                names.join(", ")
            ),
        }),
    }
}

/// A plain name must name a configured resource (a typo would otherwise silently grant nothing);
/// a glob must be able to match some valid name.
fn check_pattern(pattern: &str, resource_names: &[String]) -> Result<(), String> {
    if is_glob(pattern) {
        if pattern
            .chars()
            .all(|c| matches!(c, '*' | '?') || is_resource_name_char(c))
        {
            Ok(())
        } else {
            Err(format!(
                "pattern \"{pattern}\" can never match: resource names use lowercase letters, \
                 digits, '-', '_' and '.'"
            ))
        }
    } else if resource_names.iter().any(|name| name == pattern) {
        Ok(())
    } else {
        let close = suggest(pattern, resource_names.iter().map(String::as_str));
        Err(match close {
            Some(close) => {
                format!("no resource named \"{pattern}\" in resources; did you mean \"{close}\"?")
            }
            None => format!("no resource named \"{pattern}\" in resources"),
        })
    }
}
