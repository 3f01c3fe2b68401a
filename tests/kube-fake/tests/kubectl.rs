//! The fake checked against real kubectl (`$KUBECTL`, default `kubectl` on PATH: 1.32 here).
//! Every run gets its own HOME, `--cache-dir` and a kubeconfig from `FakeKube::kubeconfig`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use sluice_fake_kube::FakeKube;

struct Kubectl {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Kubectl {
    fn new(kube: &FakeKube) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = kube.kubeconfig(dir.path());
        Kubectl { dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut c = Command::new(bin);
        c.env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.config)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--request-timeout=30s")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("kubectl runs (set KUBECTL to its path)")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("writing stdin");
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Succeeds or fails the test with kubectl's stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn get_pods_prints_a_table() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.ok(&["get", "pods", "-n", "prod"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATUS") && lines[0].contains("AGE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-1") && l.contains("Running")),
        "{out}"
    );
    assert!(out.contains("debug-1"), "{out}");
    let list = kube
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/api/v1/namespaces/prod/pods")
        .expect("the pod list was requested");
    assert!(
        list.accept
            .as_deref()
            .unwrap_or_default()
            .contains("as=Table")
    );
    assert_eq!(list.status, 200);
}

#[test]
fn get_secret_json_shows_the_data() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.ok(&["get", "secret", "db-creds", "-n", "prod", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("kubectl printed JSON");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(v["kind"], "Secret");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["data"]["username"], b64("app"));
    assert_eq!(v["data"]["password"], b64("s3cr3t-VALUE"));
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(v["metadata"]["resourceVersion"].as_str().is_some());
    assert!(
        v["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let last_applied =
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation");
    assert!(last_applied.contains(&b64("s3cr3t-VALUE")));
    // The table never shows values: Data is a count.
    let table = k.ok(&["get", "secrets", "-n", "prod"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db-creds") && l.contains("Opaque") && l.contains(" 2 ")),
        "{table}"
    );
    assert!(!table.contains(&b64("s3cr3t-VALUE")));
}

#[test]
fn get_namespaces_and_deployments() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.ok(&["get", "ns"]);
    for ns in ["default", "kube-system", "prod"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{out}"
        );
    }
    let out = k.ok(&["get", "deploy", "-n", "prod"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("web ") && l.contains("2/2")),
        "{out}"
    );
    let out = k.ok(&[
        "get",
        "cm",
        "settings",
        "-n",
        "prod",
        "-o",
        "jsonpath={.data.LOG_LEVEL}",
    ]);
    assert_eq!(out, "info");
}

#[test]
fn delete_then_get_is_not_found() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.ok(&["delete", "deployment", "web", "-n", "prod"]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let out = k.run(&["get", "deployment", "web", "-n", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
    assert!(kube.object("deployments", "prod", "web").is_none());
}

#[test]
fn server_dry_run_delete_leaves_the_object() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        "prod",
        "--dry-run=server",
    ]);
    assert!(out.contains("(server dry run)"), "{out}");
    assert!(kube.object("deployments", "prod", "web").is_some());
    assert!(
        k.ok(&["get", "deployment", "web", "-n", "prod"])
            .contains("web")
    );
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.method == "DELETE"
                && r.path == "/apis/apps/v1/namespaces/prod/deployments/web")
    );
}

#[test]
fn namespace_delete_cascades() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    k.ok(&["delete", "ns", "prod"]);
    let out = k.run(&["get", "pods", "-n", "prod"]);
    assert!(
        text(&out.stderr).contains("No resources found in prod namespace."),
        "{}",
        text(&out.stderr)
    );
    assert!(kube.object("secrets", "prod", "db-creds").is_none());
}

#[test]
fn chunked_list_pages_through_5000_configmaps() {
    let kube = FakeKube::start();
    kube.seed_many("bulk", "configmaps", 5000);
    let k = Kubectl::new(&kube);
    let out = k.ok(&[
        "get",
        "configmaps",
        "-n",
        "bulk",
        "--chunk-size=500",
        "--no-headers",
    ]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names.len(), 5000);
    assert_eq!(names.first(), Some(&"configmap-00000"));
    assert_eq!(names.last(), Some(&"configmap-04999"));
    let pages: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/bulk/configmaps")
        .collect();
    assert_eq!(pages.len(), 10, "{pages:?}");
    assert_eq!(
        pages
            .iter()
            .filter(|r| r.query.contains("continue="))
            .count(),
        9
    );
    assert!(pages.iter().all(|r| r.query.contains("limit=500")));
}

