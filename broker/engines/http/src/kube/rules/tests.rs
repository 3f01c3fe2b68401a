use super::*;
use crate::kube::attributes;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn resource_rule(resources: &[&str]) -> KubeRule {
    KubeRule {
        name: "r".to_owned(),
        resources: strings(resources),
        ..KubeRule::default()
    }
}

/// Short form of a decision for tables: "allow", "block RULE", "hold RULE".
fn short(d: &Decision) -> String {
    match d {
        Decision::Allow => "allow".to_owned(),
        Decision::Block { rule, .. } => format!("block {rule}"),
        Decision::Hold { rule, .. } => format!("hold {rule}"),
    }
}

#[test]
fn resource_patterns() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("pods", "GET", "/api/v1/namespaces/a/pods/p", true),
        ("pods", "GET", "/api/v1/pods", true),
        ("pods", "GET", "/api/v1/namespaces/a/pods/p/exec", false),
        ("pods", "GET", "/apis/example.com/v1/pods", false),
        (
            "pods/exec",
            "POST",
            "/api/v1/namespaces/a/pods/p/exec",
            true,
        ),
        (
            "pods/exec",
            "POST",
            "/api/v1/namespaces/a/pods/p/attach",
            false,
        ),
        ("pods/exec", "GET", "/api/v1/namespaces/a/pods/p", false),
        ("pods/*", "GET", "/api/v1/namespaces/a/pods/p/log", true),
        ("pods/*", "GET", "/api/v1/namespaces/a/pods/p", false),
        (
            "apps/deployments",
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d",
            true,
        ),
        (
            "apps/deployments",
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            false,
        ),
        (
            "apps/deployments",
            "GET",
            "/api/v1/namespaces/a/deployments/d",
            false,
        ),
        (
            "apps/deployments/scale",
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            true,
        ),
        (
            "apps/*",
            "GET",
            "/apis/apps/v1/namespaces/a/statefulsets/s",
            true,
        ),
        (
            "apps/*",
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            true,
        ),
        ("apps/*", "GET", "/apis/batch/v1/namespaces/a/jobs/j", false),
        ("apps/*", "GET", "/api/v1/namespaces/a/pods/p", false),
        (
            "batch/jobs",
            "GET",
            "/apis/batch/v1/namespaces/a/jobs/j",
            true,
        ),
        ("*", "GET", "/api/v1/namespaces/a/pods/p/exec", true),
        ("*", "GET", "/apis/x.io/v1/things", true),
        (
            "*/status",
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/status",
            true,
        ),
        (
            "*/status",
            "PUT",
            "/api/v1/namespaces/a/pods/p/status",
            true,
        ),
        ("*/status", "PUT", "/api/v1/namespaces/a/pods/p", false),
        (
            "*/proxy",
            "GET",
            "/api/v1/namespaces/a/services/s/proxy/x",
            true,
        ),
        (
            "*.k8s.io/*",
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            true,
        ),
        ("*.k8s.io/*", "GET", "/apis/apps/v1/deployments", false),
        (
            "apiextensions.k8s.io/customresourcedefinitions",
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.io",
            true,
        ),
        ("config*", "GET", "/api/v1/configmaps", true),
        ("a/b/c/d", "GET", "/api/v1/pods", false),
    ];
    for &(pattern, method, path, want) in cases {
        let a = attributes(method, path, "");
        assert_eq!(
            resource_rule(&[pattern]).matches(&a),
            want,
            "{pattern} ~ {method} {path}"
        );
    }
}

#[test]
fn verbs_namespaces_and_names() {
    let rule = KubeRule {
        name: "r".to_owned(),
        verbs: strings(&["get", "list"]),
        resources: Vec::new(),
        namespaces: strings(&["prod-*"]),
        names: strings(&["web-?"]),
    };
    let cases = [
        ("GET", "/api/v1/namespaces/prod-eu/pods/web-1", "", true),
        ("GET", "/api/v1/namespaces/prod-eu/pods/web-12", "", false),
        ("DELETE", "/api/v1/namespaces/prod-eu/pods/web-1", "", false),
        ("GET", "/api/v1/namespaces/staging/pods/web-1", "", false),
        // A list has no name: only `*` covers it.
        ("GET", "/api/v1/namespaces/prod-eu/pods", "", false),
        (
            "GET",
            "/api/v1/namespaces/prod-eu/pods",
            "fieldSelector=metadata.name%3Dweb-1",
            true,
        ),
        // No namespace: only `*` covers it.
        ("GET", "/api/v1/nodes/web-1", "", false),
    ];
    for (method, path, query, want) in cases {
        let a = attributes(method, path, query);
        assert_eq!(rule.matches(&a), want, "{method} {path}?{query}");
    }
    let star = KubeRule {
        namespaces: strings(&["*"]),
        names: strings(&["*"]),
        ..KubeRule::default()
    };
    assert!(star.matches(&attributes("GET", "/api/v1/pods", "")));
    let any_verb = KubeRule {
        verbs: strings(&["*"]),
        ..KubeRule::default()
    };
    assert!(any_verb.matches(&attributes("DELETE", "/api/v1/nodes", "")));
}

