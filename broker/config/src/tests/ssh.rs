//! `kind: ssh` resources and a role's `ssh:` section.

use super::{parse_err, parse_ok};
use crate::{ExecRuleSpec, Need, ResourceSpec, SshCredential, SshRole};
use sluice_shared::api::ResourceKind;

const HEAD: &str = "\
listen: 127.0.0.1:8443
tls: {cert: a.crt, key: a.key, ca: ca.crt}
tokens: {signing_key: k.pem}
store: {sqlite: s.db}
";

#[test]
fn an_ssh_resource_and_a_role_with_exec_rules_load() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  web:
    kind: ssh
    address: 127.0.0.1:2222
    user: deploy
    key: file:/etc/sluice/keys/web
    host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0
policy:
  roles:
    ops:
      max_ttl: 1h
      ssh:
        shell: true
        exec:
          allow: [{{name: listing, commands: [ls, 'ls *']}}]
          block: [{{name: no-rm, commands: ['rm *']}}]
    ci:
      max_ttl: 1h
      ssh:
        exec:
          allow: [{{name: migrate, commands: ['/opt/app/bin/migrate *']}}]
  rules:
    - {{name: r, groups: [dev], resources: [web], roles: [ops, ci]}}
"
    ));
    let ResourceSpec::Ssh(web) = &config.resources[0].spec else {
        panic!("not ssh");
    };
    assert_eq!(config.resources[0].kind(), ResourceKind::Ssh);
    assert_eq!(
        (web.address.as_str(), web.user.as_str()),
        ("127.0.0.1:2222", "deploy")
    );
    assert!(web.host_key.value.starts_with("ssh-ed25519 "));
    let ops = config.policy.role("ops").expect("ops");
    let ssh: &SshRole = ops.ssh.as_ref().expect("ssh section");
    assert!(ssh.shell);
    assert_eq!(
        ssh.exec.allow,
        [ExecRuleSpec {
            name: "listing".into(),
            commands: vec!["ls".into(), "ls *".into()],
        }]
    );
    assert_eq!(ssh.exec.block[0].name, "no-rm");
    let ci = config.policy.role("ci").expect("ci");
    assert!(
        !ci.ssh.as_ref().expect("ssh").shell,
        "shell is off unless written"
    );
    assert!(ops.needs.iter().any(|n| n.value == Need::SshRules));
    assert_eq!(ssh.files, None, "no file transfers unless written");
}

#[test]
fn file_rules_and_forwards_load() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  web: {{kind: ssh, address: 127.0.0.1:22, user: d, key: file:/k, host_key: 'SHA256:abc'}}
policy:
  roles:
    ops:
      max_ttl: 1h
      ssh:
        files: {{read_only: true, allow: [/srv/app, '**/logs'], deny: ['/srv/app/secrets']}}
        forward: ['127.0.0.1:5432', 'db.internal:443']
  rules:
    - {{name: r, groups: [dev], resources: [web], roles: [ops]}}
"
    ));
    let ssh = config
        .policy
        .role("ops")
        .and_then(|r| r.ssh.as_ref())
        .expect("ssh");
    let files = ssh.files.as_ref().expect("files");
    assert!(files.read_only);
    assert_eq!(files.allow, ["/srv/app", "**/logs"]);
    assert_eq!(files.deny, ["/srv/app/secrets"]);
    assert_eq!(ssh.forward, ["127.0.0.1:5432", "db.internal:443"]);
}

