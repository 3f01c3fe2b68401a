//! A role's Kubernetes rules and the built-in profiles, and the decision on one request.
//!
//! ```text
//!  Attributes ──▶ suspicious path? ──yes──▶ Block (kube:suspicious-path)
//!                   │ no
//!                   ▼
//!                 non-resource (discovery, /version, /openapi)? ──yes──▶ Allow
//!                   │ no
//!                   ▼
//!                 a block rule matches?   ──yes──▶ Block  (that rule)
//!                 an approve rule matches? ──yes──▶ Hold   (that rule)
//!                 no allow rules, or one matches? ──yes──▶ Allow
//!                   │ otherwise
//!                   ▼
//!                 Block (kube:not-allowed)
//! ```
//!
//! Non-resource requests are always allowed: kubectl cannot do anything without discovery and
//! the OpenAPI documents, and they hold no objects. What they reveal is which APIs exist.
//!
//! A rule matches when each of its fields does; an empty field matches anything:
//! - `verbs`: exact verbs, or `*`.
//! - `resources`: `pods` (core group, no subresource), `pods/exec` (core resource and
//!   subresource), `apps/deployments` and `apps/deployments/scale` (group first), `apps/*` (any
//!   resource of the group, subresources included), `*` (anything), `*/status` (that
//!   subresource of any resource in any group). A two-part entry starts with a group when its
//!   first part has a dot or is one of the built-in groups without one (`apps`, `batch`,
//!   `policy`, `autoscaling`, `extensions`); otherwise it is a core resource and its
//!   subresource. As in RBAC, `pods` does not cover `pods/exec`. Each part is a glob.
//! - `namespaces` and `names`: globs. A request without a namespace (cluster-scoped, or across
//!   all namespaces) or without a name (a list) is matched only by `*`.

use serde_json::{Value, json};

use super::request::{Attributes, suspicious};
use sluice_engine::glob::glob;

/// API groups without a dot in their name; any other group has one (CRD groups must).
const DOTLESS_GROUPS: [&str; 5] = ["apps", "batch", "policy", "autoscaling", "extensions"];

/// The verbs that change something.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The verbs the API server's request attributes produce, for [`KubeRules::validate`].
const KNOWN_VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// One rule: which requests it covers. Empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeRule {
    /// Named in refusals and audit (`kube-guarded:no-namespace-delete`).
    pub name: String,
    /// Verbs, exact or `*`.
    pub verbs: Vec<String>,
    /// Resource patterns (see the module documentation).
    pub resources: Vec<String>,
    /// Namespace globs.
    pub namespaces: Vec<String>,
    /// Object name globs.
    pub names: Vec<String>,
}

impl KubeRule {
    /// Whether the rule covers the request.
    pub fn matches(&self, a: &Attributes) -> bool {
        let verb = self.verbs.is_empty() || self.verbs.iter().any(|v| v == "*" || *v == a.verb);
        let resource =
            self.resources.is_empty() || self.resources.iter().any(|r| resource_matches(r, a));
        verb && resource
            && globs_match(&self.namespaces, &a.namespace)
            && globs_match(&self.names, &a.name)
    }
}

/// A role's rules. Block wins over approve, approve over allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeRules {
    /// When not empty, only what these (or `approve`) cover is allowed.
    pub allow: Vec<KubeRule>,
    /// Refused, whatever else matches.
    pub block: Vec<KubeRule>,
    /// Held for a person's approval.
    pub approve: Vec<KubeRule>,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Relay it.
    Allow,
    /// Refuse it (see [`forbidden_status`]).
    Block {
        /// The rule that refused it, or `kube:not-allowed` / `kube:suspicious-path`.
        rule: String,
        /// A sentence naming the rule and what was refused.
        reason: String,
    },
    /// Wait for approval.
    Hold {
        /// The approve rule that matched.
        rule: String,
        /// A sentence naming the rule and what waits.
        reason: String,
    },
}

impl KubeRules {
    /// The decision on one request (see the module documentation for the order).
    pub fn judge(&self, a: &Attributes) -> Decision {
        if let Some(why) = suspicious(&a.path) {
            return Decision::Block {
                rule: "kube:suspicious-path".to_owned(),
                reason: format!("the request to {:?} is refused: {why}", a.path),
            };
        }
        if !a.resource_request {
            return Decision::Allow;
        }
        let what = || {
            let verb = if a.verb.is_empty() {
                "(no verb)"
            } else {
                &a.verb
            };
            format!("{verb} of {}", a.target())
        };
        if let Some(rule) = self.block.iter().find(|r| r.matches(a)) {
            return Decision::Block {
                rule: rule.name.clone(),
                reason: format!("{} is blocked by rule '{}'", what(), rule.name),
            };
        }
        if let Some(rule) = self.approve.iter().find(|r| r.matches(a)) {
            return Decision::Hold {
                rule: rule.name.clone(),
                reason: format!("{} needs approval by rule '{}'", what(), rule.name),
            };
        }
        if self.allow.is_empty() || self.allow.iter().any(|r| r.matches(a)) {
            return Decision::Allow;
        }
        Decision::Block {
            rule: "kube:not-allowed".to_owned(),
            reason: format!("{} is not allowed by any rule", what()),
        }
    }

