//! `sluice kube` end to end: real kubectl through the CLI's local tunnel, the broker's
//! Kubernetes engine, and the test crate's fake API server (which logs every request it
//! receives, so a refused call is proven never to have arrived).

use sluice_fake_kube::FakeKube;
use sluice_tests::metrics::{scrape, value};
use sluice_tests::{Broker, BrokerBuilder, Cli, wait_for};
use std::process::Output;
use std::time::Duration;

const METRICS_TOKEN: &str = "kube-metrics-scrape-token-0123456789";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Setup {
    fake: FakeKube,
    broker: Broker,
    cli: Cli,
    cache: tempfile::TempDir,
}

fn setup() -> Setup {
    let fake = FakeKube::start();
    let address = fake.url().trim_start_matches("https://").to_owned();
    let broker = BrokerBuilder::new()
        .kube("cluster", &address, fake.ca_pem(), fake.token())
        .role(
            "viewer",
            "      max_ttl: 1h\n      kube: {profile: kube-read-only, record_bodies: true}\n",
        )
        .role(
            "deployer",
            "      max_ttl: 1h\n      kube: {profile: kube-guarded, approvers: [leads]}\n",
        )
        .role("ops", "      max_ttl: 1h\n")
        .role(
            "masked",
            "      max_ttl: 1h\n      kube: {masking: pii, mask: [\"$.data.note\"], record_bodies: true}\n",
        )
        .policy_extra(
            "  masking:\n    pii:\n      detectors:\n        - {name: keys, detector: secret, style: redact}\n        - {name: mails, detector: email, style: redact}\n",
        )
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["cluster"],
            &["viewer", "deployer", "ops", "masked"],
            "",
        )
        .top_level("metrics:\n  token: env:SLUICE_METRICS_TOKEN\n")
        .env("SLUICE_METRICS_TOKEN", METRICS_TOKEN)
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    Setup {
        fake,
        broker,
        cli,
        cache: tempfile::tempdir().expect("cache dir"),
    }
}

impl Setup {
    /// `sluice kube cluster --role ROLE -- ARGS` (kubectl with its own discovery cache).
    fn kubectl(&self, role: &str, args: &[&str]) -> Output {
        let cache = format!("--cache-dir={}", self.cache.path().display());
        let mut all = vec!["kube", "cluster", "--role", role, "--", cache.as_str()];
        all.extend_from_slice(args);
        self.cli.run(&all)
    }
}

#[test]
fn a_blocked_call_never_reaches_the_cluster_and_kubectl_says_forbidden() {
    let s = setup();
    let out = s.kubectl("deployer", &["delete", "namespace", "prod"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Error from server (Forbidden)"), "{stderr}");
    assert!(stderr.contains("kube-guarded"), "names the rule: {stderr}");
    assert!(
        !s.fake
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains("/namespaces/prod")),
        "the fake API server received the DELETE"
    );
    assert!(s.fake.object("namespaces", "", "prod").is_some());

    // The same role may read; every request reached the cluster as alice.
    let pods = s.kubectl("deployer", &["get", "pods", "-n", "prod"]);
    assert!(
        text(&pods.stdout).contains("web-1"),
        "{}",
        text(&pods.stderr)
    );
    let logged = s.fake.requests();
    let pod_list = logged
        .iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods")
        .expect("the list reached the fake");
    assert_eq!(pod_list.impersonate_user.as_deref(), Some("alice"));
    assert_eq!(pod_list.authorization, "present");
}

#[test]
fn secret_values_never_reach_kubectl_in_any_form() {
    let s = setup();
    let secret_plain = "s3cr3t-VALUE";
    let secret_b64 = "czNjcjN0LVZBTFVF";
    for args in [
        vec!["get", "secret", "db-creds", "-n", "prod", "-o", "json"],
        vec!["get", "secret", "db-creds", "-n", "prod", "-o", "yaml"],
        vec!["get", "secrets", "-n", "prod", "-o", "json"],
        vec![
            "get",
            "secret",
            "db-creds",
            "-n",
            "prod",
            "-o",
            "jsonpath={.data.password}",
        ],
        vec![
            "get",
            "--raw",
            "/api/v1/namespaces/prod/secrets?watch=1&timeoutSeconds=1",
        ],
        vec!["get", "--raw", "/api/v1/secrets"],
    ] {
        let out = s.kubectl("viewer", &args);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            !stdout.contains(secret_plain) && !stdout.contains(secret_b64),
            "{args:?} leaked: {stdout}"
        );
        assert!(stdout.contains("KioqKg=="), "{args:?}: {stdout}");
    }
    // The recordings keep the answers (the role records bodies), masked as they were sent; the
    // audit trail and the store hold no value either.
    let sessions = s.cli.ended_sessions(6);
    let bodies: Vec<String> = sessions
        .iter()
        .filter_map(|session| session["id"].as_str())
        .flat_map(|id| {
            let shown = s.cli.run(&["sessions", "show", id, "--output", "json"]);
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
            shown["events"].as_array().cloned().unwrap_or_default()
        })
        .filter_map(|e| e["body"].as_str().map(str::to_owned))
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("KioqKg==")),
        "the masked Secrets are in the recordings: {bodies:#?}"
    );
    let written = sluice_tests::files_text(s.broker.dir());
    assert!(
        !written.contains(secret_plain) && !written.contains(secret_b64),
        "a Secret value was written by the broker"
    );
}