#[test]
fn get_watch_streams_new_pods() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let mut child = k
        .command(&["get", "pods", "-n", "prod", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?}: {e}"),
            }
        }
    };
    wait_for("web-1");
    let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"late-1"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    let created = k.run_with_stdin(
        &["create", "--validate=false", "-n", "prod", "-f", "-"],
        pod,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let line = wait_for("late-1");
    assert!(line.contains("Pending"), "{line}");
    // Still running: the event was streamed, not delivered at the end of the response.
    assert!(child.try_wait().expect("child status").is_none());
    child.kill().expect("kill kubectl");
    let _ = child.wait();
    let watch = kube
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods" && r.query.contains("watch="))
        .expect("a watch request");
    assert!(watch.query.contains("resourceVersion="), "{watch:?}");
}

#[test]
fn raw_watch_honours_timeout_and_sends_events() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let started = std::time::Instant::now();
    let out = k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/prod/pods?watch=1&timeoutSeconds=1",
    ]);
    assert!(started.elapsed() < Duration::from_secs(15));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "ADDED" && e["object"]["kind"] == "Pod")
    );
}

#[test]
fn exec_splits_streams_and_returns_the_exit_code() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.run(&[
        "exec",
        "-n",
        "prod",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    let err = text(&out.stderr);
    assert!(err.starts_with("err\n"), "{err}");
    assert!(err.contains("command terminated with exit code 3"), "{err}");

    let out = k.run(&[
        "exec",
        "-n",
        "prod",
        "web-1",
        "--",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "hi\n");

    let out = k.run_with_stdin(
        &["exec", "-i", "-n", "prod", "web-1", "--", "cat"],
        b"hello\nworld\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\nworld\n");

    assert_eq!(
        k.ok(&["exec", "-n", "prod", "debug-1", "--", "echo", "a", "b"]),
        "a b\n"
    );

    let execs: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/prod/pods/web-1/exec")
        .collect();
    assert_eq!(execs.len(), 3);
    assert!(
        execs.iter().all(|r| r.status == 101
            && (r.query.contains("command=sh") || r.query.contains("command=cat")))
    );
}

#[test]
fn wrong_token_is_unauthorized() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let config = std::fs::read_to_string(&k.config).expect("kubeconfig");
    std::fs::write(&k.config, config.replace(kube.token(), "not-the-token"))
        .expect("rewrite kubeconfig");
    // Cold discovery: kubectl reports the 401 from discovery generically (as with a real cluster).
    let out = k.run(&["get", "pods", "-n", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );
    // A plain request decodes the Status body.
    let out = k.run(&["get", "--raw", "/api/v1/namespaces/prod/pods"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
    let log = kube.requests();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|r| r.status == 401 && r.authorization == "present")
    );
}

#[test]
fn status_errors_carry_the_http_code() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.run(&["get", "--raw", "/api/v1/namespaces/prod/pods/nope"]);
    assert!(text(&out.stderr).contains("Error from server (NotFound): pods \"nope\" not found"));
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("cm.json");
    std::fs::write(
        &body,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"}}"#,
    )
    .expect("body");
    let body = body.to_string_lossy().into_owned();
    let out = k.run(&["create", "-n", "prod", "--validate=false", "-f", &body]);
    let err = text(&out.stderr);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"settings\" already exists"),
        "{err}"
    );
    let out = k.run(&[
        "create",
        "--raw",
        "/api/v1/namespaces/prod/pods/web-1",
        "-f",
        &body,
    ]);
    assert!(
        text(&out.stderr).contains("MethodNotAllowed"),
        "{}",
        text(&out.stderr)
    );
    let codes: Vec<u16> = kube.requests().iter().map(|r| r.status).collect();
    assert!(
        codes.contains(&404) && codes.contains(&409) && codes.contains(&405),
        "{codes:?}"
    );
}

#[test]
fn impersonation_is_logged_and_forbidden_users_get_403() {
    let kube = FakeKube::start();
    kube.forbid_user("mallory");
    let k = Kubectl::new(&kube);
    k.ok(&[
        "get",
        "pods",
        "-n",
        "prod",
        "--as=alice",
        "--as-group=devs",
        "--as-group=ops",
    ]);
    let list = kube
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods")
        .expect("list request");
    assert_eq!(list.impersonate_user.as_deref(), Some("alice"));
    assert_eq!(list.impersonate_groups, vec!["devs", "ops"]);
    let out = k.run(&["get", "pods", "-n", "prod", "--as=mallory"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Error from server (Forbidden): pods is forbidden: User \"mallory\" cannot list resource \"pods\" in API group \"\" in the namespace \"prod\""),
        "{err}"
    );
}

