//! Verified tokens into broker identities: workload rules (GitHub Actions, GitLab CI, Kubernetes)
//! and people issuers, with the real claim names those platforms send.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_identity::{
    ClaimMatch, IssuerPolicy, PeopleIssuer, Preset, Rejection, RuleError, Verified, WorkloadRule,
    evaluate, person,
};
use support::*;

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const GITLAB: &str = "https://gitlab.com";
const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";

fn github_claims() -> Value {
    json!({
        "iss": GITHUB,
        "aud": "https://sluice.example.com",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "jti": "5c0c2f4e-7e5e-4c55-8b44-1f0b7d0d1a11",
        "repository": "acme/app",
        "repository_id": "123456789",
        "repository_owner": "acme",
        "repository_owner_id": "4242",
        "repository_visibility": "private",
        "workflow": "deploy",
        "workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "ref_protected": "true",
        "sha": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
        "actor": "octocat",
        "actor_id": "583231",
        "run_id": "9876543210",
        "run_number": "57",
        "run_attempt": "1",
        "event_name": "push",
        "environment": "production",
        "runner_environment": "github-hosted",
        "nbf": at(-5),
        "iat": at(-5),
        "exp": at(295),
    })
}

fn gitlab_claims() -> Value {
    json!({
        "iss": GITLAB,
        "aud": "https://sluice.example.com",
        "sub": "project_path:acme/infra:ref_type:branch:ref:main",
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/infra",
        "user_id": "5",
        "user_login": "ada",
        "user_email": "ada@example.com",
        "pipeline_id": 1212,
        "pipeline_source": "push",
        "job_id": "3434",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "environment": "production",
        "environment_protected": "true",
        "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "nbf": at(-5),
        "iat": at(-5),
        "exp": at(295),
    })
}

fn k8s_claims() -> Value {
    json!({
        "iss": CLUSTER,
        "aud": ["sluice"],
        "sub": "system:serviceaccount:ci:deployer",
        "kubernetes.io": {
            "namespace": "ci",
            "pod": { "name": "runner-7d9f", "uid": "1b7c..." },
            "serviceaccount": { "name": "deployer", "uid": "a0b1..." },
        },
        "nbf": at(-5),
        "iat": at(-5),
        "exp": at(3595),
    })
}

fn verified(claims: &Value, issuer: &str, audience: &str) -> Verified {
    let policy = IssuerPolicy::new(issuer, vec![audience.into()]);
    check_with(&token(&RSA, claims), &policy, &[&RSA]).expect("token verifies")
}

fn github_rule() -> WorkloadRule {
    let mut rule = Preset::GithubActions
        .rule("deploys", None, "https://sluice.example.com")
        .expect("preset has an issuer");
    rule.claims = vec![
        ClaimMatch::new("repository", "acme/*"),
        ClaimMatch::new("ref", "refs/heads/main"),
    ];
    rule.groups = vec!["deployers".into()];
    rule
}

fn gitlab_rule() -> WorkloadRule {
    let mut rule = Preset::GitlabCi
        .rule("infra", None, "https://sluice.example.com")
        .expect("preset has an issuer");
    rule.claims = vec![
        ClaimMatch::new("project_path", "acme/infra"),
        ClaimMatch::new("ref_protected", "true"),
        ClaimMatch::new("pipeline_id", "12??"),
    ];
    rule.groups = vec!["infra".into(), "ci".into()];
    rule
}

fn github_token() -> Verified {
    verified(&github_claims(), GITHUB, "https://sluice.example.com")
}

fn code(result: Result<impl std::fmt::Debug, Rejection>) -> &'static str {
    result.expect_err("expected a rejection").code()
}

// ---- workload: positive -------------------------------------------------------------------