#[test]
fn impersonation_from_the_client_is_refused_and_the_kubeconfig_holds_no_cluster_credential() {
    let s = setup();
    let out = s.kubectl(
        "ops",
        &["get", "pods", "-n", "prod", "--as", "system:admin"],
    );
    assert_eq!(out.status.code(), Some(1));
    // kubectl shows discovery refusals without their message; `get --raw` shows it.
    assert!(
        text(&out.stderr).contains("Forbidden"),
        "{}",
        text(&out.stderr)
    );
    let raw = s.kubectl(
        "ops",
        &["get", "--raw", "/api/v1/namespaces", "--as", "system:admin"],
    );
    assert!(
        text(&raw.stderr).contains("may not send impersonate-user"),
        "{}",
        text(&raw.stderr)
    );
    assert!(
        !s.fake
            .requests()
            .iter()
            .any(|r| r.impersonate_user.as_deref() == Some("system:admin")),
        "the impersonation reached the cluster"
    );
    let shown = s.cli.run(&[
        "connect",
        "cluster",
        "--role",
        "ops",
        "--exec",
        "sh",
        "-c",
        "cat \"$KUBECONFIG\"",
    ]);
    let kubeconfig = text(&shown.stdout);
    assert!(kubeconfig.contains("127.0.0.1"), "{kubeconfig}");
    assert!(
        !kubeconfig.contains(s.fake.token()),
        "the cluster's token is in the kubeconfig"
    );
}