#[test]
fn block_wins_then_approve_then_allow() {
    let rules = KubeRules {
        allow: vec![KubeRule {
            name: "allow-prod".to_owned(),
            namespaces: strings(&["prod"]),
            ..KubeRule::default()
        }],
        block: vec![KubeRule {
            name: "no-secrets".to_owned(),
            resources: strings(&["secrets"]),
            ..KubeRule::default()
        }],
        approve: vec![KubeRule {
            name: "deletes".to_owned(),
            verbs: strings(&["delete"]),
            ..KubeRule::default()
        }],
    };
    let cases = [
        ("GET", "/api/v1/namespaces/prod/pods", "allow"),
        (
            "GET",
            "/api/v1/namespaces/prod/secrets/s",
            "block no-secrets",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/prod/secrets/s",
            "block no-secrets",
        ),
        ("DELETE", "/api/v1/namespaces/prod/pods/p", "hold deletes"),
        // Approve rules also cover what no allow rule does.
        ("DELETE", "/api/v1/namespaces/dev/pods/p", "hold deletes"),
        (
            "GET",
            "/api/v1/namespaces/dev/pods",
            "block kube:not-allowed",
        ),
        ("GET", "/version", "allow"),
        ("GET", "/apis", "allow"),
        (
            "GET",
            "/api//v1/namespaces/prod/pods",
            "block kube:suspicious-path",
        ),
        ("GET", "/version/..", "block kube:suspicious-path"),
    ];
    for (method, path, want) in cases {
        let d = rules.judge(&attributes(method, path, ""));
        assert_eq!(short(&d), want, "{method} {path}");
    }
    // Without allow rules, what is not blocked or held is allowed.
    let open = KubeRules {
        allow: Vec::new(),
        ..rules
    };
    assert_eq!(
        short(&open.judge(&attributes("GET", "/api/v1/namespaces/dev/pods", ""))),
        "allow"
    );
}

#[test]
fn reasons_name_the_rule_and_the_request() {
    let guarded = KubeRules::profile("kube-guarded").expect("profile");
    let d = guarded.judge(&attributes("DELETE", "/api/v1/namespaces/prod", ""));
    assert_eq!(
        d,
        Decision::Block {
            rule: "kube-guarded:no-namespace-delete".to_owned(),
            reason: "delete of namespaces \"prod\" is blocked by rule \
                     'kube-guarded:no-namespace-delete'"
                .to_owned(),
        }
    );
    let d = guarded.judge(&attributes(
        "DELETE",
        "/apis/apps/v1/namespaces/prod/deployments/web",
        "",
    ));
    assert_eq!(
        d,
        Decision::Hold {
            rule: "kube-guarded:delete-needs-approval".to_owned(),
            reason: "delete of apps/deployments \"web\" in namespace prod needs approval by rule \
                     'kube-guarded:delete-needs-approval'"
                .to_owned(),
        }
    );
    let read_only = KubeRules::profile("kube-read-only").expect("profile");
    let d = read_only.judge(&attributes("OPTIONS", "/api/v1/namespaces/a/pods/p", ""));
    assert_eq!(
        d,
        Decision::Block {
            rule: "kube:not-allowed".to_owned(),
            reason: "(no verb) of pods \"p\" in namespace a is not allowed by any rule".to_owned(),
        }
    );
    let d = read_only.judge(&attributes("GET", "/api/v1/namespaces/a/../b/pods", ""));
    assert_eq!(
        d,
        Decision::Block {
            rule: "kube:suspicious-path".to_owned(),
            reason: "the request to \"/api/v1/namespaces/a/../b/pods\" is refused: the path has \
                     a dot segment (. or ..)"
                .to_owned(),
        }
    );
}