#[test]
fn github_actions_token_becomes_a_workload() {
    let identity = evaluate(&github_rule(), &github_token()).unwrap();
    assert_eq!(identity.subject, "github:acme/app:refs/heads/main:deploy");
    assert_eq!(identity.groups, ["deployers"]);
    assert_eq!(identity.rule, "deploys");
    let expected: BTreeMap<String, String> = [
        ("actor", "octocat"),
        ("environment", "production"),
        ("event_name", "push"),
        ("ref", "refs/heads/main"),
        ("repository", "acme/app"),
        ("run_id", "9876543210"),
        ("sha", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4"),
        ("workflow", "deploy"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(identity.ci_claims, expected);
}

#[test]
fn gitlab_ci_token_becomes_a_workload() {
    let token = verified(&gitlab_claims(), GITLAB, "https://sluice.example.com");
    let identity = evaluate(&gitlab_rule(), &token).unwrap();
    assert_eq!(identity.subject, "gitlab:acme/infra:main");
    assert_eq!(identity.groups, ["infra", "ci"]);
    assert_eq!(
        identity.ci_claims["pipeline_id"], "1212",
        "numbers shown as JSON text"
    );
    assert_eq!(identity.ci_claims["user_login"], "ada");
    assert_eq!(identity.ci_claims.len(), 5);
}

#[test]
fn kubernetes_nested_claims() {
    let mut rule = Preset::Kubernetes
        .rule("ci-pods", Some(CLUSTER.into()), "sluice")
        .unwrap();
    rule.claims = vec![
        ClaimMatch::new("kubernetes.io.namespace", "ci"),
        ClaimMatch::new("kubernetes.io.serviceaccount.name", "deploy*"),
    ];
    let token = verified(&k8s_claims(), CLUSTER, "sluice");
    let identity = evaluate(&rule, &token).unwrap();
    assert_eq!(identity.subject, "system:serviceaccount:ci:deployer");
    assert_eq!(identity.ci_claims["kubernetes.io.namespace"], "ci");
    assert_eq!(
        identity.ci_claims["kubernetes.io.serviceaccount.name"],
        "deployer"
    );
}

#[test]
fn kubernetes_preset_needs_an_issuer() {
    assert_eq!(
        Preset::Kubernetes.rule("pods", None, "sluice"),
        Err(RuleError::IssuerRequired(Preset::Kubernetes))
    );
    assert_eq!(Preset::GithubActions.default_issuer(), Some(GITHUB));
    assert_eq!(Preset::GitlabCi.default_issuer(), Some(GITLAB));
}

#[test]
fn rule_check_finds_configuration_mistakes() {
    let mut rule = github_rule();
    assert_eq!(rule.check(), Ok(()));
    rule.subject_template = "github:{repository".into();
    assert!(matches!(rule.check(), Err(RuleError::Template(_))));
    rule.subject_template = "github:{}".into();
    assert!(matches!(rule.check(), Err(RuleError::Template(_))));
    rule.subject_template = "github:}{repository}".into();
    assert!(matches!(rule.check(), Err(RuleError::Template(_))));
    rule.subject_template = "github:{repository}".into();
    rule.audience.clear();
    assert!(matches!(
        rule.check(),
        Err(RuleError::Empty {
            field: "audience",
            ..
        })
    ));
}

// ---- workload: negative -------------------------------------------------------------------

#[test]
fn people_token_presented_to_a_workload_rule() {
    let people = check(&token(&RSA, &claims())).unwrap();
    assert_eq!(code(evaluate(&github_rule(), &people)), "wrong_issuer");
    // Same issuer but the people audience: still refused.
    let mut rule = github_rule();
    rule.issuer = ISSUER.into();
    assert_eq!(code(evaluate(&rule, &people)), "wrong_audience");
}

#[test]
fn workload_rule_for_another_platform() {
    let token = verified(&gitlab_claims(), GITLAB, "https://sluice.example.com");
    assert_eq!(code(evaluate(&github_rule(), &token)), "wrong_issuer");
}

#[test]
fn repository_outside_the_pattern() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"repository": "evil/repo"}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    let rejection = evaluate(&github_rule(), &token).unwrap_err();
    assert_eq!(rejection, Rejection::ClaimMismatch("repository".into()));
}

#[test]
fn repository_prefix_trick() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"repository": "acme-evil/app"}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    assert_eq!(code(evaluate(&github_rule(), &token)), "claim_mismatch");
}

#[test]
fn feature_branch_instead_of_main() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"ref": "refs/heads/feature"}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    let rejection = evaluate(&github_rule(), &token).unwrap_err();
    assert_eq!(rejection, Rejection::ClaimMismatch("ref".into()));
}