    /// A built-in profile by name: `kube-read-only` or `kube-guarded`.
    ///
    /// - `kube-read-only`: get, list and watch anything, Secrets included (their values are
    ///   masked in responses by [`crate::mask`]); every write blocked; exec, attach,
    ///   port-forward and proxy blocked, reads through a proxy included.
    /// - `kube-guarded`: writes allowed; deleting namespaces, persistent volumes, CRDs or nodes
    ///   blocked; other deletes, and exec, attach and port-forward, held for approval.
    pub fn profile(name: &str) -> Option<KubeRules> {
        match name {
            "kube-read-only" => Some(KubeRules {
                allow: vec![rule("kube-read-only:read", &["get", "list", "watch"], &[])],
                block: vec![
                    rule(
                        "kube-read-only:no-exec",
                        &[],
                        &["pods/exec", "pods/attach", "pods/portforward", "*/proxy"],
                    ),
                    rule("kube-read-only:no-writes", &WRITE_VERBS, &[]),
                ],
                approve: Vec::new(),
            }),
            "kube-guarded" => {
                let deletes = ["delete", "deletecollection"];
                Some(KubeRules {
                    allow: Vec::new(),
                    block: vec![
                        rule(
                            "kube-guarded:no-namespace-delete",
                            &deletes,
                            &["namespaces"],
                        ),
                        rule(
                            "kube-guarded:no-persistentvolume-delete",
                            &deletes,
                            &["persistentvolumes"],
                        ),
                        rule(
                            "kube-guarded:no-crd-delete",
                            &deletes,
                            &["apiextensions.k8s.io/customresourcedefinitions"],
                        ),
                        rule("kube-guarded:no-node-delete", &deletes, &["nodes"]),
                    ],
                    approve: vec![
                        rule(
                            "kube-guarded:exec-needs-approval",
                            &[],
                            &["pods/exec", "pods/attach", "pods/portforward"],
                        ),
                        rule("kube-guarded:delete-needs-approval", &deletes, &[]),
                    ],
                })
            }
            _ => None,
        }
    }

    /// Every problem with the rules, each naming its rule: unknown verbs, and resource
    /// patterns that cannot match anything (empty parts, more than three parts). A config
    /// loader should refuse rules with problems: a block rule that matches nothing fails open.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (list, rules) in [
            ("allow", &self.allow),
            ("block", &self.block),
            ("approve", &self.approve),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                let label = if rule.name.is_empty() {
                    format!("{list}[{i}]")
                } else {
                    format!("{list}[{i}] '{}'", rule.name)
                };
                for verb in &rule.verbs {
                    if verb != "*" && !KNOWN_VERBS.contains(&verb.as_str()) {
                        problems.push(format!(
                            "{label}: unknown verb {verb:?} (known: {}, or *)",
                            KNOWN_VERBS.join(" ")
                        ));
                    }
                }
                for resource in &rule.resources {
                    let parts: Vec<&str> = resource.split('/').collect();
                    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                        problems.push(format!(
                            "{label}: resource {resource:?} is not RESOURCE, RESOURCE/SUB, \
                             GROUP/RESOURCE or GROUP/RESOURCE/SUB"
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A profile rule over any namespace and name.
fn rule(name: &str, verbs: &[&str], resources: &[&str]) -> KubeRule {
    KubeRule {
        name: name.to_owned(),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        namespaces: Vec::new(),
        names: Vec::new(),
    }
}

/// Whether namespace or name globs cover `value`; an empty value only by `*`.
fn globs_match(patterns: &[String], value: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    if value.is_empty() {
        return patterns.iter().any(|p| p == "*");
    }
    patterns.iter().any(|p| glob(p, value))
}

/// Whether one resource pattern covers the request's group, resource and subresource.
fn resource_matches(pattern: &str, a: &Attributes) -> bool {
    if pattern == "*" {
        return true;
    }
    let is_group = |part: &str| part.contains('.') || DOTLESS_GROUPS.contains(&part);
    // (group pattern, None = any group; resource pattern; subresource pattern)
    let (group, resource, sub) = match pattern.split('/').collect::<Vec<_>>().as_slice() {
        [resource] => (Some(""), *resource, None),
        ["*", sub] => (None, "*", Some(*sub)),
        [group, resource] if is_group(group) => (Some(*group), *resource, None),
        [resource, sub] => (Some(""), *resource, Some(*sub)),
        [group, resource, sub] => (Some(*group), *resource, Some(*sub)),
        _ => return false,
    };
    let group_ok = match group {
        None => true,
        Some("") => a.api_group.is_empty(),
        Some(g) => glob(g, &a.api_group),
    };
    let rest_ok = match sub {
        // `GROUP/*` covers every resource of the group and their subresources, as `*` does.
        None if resource == "*" => true,
        None => a.subresource.is_empty() && glob(resource, &a.resource),
        Some(sub) => {
            !a.subresource.is_empty() && glob(resource, &a.resource) && glob(sub, &a.subresource)
        }
    };
    group_ok && rest_ok
}

/// The `metav1.Status` the API server would send for a refused request (send it with HTTP
/// status 403), so kubectl prints `Error from server (Forbidden): deployments.apps "web" is
/// forbidden: sluice: <reason>`. The rule is also given as a cause, for programs.
pub fn forbidden_status(a: &Attributes, rule: &str, reason: &str) -> Value {
    // As apierrors.NewForbidden: "RESOURCE.GROUP "NAME" is forbidden: ...".
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = match (qualified.is_empty(), a.name.is_empty()) {
        (true, _) => format!("forbidden: sluice: {reason}"),
        (false, true) => format!("{qualified} is forbidden: sluice: {reason}"),
        (false, false) => format!("{qualified} {:?} is forbidden: sluice: {reason}", a.name),
    };
    // StatusDetails leaves out empty fields, as the API server's JSON does.
    let mut details = serde_json::Map::new();
    for (key, value) in [
        ("name", &a.name),
        ("group", &a.api_group),
        ("kind", &a.resource),
    ] {
        if !value.is_empty() {
            details.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
    details.insert(
        "causes".to_owned(),
        json!([{ "reason": "SluiceRule", "message": rule }]),
    );
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

#[cfg(test)]
mod tests;