#[test]
fn exec_runs_through_the_broker_with_its_exit_code_and_read_only_refuses_it() {
    let s = setup();
    let out = s.kubectl(
        "ops",
        &[
            "exec",
            "-n",
            "prod",
            "web-1",
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hi");
    // The stream's start and end are audited.
    sluice_tests::wait_for(
        "the exec stream's end in the audit trail",
        std::time::Duration::from_secs(10),
        || {
            let log = s.broker.log();
            log.contains("kube.stream_opened.v1") && log.contains("kube.stream_closed.v1")
        },
    );
    // The exec is recorded as a terminal: its output exports as asciicast.
    let cast = s
        .cli
        .ended_sessions(1)
        .iter()
        .filter_map(|session| session["id"].as_str().map(str::to_owned))
        .map(|id| {
            text(
                &s.cli
                    .run(&["sessions", "export", &id, "--format", "asciicast"])
                    .stdout,
            )
        })
        .find(|cast| cast.contains("\"o\""));
    let cast = cast.expect("an exec session exported as asciicast");
    assert!(cast.contains("hi"), "{cast}");
    let refused = s.kubectl(
        "viewer",
        &["exec", "-n", "prod", "web-1", "--", "sh", "-c", "echo no"],
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        !text(&refused.stdout).contains("no"),
        "{}",
        text(&refused.stdout)
    );
}

#[test]
fn a_held_delete_waits_inside_kubectl_shows_what_it_would_remove_and_runs_only_when_approved() {
    let s = setup();
    let bob = Cli::new(&s.broker);
    bob.login(&s.broker.token("bob", &["leads"], "1h"));
    let cache = format!("--cache-dir={}", s.cache.path().display());
    let spawn = |args: &[&str]| {
        let mut all = vec![
            "kube",
            "cluster",
            "--role",
            "deployer",
            "--",
            cache.as_str(),
        ];
        all.extend_from_slice(args);
        s.cli
            .cmd()
            .args(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sluice kube")
    };

    // Denied: kubectl fails with the reason and the deployment stays.
    let waiting = spawn(&["delete", "deployment", "web", "-n", "prod"]);
    let hold = bob.first_hold();
    assert_eq!(hold["kind"], "kube");
    let what = hold["sql"]
        .as_str()
        .or(hold["what"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        what.contains("delete apps/deployments \"web\" in namespace prod")
            && what.contains("would remove Deployment"),
        "{hold}"
    );
    let id = hold["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["deny", &id, "--reason", "change freeze"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("kubectl");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("change freeze"),
        "{}",
        text(&out.stderr)
    );
    assert!(s.fake.object("deployments", "prod", "web").is_some());
    assert!(
        !s.fake.requests().iter().any(|r| r.method == "DELETE"
            && r.path.ends_with("/deployments/web")
            && !r.query.contains("dryRun")),
        "a denied delete reached the cluster"
    );

    // Approved: the same call completes.
    let waiting = spawn(&["delete", "deployment", "web", "-n", "prod"]);
    let id = bob.first_hold()["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("kubectl");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.fake.object("deployments", "prod", "web").is_none());
}

#[test]
fn revoking_the_grant_cuts_a_running_watch() {
    let s = setup();
    let cache = format!("--cache-dir={}", s.cache.path().display());
    let mut watch = s
        .cli
        .cmd()
        .args([
            "kube", "cluster", "--role", "viewer", "--", &cache, "get", "pods", "-n", "prod", "-w",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice kube");
    let mut grant = String::new();
    sluice_tests::wait_for(
        "the watch to start",
        std::time::Duration::from_secs(30),
        || {
            s.fake
                .requests()
                .iter()
                .any(|r| r.query.contains("watch=true"))
                && {
                    let list = s.cli.run(&["grant", "list", "--output", "json"]);
                    let list: serde_json::Value =
                        serde_json::from_slice(&list.stdout).unwrap_or(serde_json::Value::Null);
                    match list["grants"][0]["id"].as_str() {
                        Some(id) => {
                            grant = id.to_owned();
                            true
                        }
                        None => false,
                    }
                }
        },
    );
    let revoked = s
        .cli
        .run(&["grant", "revoke", &grant, "--reason", "incident over"]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    sluice_tests::wait_for("kubectl to end", std::time::Duration::from_secs(20), || {
        watch.try_wait().ok().flatten().is_some()
    });
}

#[test]
fn a_watch_upgraded_to_a_websocket_is_refused_so_secrets_cannot_pass_the_masker() {
    let s = setup();
    // A WebSocket watch through the tunnel (what `curl` or a custom client could ask for).
    let dir = tempfile::tempdir().expect("dir");
    let out = s.cli.run(&[
        "connect",
        "cluster",
        "--role",
        "ops",
        "--exec",
        "sh",
        "-c",
        &format!(
            "curl -sk --max-time 5 -H \"Authorization: Bearer $(sed -n 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/p' \"$KUBECONFIG\")\" \
             -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
             -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
             \"$SLUICE_URL/api/v1/namespaces/prod/secrets?watch=true\" -o {}/body -w '%{{http_code}}'",
            dir.path().display()
        ),
    ]);
    assert_eq!(text(&out.stdout).trim(), "403", "{}", text(&out.stderr));
    let body = std::fs::read_to_string(dir.path().join("body")).unwrap_or_default();
    assert!(body.contains("kube:upgrade"), "{body}");
    assert!(!body.contains("czNjcjN0"), "{body}");
    assert!(
        !s.fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/secrets")),
        "the upgrade reached the cluster"
    );
}

#[test]
fn planted_secrets_and_configured_paths_are_masked_in_every_json_response() {
    let s = setup();
    // (kubectl's typed `create configmap` sends protobuf, which the fake does not read: the
    // object is made client-side and sent as JSON.)
    let created = s.cli.run(&[
        "connect",
        "cluster",
        "--role",
        "ops",
        "--exec",
        "sh",
        "-c",
        &format!(
            "kubectl --cache-dir={cache} create configmap planted -n prod \
             --from-literal=aws=AKIAIOSFODNN7EXAMPLE --from-literal=mail=alice@example.com \
             --from-literal=note=hello --from-literal=plain=visible --dry-run=client -o json \
             | kubectl --cache-dir={cache} create --validate=false -f -",
            cache = s.cache.path().display()
        ),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    for args in [
        vec!["get", "configmap", "planted", "-n", "prod", "-o", "json"],
        vec!["get", "configmaps", "-n", "prod", "-o", "yaml"],
        vec![
            "get",
            "--raw",
            "/api/v1/namespaces/prod/configmaps?watch=1&timeoutSeconds=1",
        ],
    ] {
        let out = s.kubectl("masked", &args);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        for planted in ["AKIAIOSFODNN7EXAMPLE", "alice@example.com", "hello"] {
            assert!(
                !stdout.contains(planted),
                "{args:?} shows {planted}: {stdout}"
            );
        }
        assert!(stdout.contains("visible"), "{args:?}: {stdout}");
    }
    // An exec stream cannot be masked: a masking role gets none.
    let exec = s.kubectl(
        "masked",
        &["exec", "-n", "prod", "web-1", "--", "echo", "x"],
    );
    assert_ne!(exec.status.code(), Some(0));
    assert!(
        text(&exec.stderr).contains("cannot be masked"),
        "{}",
        text(&exec.stderr)
    );
    // The same values through a role that does not mask.
    let plain = s.kubectl(
        "ops",
        &["get", "configmap", "planted", "-n", "prod", "-o", "json"],
    );
    assert!(text(&plain.stdout).contains("AKIAIOSFODNN7EXAMPLE"));
    // The key and the email in each of the three masked answers, counted as each answer is
    // done with (just after its last byte left).
    let masked = || {
        let (code, scraped) = scrape(&s.broker, Some(METRICS_TOKEN));
        assert_eq!(code, 200, "{scraped}");
        value(&scraped, "sluice_masked_values_total{kind=\"kubernetes\"}")
    };
    wait_for("six masked values counted", Duration::from_secs(10), || {
        masked() >= 6.0
    });
}

#[test]
fn a_long_list_pages_through_the_broker() {
    let s = setup();
    s.fake.seed_many("bulk", "configmaps", 5000);
    let out = s.kubectl(
        "viewer",
        &[
            "get",
            "configmaps",
            "-n",
            "bulk",
            "--chunk-size=500",
            "--no-headers",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 5000);
    let pages = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/bulk/configmaps")
        .count();
    assert_eq!(
        pages, 10,
        "each page reached the API server as its own request"
    );
}

#[test]
fn the_python_client_gets_the_same_decisions_and_masking() {
    let s = setup();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/kube_client.py");
    let out = s.cli.run(&[
        "connect",
        "cluster",
        "--role",
        "viewer",
        "--exec",
        "python3",
        &script.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        got["pods"]
            .as_array()
            .is_some_and(|p| p.iter().any(|n| n == "web-1")),
        "{got}"
    );
    assert_eq!(got["data"]["password"], "KioqKg==", "{got}");
    let refused = got["delete"].as_str().unwrap_or_default();
    assert!(
        refused.starts_with("403") && refused.contains("kube-read-only"),
        "{got}"
    );
    assert!(s.fake.object("namespaces", "", "prod").is_some());
}

#[test]
fn config_kube_writes_a_context_that_plain_kubectl_uses_through_the_broker() {
    let s = setup();
    let kubeconfig = s.cache.path().join("kubeconfig");
    let out = s.cli.run(&[
        "config",
        "kube",
        "cluster",
        "--role",
        "viewer",
        "-n",
        "prod",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(written.contains("/v1/kube/cluster"), "{written}");
    assert!(written.contains("kube-credential"), "{written}");
    assert!(
        !written.contains(s.fake.token()),
        "the cluster's token is in the kubeconfig"
    );
    let cache = format!("--cache-dir={}", s.cache.path().display());
    let kubectl = |args: &[&str]| {
        let mut cmd = std::process::Command::new("kubectl");
        for (k, v) in s.cli.env() {
            cmd.env(k, v);
        }
        cmd.env_remove("KUBECONFIG")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--context", "cluster", cache.as_str()])
            .args(args)
            .output()
            .expect("kubectl")
    };
    // No grant yet: the plugin asks for one (viewer is granted at once) and kubectl lists.
    let out = kubectl(&["get", "pods"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("web-1"), "{}", text(&out.stdout));
    let out = kubectl(&["delete", "namespace", "prod"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("kube-read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.fake.requests().iter().any(|r| r.method == "DELETE"));
    let out = kubectl(&["get", "secret", "db-creds", "-o", "jsonpath={.data}"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("KioqKg=="),
        "{}",
        text(&out.stdout)
    );
    // The API server saw the broker, impersonating alice.
    assert!(
        s.fake
            .requests()
            .iter()
            .any(|r| r.impersonate_user.as_deref() == Some("alice"))
    );

    // A credential that is not one gets 401 from the endpoint, and nothing reaches the cluster.
    let before = s.fake.requests().len();
    let forged = std::process::Command::new("curl")
        .args([
            "-q",
            "-s",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(s.broker.ca())
        .args(["-H", "Authorization: Bearer g_0000.not-a-token"])
        .arg(format!(
            "{}/v1/kube/cluster/api/v1/namespaces",
            s.broker.url()
        ))
        .output()
        .expect("curl");
    assert_eq!(text(&forged.stdout), "401");
    assert_eq!(s.fake.requests().len(), before);

    // Revoking the grant ends the endpoint's session; the next call asks for a new grant.
    let list = s.cli.run(&["grant", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let grant = list["grants"][0]["id"]
        .as_str()
        .expect("a grant")
        .to_owned();
    let out = s.cli.run(&["grant", "revoke", &grant, "--reason", "done"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kubectl(&["get", "pods"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = s.cli.run(&["grant", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert!(
        list["grants"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["id"] != grant.as_str())),
        "{list}"
    );
    // The calls under the revoked grant were one recorded session, ended by the revocation.
    let mut ended = String::new();
    sluice_tests::wait_for(
        "the revoked grant's session to end",
        std::time::Duration::from_secs(10),
        || {
            let list = s.cli.run(&["sessions", "list", "--output", "json"]);
            let list: serde_json::Value =
                serde_json::from_slice(&list.stdout).unwrap_or(serde_json::Value::Null);
            let under: Vec<&serde_json::Value> = list["sessions"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter(|x| x["grant"] == grant.as_str())
                        .collect()
                })
                .unwrap_or_default();
            ended = format!("{under:?}");
            under.len() == 1
                && under[0]["end"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("revoked"))
        },
    );
    assert!(!ended.is_empty());

    // exec (a WebSocket upgrade) works through the endpoint too, for a role that allows it.
    let out = s.cli.run(&[
        "config",
        "kube",
        "cluster",
        "--role",
        "ops",
        "--context",
        "cluster-ops",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cmd = std::process::Command::new("kubectl");
    for (k, v) in s.cli.env() {
        cmd.env(k, v);
    }
    let out = cmd
        .env_remove("KUBECONFIG")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["--context", "cluster-ops", cache.as_str()])
        .args([
            "exec",
            "-n",
            "prod",
            "web-1",
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ])
        .output()
        .expect("kubectl exec");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hi");

    // A credential the endpoint has verified once stops working the moment its session token
    // is logged out.
    let credential = s.cli.run(&["kube-credential", "cluster", "--role", "ops"]);
    let credential: serde_json::Value =
        serde_json::from_slice(&credential.stdout).expect("an ExecCredential");
    let token = credential["status"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let call = || {
        let out = std::process::Command::new("curl")
            .args([
                "-q",
                "-s",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(s.broker.ca())
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!(
                "{}/v1/kube/cluster/api/v1/namespaces",
                s.broker.url()
            ))
            .output()
            .expect("curl");
        text(&out.stdout)
    };
    assert_eq!(call(), "200");
    assert_eq!(call(), "200");
    let out = s.cli.run(&["logout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        call(),
        "401",
        "a logged-out token still reached the cluster"
    );
}

#[test]
fn the_broker_can_log_in_to_the_api_server_with_a_client_certificate() {
    let fake = FakeKube::start();
    let address = fake.url().trim_start_matches("https://").to_owned();
    let broker = BrokerBuilder::new()
        .kube_with_cert(
            "cluster",
            &address,
            fake.ca_pem(),
            &fake.client_cert(),
            &fake.client_key(),
        )
        .role("ops", "      max_ttl: 1h\n")
        .rule_with("eng", &[], &["eng"], &["cluster"], &["ops"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    let cache = tempfile::tempdir().expect("cache");
    let out = cli.run(&[
        "kube",
        "cluster",
        "--",
        &format!("--cache-dir={}", cache.path().display()),
        "get",
        "pods",
        "-n",
        "prod",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("web-1"), "{}", text(&out.stdout));
    let logged = fake.requests();
    let pods = logged
        .iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods")
        .expect("the list reached the API server");
    assert_eq!(pods.authorization, "client-cert", "{pods:?}");
    assert_eq!(pods.impersonate_user.as_deref(), Some("alice"));
    // check-config reads the pair; a key that is not one is named.
    std::fs::write(fake.client_key(), "not a key").expect("spoil the key");
    let checked = broker.sluiced(&["check-config"]);
    assert!(!checked.status.success());
    assert!(
        text(&checked.stderr).contains("client_key")
            || text(&checked.stdout).contains("client_key"),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
}