#[test]
fn ssh_mistakes_are_located() {
    let errors = parse_err(&format!(
        "{HEAD}resources:
  web:
    kind: ssh
    address: 127.0.0.1:22
    user: deploy
    key: /etc/key
    host_key: not a key
    database: app
  pg:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: env:PW
    host_key: SHA256:abc
policy:
  roles:
    r:
      max_ttl: 1h
      ssh:
        shel: true
        exec:
          allow: [{{name: x, commands: []}}]
        files:
          read_onl: true
          allow: [srv/app]
        forward: [localhost, '127.0.0.1:99999', 'db:5432']
"
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "resources.web.key",
        "resources.web.host_key",
        "resources.web.database",
        "resources.pg.host_key",
        "policy.roles.r.ssh.shel",
        "policy.roles.r.ssh.exec.allow[0].commands",
        "policy.roles.r.ssh.files.read_onl",
        "policy.roles.r.ssh.files.allow",
        "policy.roles.r.ssh.forward",
    ] {
        assert!(keys.contains(&key), "{key} missing from {errors:#?}");
    }
    let database = errors
        .iter()
        .find(|e| e.2 == "resources.web.database")
        .expect("database");
    assert!(
        database.3.contains("only for kind postgres"),
        "{}",
        database.3
    );
}

#[test]
fn a_role_with_ssh_rules_is_given_only_where_an_engine_enforces_them() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  pg: {{kind: postgres, address: 'db:5432', database: app, user: app, password: 'env:PW'}}
policy:
  roles:
    ops: {{max_ttl: 1h, ssh: {{shell: true}}}}
  rules:
    - {{name: r, groups: [dev], resources: [pg], roles: [ops]}}
"
    ));
    let errors = config.unenforceable(|_, need| need != Need::SshRules);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("policy.roles.ops.ssh"),
        "{}",
        errors[0].message
    );
}

#[test]
fn the_broker_logs_in_with_one_credential_a_key_a_password_or_a_ca() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  a: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc', ca: file:/ca, certificate_ttl: 10m}}
  b: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc', password: env:PW}}
  c: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc', key: file:/k}}
"
    ));
    let credential = |i: usize| match &config.resources[i].spec {
        ResourceSpec::Ssh(spec) => spec.credential.value.clone(),
        other => panic!("not ssh: {other:?}"),
    };
    assert!(matches!(
        credential(0),
        SshCredential::Ca { ttl, .. } if ttl == std::time::Duration::from_secs(600)
    ));
    assert!(matches!(credential(1), SshCredential::Password(_)));
    assert!(matches!(credential(2), SshCredential::Key(_)));

    let errors = parse_err(&format!(
        "{HEAD}resources:
  both: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc', key: file:/k, ca: file:/ca}}
  none: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc'}}
  ttl: {{kind: ssh, address: 127.0.0.1:22, user: d, host_key: 'SHA256:abc', key: file:/k, certificate_ttl: 5m}}
"
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "resources.both.ca",
        "resources.none.key",
        "resources.ttl.certificate_ttl",
    ] {
        assert!(keys.contains(&key), "{key} missing from {errors:#?}");
    }
}

#[test]
fn a_kubernetes_resource_and_a_kube_role_load() {
    let config = parse_ok(&format!(
        "{HEAD}resources:
  cluster: {{kind: kubernetes, address: 127.0.0.1:6443, ca: /ca.pem, token: env:T, impersonate: true}}
policy:
  roles:
    deployer:
      max_ttl: 1h
      kube: {{profile: kube-guarded, approvers: [leads], groups: [deployers]}}
  rules:
    - {{name: r, groups: [dev], resources: [cluster], roles: [deployer]}}
"
    ));
    let kube = config
        .policy
        .role("deployer")
        .and_then(|r| r.kube.as_ref())
        .expect("kube");
    assert_eq!(kube.profile.as_deref(), Some("kube-guarded"));
    assert_eq!(kube.approvers, ["leads"]);
    assert_eq!(kube.groups, ["deployers"]);
    let ResourceSpec::Kubernetes(spec) = &config.resources[0].spec else {
        panic!("not kubernetes");
    };
    assert!(spec.impersonate);
    let errors = parse_err(&format!(
        "{HEAD}resources:
  cluster: {{kind: kubernetes, address: 127.0.0.1:6443, token: env:T, user: x}}
policy:
  roles:
    r:
      max_ttl: 1h
      kube: {{profile: kube-everything, allow: [{{name: x, verbs: [destroy]}}]}}
"
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "resources.cluster.ca",
        "resources.cluster.user",
        "policy.roles.r.kube.profile",
        "policy.roles.r.kube.allow[0].verbs",
    ] {
        assert!(keys.contains(&key), "{key} missing from {errors:#?}");
    }
}