#[test]
fn patch_scale_and_deletecollection() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "prod",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        "prod",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/LOG_LEVEL","value":"debug"}]"#,
    ]);
    k.ok(&["scale", "deploy", "web", "-n", "prod", "--replicas=3"]);
    // Server-side dry runs answer as if, and change nothing.
    let out = k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "prod",
        "--dry-run=server",
        "-p",
        r#"{"spec":{"replicas":9}}"#,
    ]);
    assert!(out.contains("deployment.apps/web patched"), "{out}");
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.query.contains("dryRun=All"))
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("cm.json");
    std::fs::write(
        &body,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"}}"#,
    )
    .expect("body");
    let out = k.ok(&[
        "create",
        "-n",
        "prod",
        "--validate=false",
        "--dry-run=server",
        "-f",
        &body.to_string_lossy(),
    ]);
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    assert!(kube.object("cm", "prod", "dry").is_none());
    let d = kube
        .object("deployments", "prod", "web")
        .expect("deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 3);
    assert_eq!(
        kube.object("cm", "prod", "settings").expect("cm")["data"]["LOG_LEVEL"],
        "debug"
    );
    kube.seed_many("bulk", "configmaps", 3);
    let out = k.ok(&["delete", "--raw", "/api/v1/namespaces/bulk/configmaps"]);
    let v: Value = serde_json::from_str(&out).expect("a ConfigMapList");
    assert_eq!(v["kind"], "ConfigMapList");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(3));
    assert!(
        k.run(&["get", "cm", "-n", "bulk"])
            .stderr
            .starts_with(b"No resources found")
    );
}

/// kubectl's own request trace (`-v=6`) and the fake's log agree, request for request.
#[test]
fn every_request_is_logged() {
    let kube = FakeKube::start();
    let k = Kubectl::new(&kube);
    let out = k.run(&["get", "pods", "-n", "prod", "-v=6"]);
    assert!(out.status.success());
    let url = kube.url();
    let traced: Vec<String> = text(&out.stderr)
        .lines()
        .filter_map(|l| trace_line(l, &url))
        .collect();
    let logged: Vec<String> = kube
        .requests()
        .iter()
        .map(|r| {
            if r.query.is_empty() {
                format!("{} {}", r.method, r.path)
            } else {
                format!("{} {}?{}", r.method, r.path, r.query)
            }
        })
        .collect();
    let mut sorted_traced = traced.clone();
    // kubectl's version-skew check (`/version`) is fired in the background and may not be
    // traced before kubectl exits; everything else must match.
    let mut sorted_logged: Vec<String> = logged
        .iter()
        .filter(|l| !l.starts_with("GET /version?") || traced.contains(l))
        .cloned()
        .collect();
    sorted_traced.sort();
    sorted_logged.sort();
    assert!(traced.len() >= 5, "discovery and the list: {traced:?}");
    // Discovery runs in parallel, so compare as sets of requests.
    assert_eq!(sorted_traced, sorted_logged);
    assert!(kube.requests().iter().all(|r| r.authorization == "present"));
}

/// `METHOD PATH?QUERY` from a kubectl `-v=6` response line, in either the 1.32 form
/// (`] GET https://... 200 OK`) or the 1.33 structured form (`"Response" verb="GET" url="..."`).
fn trace_line(l: &str, url: &str) -> Option<String> {
    const STRUCTURED: &str = "\"Response\" verb=\"";
    if let Some(at) = l.find(STRUCTURED) {
        let rest = &l[at + STRUCTURED.len()..];
        let (method, rest) = rest.split_once('"')?;
        let rest = rest.split_once("url=\"")?.1;
        let (full, _) = rest.split_once('"')?;
        return Some(format!("{method} {}", full.strip_prefix(url)?));
    }
    let rest = &l[l.find("] ")? + 2..];
    let (method, rest) = rest.split_once(' ')?;
    let target = rest.split_whitespace().next()?.strip_prefix(url)?;
    Some(format!("{method} {target}"))
}