#[test]
fn read_only_profile() {
    let rules = KubeRules::profile("kube-read-only").expect("profile");
    let cases = [
        ("GET", "/api/v1/pods", "", "allow"),
        ("GET", "/api/v1/namespaces/a/pods", "watch=1", "allow"),
        ("GET", "/api/v1/namespaces/a/secrets/s", "", "allow"),
        ("GET", "/api/v1/secrets", "", "allow"),
        (
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d",
            "",
            "allow",
        ),
        ("GET", "/api/v1/namespaces/a/pods/p/log", "", "allow"),
        ("GET", "/openapi/v3", "", "allow"),
        (
            "POST",
            "/api/v1/namespaces/a/pods",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "PUT",
            "/api/v1/namespaces/a/pods/p",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods/p",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods",
            "",
            "block kube-read-only:no-writes",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/exec",
            "command=sh",
            "block kube-read-only:no-exec",
        ),
        (
            "POST",
            "/api/v1/namespaces/a/pods/p/exec",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/attach",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/portforward",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/services/s/proxy/",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "GET",
            "/api/v1/nodes/n/proxy/metrics",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/a/pods/p/x",
            "",
            "block kube-read-only:no-exec",
        ),
        (
            "OPTIONS",
            "/api/v1/namespaces/a/pods/p",
            "",
            "block kube:not-allowed",
        ),
    ];
    for (method, path, query, want) in cases {
        let d = rules.judge(&attributes(method, path, query));
        assert_eq!(short(&d), want, "{method} {path}?{query}");
    }
}

#[test]
fn guarded_profile() {
    let rules = KubeRules::profile("kube-guarded").expect("profile");
    let cases = [
        ("GET", "/api/v1/pods", "allow"),
        ("POST", "/api/v1/namespaces/a/pods", "allow"),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d", "allow"),
        ("POST", "/api/v1/namespaces", "allow"),
        (
            "DELETE",
            "/api/v1/namespaces/prod",
            "block kube-guarded:no-namespace-delete",
        ),
        (
            "DELETE",
            "/api/v1/namespaces",
            "block kube-guarded:no-namespace-delete",
        ),
        (
            "DELETE",
            "/api/v1/persistentvolumes/pv1",
            "block kube-guarded:no-persistentvolume-delete",
        ),
        (
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/w.x.io",
            "block kube-guarded:no-crd-delete",
        ),
        (
            "DELETE",
            "/api/v1/nodes/n1",
            "block kube-guarded:no-node-delete",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods/p",
            "hold kube-guarded:delete-needs-approval",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods",
            "hold kube-guarded:delete-needs-approval",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/persistentvolumeclaims/c",
            "hold kube-guarded:delete-needs-approval",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/exec",
            "hold kube-guarded:exec-needs-approval",
        ),
        (
            "POST",
            "/api/v1/namespaces/a/pods/p/attach",
            "hold kube-guarded:exec-needs-approval",
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/portforward",
            "hold kube-guarded:exec-needs-approval",
        ),
        ("PUT", "/api/v1/namespaces/prod/finalize", "allow"),
    ];
    for (method, path, want) in cases {
        let d = rules.judge(&attributes(method, path, ""));
        assert_eq!(short(&d), want, "{method} {path}");
    }
    assert_eq!(KubeRules::profile("nope"), None);
}

#[test]
fn profiles_validate_and_bad_rules_do_not() {
    for name in ["kube-read-only", "kube-guarded"] {
        assert_eq!(
            KubeRules::profile(name).expect("profile").validate(),
            Ok(())
        );
    }
    let bad = KubeRules {
        block: vec![KubeRule {
            name: "typo".to_owned(),
            verbs: strings(&["delet"]),
            resources: strings(&["pods//exec", "a/b/c/d"]),
            ..KubeRule::default()
        }],
        ..KubeRules::default()
    };
    let problems = bad.validate().expect_err("problems");
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("block[0] 'typo': unknown verb \"delet\""));
}

#[test]
fn forbidden_status_reads_like_the_api_server() {
    let a = attributes(
        "DELETE",
        "/apis/apps/v1/namespaces/prod/deployments/web",
        "",
    );
    let status = forbidden_status(
        &a,
        "no-deletes",
        "delete of ... is blocked by rule 'no-deletes'",
    );
    assert_eq!(
        status,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "deployments.apps \"web\" is forbidden: sluice: delete of ... is blocked by rule 'no-deletes'",
            "reason": "Forbidden",
            "details": {
                "name": "web",
                "group": "apps",
                "kind": "deployments",
                "causes": [{"reason": "SluiceRule", "message": "no-deletes"}],
            },
            "code": 403,
        })
    );
    let list = forbidden_status(&attributes("GET", "/api/v1/pods", ""), "r", "x");
    assert_eq!(list["message"], "pods is forbidden: sluice: x");
    assert_eq!(list["details"]["kind"], "pods");
    assert!(list["details"].get("group").is_none());
    let exec = forbidden_status(
        &attributes("GET", "/api/v1/namespaces/a/pods/p/exec", ""),
        "r",
        "x",
    );
    assert_eq!(exec["message"], "pods \"p\" is forbidden: sluice: x");
    let path = forbidden_status(&attributes("GET", "/api//v1", ""), "r", "x");
    assert_eq!(path["message"], "forbidden: sluice: x");
}
