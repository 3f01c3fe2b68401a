//! The Kubernetes parts of the configuration: `kind: kubernetes` resources (the API server,
//! its pinned CA, the broker's token, impersonation) and a role's `kube:` section (a profile,
//! allow/block/approve request rules, approvers, impersonated groups).
//!
//! ```yaml
//! resources:
//!   prod-cluster:
//!     kind: kubernetes
//!     address: k8s.internal:6443
//!     ca: /etc/sluice/k8s-ca.pem           # the only CA trusted for the API server
//!     token: file:/etc/sluice/k8s-token     # the broker's bearer token, or env:NAME
//!     # client_cert: file:/etc/sluice/k8s.crt  # or a client certificate (with client_key)
//!     impersonate: true                     # Impersonate-User = the Sluice subject
//! policy:
//!   roles:
//!     viewer:
//!       max_ttl: 8h
//!       kube: {profile: kube-read-only}
//!     deployer:
//!       max_ttl: 1h
//!       kube:
//!         profile: kube-guarded
//!         block: [{name: no-prod-secrets, resources: [secrets], namespaces: ["prod-*"]}]
//!         approve: [{name: prod-deletes, verbs: [delete], namespaces: ["prod-*"]}]
//!         approvers: [sre]
//!         groups: [deployers]               # Impersonate-Group
//!         masking: pii                      # a policy.masking profile: its detectors scan
//!                                           # every JSON string and log line
//!         mask: ["$.spec.containers[*].env[*].value"]   # redacted in every response
//!         record_bodies: true               # answers (masked, <= 64 KiB) kept in recordings
//! ```

use crate::extract::{Cx, Fields, Item};
use crate::model::KubeSpec;
use crate::policy::{KubeRole, KubeRuleSpec};
use crate::schema::{credential, optional};

const ROLE_KEYS: &[&str] = &[
    "profile",
    "allow",
    "block",
    "approve",
    "approvers",
    "groups",
    "masking",
    "mask",
    "record_bodies",
];
const RULE_KEYS: &[&str] = &["name", "verbs", "resources", "namespaces", "names"];
/// The built-in profiles (their rules live in the engine).
pub const PROFILES: &[&str] = &["kube-guarded", "kube-read-only"];
const VERBS: &[&str] = &[
    "*",
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The settings of a `kind: kubernetes` resource.
pub(crate) fn resource(
    cx: &mut Cx<'_>,
    fields: &Fields<'_>,
    address: Option<String>,
) -> Option<KubeSpec> {
    let ca = cx.required(fields, "ca").and_then(|item| {
        let path = cx.path(&item)?;
        Some(path)
    });
    let server_name = optional(fields.optional("server_name"), |item| cx.text(item));
    let token = optional(fields.optional("token"), |item| credential(cx, item));
    let client_cert = crate::schema::client_cert(cx, fields);
    let impersonate = optional(fields.optional("impersonate"), |item| cx.boolean(item));
    let (token, client_cert) = (token?, client_cert?);
    if token.is_none() && client_cert.is_none() {
        cx.missing(
            fields,
            "token",
            "the broker needs a credential for the API server: `token` (file:/env: of a bearer \
             token) or `client_cert` and `client_key`",
        );
        return None;
    }
    Some(KubeSpec {
        address: address?,
        ca: ca?,
        server_name: server_name?,
        token,
        client_cert,
        impersonate: impersonate?.unwrap_or(false),
    })
}

/// A role's `kube:` section.
pub(crate) fn role(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<KubeRole> {
    let fields = cx.fields(item, ROLE_KEYS)?;
    let profile = optional(fields.optional("profile"), |item| {
        let text = cx.text(item)?;
        if PROFILES.contains(&text.as_str()) {
            Some(text)
        } else {
            cx.invalid(
                item,
                crate::schema::unknown_choice("profile", &text, PROFILES),
            );
            None
        }
    });
    let mut list = |key: &str| optional(fields.optional(key), |item| rules(cx, item));
    let allow = list("allow");
    let block = list("block");
    let approve = list("approve");
    let names = |cx: &mut Cx<'_>, key: &str| {
        optional(fields.optional(key), |item| cx.string_list(item))
            .map(|v| v.unwrap_or_default().into_iter().map(|l| l.value).collect())
    };
    let approvers: Option<Vec<String>> = names(cx, "approvers");
    let groups: Option<Vec<String>> = names(cx, "groups");
    let masking = optional(fields.optional("masking"), |item| {
        let name = cx.text(item)?;
        Some(cx.located(item, name))
    });
    let mask = optional(fields.optional("mask"), |item| cx.string_list(item));
    let record_bodies = optional(fields.optional("record_bodies"), |item| cx.boolean(item));
    Some(KubeRole {
        profile: profile?,
        allow: allow?.unwrap_or_default(),
        block: block?.unwrap_or_default(),
        approve: approve?.unwrap_or_default(),
        approvers: approvers?,
        groups: groups?,
        masking: masking?,
        mask: mask?.unwrap_or_default(),
        record_bodies: record_bodies?.unwrap_or(false),
    })
}

fn rules(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Vec<KubeRuleSpec>> {
    crate::schema::list_of(
        cx,
        item,
        "a list of rules, e.g. [{name: no-ns-delete, verbs: [delete], resources: [namespaces]}]",
        rule,
    )
}

fn rule(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<KubeRuleSpec> {
    let fields = cx.fields(item, RULE_KEYS)?;
    let name = cx.required(&fields, "name").and_then(|item| cx.text(&item));
    let mut list = |key: &str| {
        optional(fields.optional(key), |item| cx.string_list(item)).map(|v| {
            v.unwrap_or_default()
                .into_iter()
                .map(|l| l.value)
                .collect::<Vec<_>>()
        })
    };
    let verbs = list("verbs");
    let resources = list("resources");
    let namespaces = list("namespaces");
    let names = list("names");
    if let (Some(verbs), Some(item)) = (&verbs, fields.optional("verbs"))
        && let Some(bad) = verbs.iter().find(|v| !VERBS.contains(&v.as_str()))
    {
        cx.invalid(&item, crate::schema::unknown_choice("verb", bad, VERBS));
        return None;
    }
    Some(KubeRuleSpec {
        name: name?,
        verbs: verbs?,
        resources: resources?,
        namespaces: namespaces?,
        names: names?,
    })
}
