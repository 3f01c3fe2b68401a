//! The resource types this server knows and the discovery documents built from them
//! (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`), shaped like the real API server's legacy
//! (non-aggregated) discovery.

use serde_json::{Value, json};

/// One REST resource type.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// URL segment and RBAC resource name.
    pub plural: &'static str,
    /// `singularName` in discovery.
    pub singular: &'static str,
    /// Object kind; the list kind is this plus `List`.
    pub kind: &'static str,
    /// Lives under `/namespaces/NS/`.
    pub namespaced: bool,
    /// kubectl's abbreviations (`po`, `cm`).
    pub short_names: &'static [&'static str],
    /// Discovery `categories` (`all`).
    pub categories: &'static [&'static str],
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// Every resource type served.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
    },
];

impl ResourceDef {
    /// `v1` or `apps/v1`, the objects' `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.plural == "namespaces" {
            NS_VERBS
        } else {
            VERBS
        }
    }
}

/// The resource served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by plural, singular, kind or short name, case-insensitively
/// (for the test-side seeding helpers).
pub fn lookup(name: &str) -> Option<&'static ResourceDef> {
    let n = name.to_ascii_lowercase();
    RESOURCES.iter().find(|r| {
        r.plural == n
            || r.singular == n
            || r.kind.eq_ignore_ascii_case(&n)
            || r.short_names.contains(&n.as_str())
    })
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-sluice-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// `/apis`: the named groups.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group("apps")]
    })
}

/// `/apis/GROUP`.
pub fn group(name: &str) -> Value {
    json!({
        "name": name,
        "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
        "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}
    })
}

/// `/api/v1` or `/apis/apps/v1`; `None` for a group/version not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let first = defs.first()?;
    let mut resources = Vec::new();
    for r in &defs {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for (sub, kind, verbs) in subresources(r) {
            resources.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": first.api_version(),
        "resources": resources
    }))
}

fn subresources(r: &ResourceDef) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    match r.plural {
        "pods" => vec![
            ("exec", "PodExecOptions", vec!["create", "get"]),
            ("status", "Pod", vec!["get", "patch", "update"]),
        ],
        "namespaces" => vec![("status", "Namespace", vec!["get", "patch", "update"])],
        "deployments" => vec![
            ("scale", "Scale", vec!["get", "patch", "update"]),
            ("status", "Deployment", vec!["get", "patch", "update"]),
        ],
        _ => Vec::new(),
    }
}
