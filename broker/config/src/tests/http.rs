//! `kind: http` resources and a role's `http:` section.

use super::{parse_err, parse_ok};
use crate::{HttpAuthorization, ResourceSpec};

const HEAD: &str = "\
listen: 127.0.0.1:8443
tls: {cert: a.crt, key: a.key, ca: ca.crt}
tokens: {signing_key: k.pem}
store: {sqlite: s.db}
";

#[test]
fn an_http_resource_with_injected_credentials_and_a_role_with_rules_load() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  billing:
    kind: http
    address: billing.internal:8443
    ca: /etc/sluice/billing-ca.pem
    inject:
      basic: {{user: svc, password: env:BILLING_PW}}
      headers: {{X-Api-Key: file:/etc/sluice/key}}
    identity: {{header: X-Caller, ttl: 2m}}
  local: {{kind: http, address: 127.0.0.1:8080, plaintext: true, inject: {{bearer: env:T}}}}
policy:
  roles:
    reader:
      max_ttl: 1h
      http: {{profile: http-read-only, mask: ['$.customers[*].email']}}
    operator:
      max_ttl: 1h
      http:
        block: [{{name: no-admin, paths: ['/admin', '/admin/*']}}]
        approve: [{{name: refunds, methods: [POST], paths: ['/v1/refunds*']}}]
        approvers: [finance]
        record_bodies: true
  rules:
    - {{name: r, groups: [dev], resources: [billing, local], roles: [reader, operator]}}
"
    ));
    let ResourceSpec::Http(billing) = &config.resources[0].spec else {
        panic!("not http");
    };
    assert!(billing.ca.is_some());
    assert!(matches!(
        billing.inject.authorization.as_ref().map(|a| &a.value),
        Some(HttpAuthorization::Basic { user, .. }) if user == "svc"
    ));
    assert_eq!(billing.inject.headers[0].0, "X-Api-Key");
    let identity = billing.identity.as_ref().expect("identity");
    assert_eq!(identity.header, "X-Caller");
    assert_eq!(identity.ttl, std::time::Duration::from_secs(120));
    let ResourceSpec::Http(local) = &config.resources[1].spec else {
        panic!("not http");
    };
    assert!(local.ca.is_none());
    assert!(local.identity.is_none());
    let operator = config
        .policy
        .role("operator")
        .and_then(|r| r.http.as_ref())
        .expect("http");
    assert_eq!(operator.approve[0].methods, ["POST"]);
    assert_eq!(operator.block[0].paths, ["/admin", "/admin/*"]);
    assert_eq!(operator.approvers, ["finance"]);
    assert!(operator.record_bodies);
    assert!(
        !config
            .policy
            .role("reader")
            .and_then(|r| r.http.as_ref())
            .expect("http")
            .record_bodies,
        "bodies are not recorded unless a role asks"
    );
}

#[test]
fn http_mistakes_are_located() {
    let errors = parse_err(&format!(
        "{HEAD}resources:
  remote: {{kind: http, address: billing.internal:80, plaintext: true}}
  bare: {{kind: http, address: 127.0.0.1:80}}
  both:
    kind: http
    address: 127.0.0.1:81
    ca: /ca.pem
    inject: {{bearer: env:A, basic: {{user: u, password: env:B}}, headers: {{Authorization: env:C}}}}
    identity: {{header: Host, ttl: 1s}}
  mixed: {{kind: http, address: 127.0.0.1:82, ca: /ca.pem, plaintext: true, token: env:T}}
  halfcert: {{kind: http, address: 127.0.0.1:83, ca: /ca.pem, client_cert: env:C}}
  nocred: {{kind: kubernetes, address: 127.0.0.1:6443, ca: /ca.pem}}
policy:
  roles:
    r:
      max_ttl: 1h
      http:
        profile: http-everything
        allow: [{{name: x, methods: [get, FETCH], paths: [v1/*]}}]
"
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "resources.remote.plaintext",
        "resources.bare.ca",
        "resources.both.inject.basic",
        "resources.both.inject.headers.Authorization",
        "resources.both.identity.header",
        "resources.both.identity.ttl",
        "resources.mixed.plaintext",
        "resources.mixed.token",
        "resources.halfcert.client_key",
        "resources.nocred.token",
        "policy.roles.r.http.profile",
        "policy.roles.r.http.allow[0].methods[0]",
        "policy.roles.r.http.allow[0].methods[1]",
        "policy.roles.r.http.allow[0].paths[0]",
    ] {
        assert!(keys.contains(&key), "{key} missing from {errors:#?}");
    }
    let upper = errors
        .iter()
        .find(|e| e.2 == "policy.roles.r.http.allow[0].methods[0]")
        .expect("methods[0]");
    assert!(upper.3.contains("write GET"), "{upper:?}");
}