#[test]
fn required_claim_absent() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"ref": null}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    assert_eq!(
        evaluate(&github_rule(), &token).unwrap_err(),
        Rejection::MissingClaim("ref".into())
    );
}

#[test]
fn claim_that_is_an_object_never_matches() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"repository": {"name": "acme/app"}}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    assert_eq!(code(evaluate(&github_rule(), &token)), "claim_mismatch");
}

#[test]
fn missing_claim_for_the_subject_template() {
    let mut claims = github_claims();
    merge(&mut claims, json!({"workflow": null}));
    let token = verified(&claims, GITHUB, "https://sluice.example.com");
    let rejection = evaluate(&github_rule(), &token).unwrap_err();
    assert_eq!(rejection, Rejection::MissingClaim("workflow".into()));
}

#[test]
fn broken_template_fails_closed() {
    let mut rule = github_rule();
    rule.subject_template = "github:{repository".into();
    assert_eq!(code(evaluate(&rule, &github_token())), "claim_mismatch");
}

// ---- people -------------------------------------------------------------------------------

fn okta() -> PeopleIssuer {
    PeopleIssuer::new(ISSUER)
}

#[test]
fn person_with_groups_passed_through() {
    let token = check(&token(&RSA, &claims())).unwrap();
    let identity = person(&okta(), &token).unwrap();
    assert_eq!(identity.subject, "ada@example.com");
    assert_eq!(identity.groups, ["dba", "eng"]);
}

#[test]
fn person_groups_mapped() {
    let mut issuer = okta();
    issuer.group_mapping = BTreeMap::from([
        ("eng".to_owned(), vec!["developers".to_owned()]),
        (
            "dba".to_owned(),
            vec!["db-admins".to_owned(), "developers".to_owned()],
        ),
    ]);
    let claims = claims_with(json!({"groups": ["eng", "dba", "Everyone", "admin"]}));
    let token = check(&token(&RSA, &claims)).unwrap();
    let identity = person(&issuer, &token).unwrap();
    assert_eq!(
        identity.groups,
        ["db-admins", "developers"],
        "unmapped groups dropped"
    );
}

#[test]
fn person_single_group_string_and_no_groups() {
    let single = check(&token(&RSA, &claims_with(json!({"groups": "eng"})))).unwrap();
    assert_eq!(person(&okta(), &single).unwrap().groups, ["eng"]);
    let none = check(&token(&RSA, &claims_with(json!({"groups": null})))).unwrap();
    assert!(person(&okta(), &none).unwrap().groups.is_empty());
}

#[test]
fn person_groups_of_the_wrong_type() {
    let token = check(&token(&RSA, &claims_with(json!({"groups": ["eng", 7]})))).unwrap();
    assert_eq!(
        person(&okta(), &token).unwrap_err(),
        Rejection::InvalidClaim("groups".into())
    );
}

#[test]
fn person_custom_claims() {
    let mut issuer = okta();
    issuer.username_claim = "email".into();
    issuer.groups_claim = "realm_access.roles".into();
    let claims = claims_with(json!({
        "email": "ada@example.com",
        "realm_access": { "roles": ["offline_access", "ops"] },
    }));
    let token = check(&token(&RSA, &claims)).unwrap();
    let identity = person(&issuer, &token).unwrap();
    assert_eq!(identity.subject, "ada@example.com");
    assert_eq!(identity.groups, ["offline_access", "ops"]);
}

#[test]
fn person_without_username() {
    let token = check(&token(
        &RSA,
        &claims_with(json!({"preferred_username": null})),
    ))
    .unwrap();
    assert_eq!(
        person(&okta(), &token).unwrap_err(),
        Rejection::MissingClaim("preferred_username".into())
    );
}

#[test]
fn workload_token_presented_to_the_people_issuer() {
    // Verified under the people policy: the issuer check refuses it.
    let workload = token(&RSA, &github_claims());
    assert_code(check_with(&workload, &policy(), &[&RSA]), "wrong_issuer");
    // Even if some other policy verified it, `person` refuses a foreign issuer.
    assert_eq!(code(person(&okta(), &github_token())), "wrong_issuer");
}
