//! The Kubernetes benchmark: requests per second and p50/p99 latency of a small GET (8
//! concurrent keep-alive clients), and the MB/s of a large list, direct to the test API server
//! vs through `sluice connect` and the broker (no masking, then a role whose detectors scan
//! every string) and through the broker's own endpoint (`sluice config kube`), in one run; the
//! broker's CPU per 1,000 requests. Not a test: `bench/kube.sh`. The client is `curl
//! --parallel` (one process, reused connections).
//!
//! Environment: BENCH_KUBE_REQUESTS (20000), BENCH_KUBE_OBJECTS (20000), BENCH_REPS (3).

use base64::Engine as _;
use sluice_fake_kube::FakeKube;
use sluice_tests::measure::{
    HttpTarget, cpu_seconds, curl_gets, env_num, median, percentile, sluiced_pid,
};
use sluice_tests::{BrokerBuilder, Cli};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

/// `sluice connect cluster --role ROLE` in the background; its target.
fn connect(cli: &Cli, role: &str, dir: &Path) -> (Child, HttpTarget) {
    let mut child = cli
        .cmd()
        .args(["connect", "cluster", "--role", role, "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice connect");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("connect output");
    let details: serde_json::Value = serde_json::from_str(&line).expect("connect json");
    let kubeconfig = details["kubeconfig"].as_str().expect("kubeconfig path");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(kubeconfig).expect("kubeconfig"))
            .expect("kubeconfig json");
    let cluster = &config["clusters"][0]["cluster"];
    let pem = base64::engine::general_purpose::STANDARD
        .decode(
            cluster["certificate-authority-data"]
                .as_str()
                .unwrap_or_default(),
        )
        .expect("ca data");
    let ca = dir.join(format!("{role}-ca.pem"));
    std::fs::write(&ca, pem).expect("ca file");
    let target = HttpTarget {
        url: cluster["server"].as_str().unwrap_or_default().to_owned(),
        header: config["users"][0]["user"]["token"]
            .as_str()
            .map(|token| format!("Authorization: Bearer {token}")),
        ca: Some(ca),
    };
    (child, target)
}

fn main() {
    let requests = env_num("BENCH_KUBE_REQUESTS", 20000);
    let objects = env_num("BENCH_KUBE_OBJECTS", 20000);
    let reps = env_num("BENCH_REPS", 3).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeKube::start();
    fake.seed_many("bulk", "configmaps", objects as usize);
    let address = fake.url().trim_start_matches("https://").to_owned();
    let broker = BrokerBuilder::new()
        .kube("cluster", &address, fake.ca_pem(), fake.token())
        .role("plain", "      max_ttl: 1h\n")
        .role("masked", "      max_ttl: 1h\n      kube: {masking: pii}\n")
        .policy_extra(
            "  masking:\n    pii:\n      detectors:\n        - {name: keys, detector: secret, style: redact}\n        - {name: mails, detector: email, style: redact}\n",
        )
        .rule_with("eng", &[], &["eng"], &["cluster"], &["plain", "masked"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "8h"));
    let pid = sluiced_pid();

    let direct = HttpTarget {
        url: fake.url(),
        header: Some(format!("Authorization: Bearer {}", fake.token())),
        ca: Some(fake.ca_pem().to_path_buf()),
    };
    let (mut plain_child, plain) = connect(&cli, "plain", dir.path());
    // The broker's own endpoint, as `sluice config kube` has kubectl reach it: no CLI hop.
    let credential = cli.run(&["kube-credential", "cluster", "--role", "plain"]);
    let credential: serde_json::Value =
        serde_json::from_slice(&credential.stdout).expect("an ExecCredential");
    let endpoint = HttpTarget {
        url: format!("{}/v1/kube/cluster", broker.url()),
        header: credential["status"]["token"]
            .as_str()
            .map(|token| format!("Authorization: Bearer {token}")),
        ca: Some(broker.ca()),
    };
    let (mut masked_child, masked) = connect(&cli, "masked", dir.path());
    let small = "/api/v1/namespaces/prod/pods/web-1";
    let large = "/api/v1/namespaces/bulk/configmaps";
    println!(
        "Kubernetes through Sluice vs direct: {requests} GETs of one pod, 8 concurrent keep-alive clients (curl --parallel); \
         a list of {objects} configmaps; median of {reps}\n"
    );
    println!(
        "| path | GET req/s | × direct | p50 ms | p99 ms | + p99 ms | list MB/s | × direct | sluiced CPU s/1k req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut base: Option<(f64, f64, f64)> = None;
    for (name, target) in [
        ("direct", &direct),
        ("sluice", &plain),
        ("sluice-endpoint", &endpoint),
        ("sluice-masked", &masked),
    ] {
        let mut rps = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut mbps = Vec::new();
        let mut cpu = Vec::new();
        // Warm up discovery-free paths and connections.
        let _ = curl_gets(target, small, 50, 8, dir.path());
        for _ in 0..reps {
            let before = pid.map(cpu_seconds);
            let (wall, times, _) = curl_gets(target, small, requests, 8, dir.path());
            if let (Some(pid), Some(before)) = (pid, before)
                && name != "direct"
            {
                cpu.push((cpu_seconds(pid) - before) / (requests as f64 / 1000.0));
            }
            rps.push(requests as f64 / wall);
            p50.push(percentile(&times, 0.5) * 1000.0);
            p99.push(percentile(&times, 0.99) * 1000.0);
            let (wall, _, bytes) = curl_gets(target, large, 1, 1, dir.path());
            mbps.push(bytes as f64 / 1e6 / wall);
        }
        let (rps, p50, p99, mbps) = (median(rps), median(p50), median(p99), median(mbps));
        let (base_rps, base_p99, base_mbps) = *base.get_or_insert((rps, p99, mbps));
        let cpu = if cpu.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.3}", median(cpu))
        };
        println!(
            "| {name} | {rps:.0} | {:.2} | {p50:.2} | {p99:.2} | {:+.2} | {mbps:.1} | {:.2} | {cpu} |",
            rps / base_rps,
            p99 - base_p99,
            mbps / base_mbps
        );
    }
    let _ = plain_child.kill();
    let _ = masked_child.kill();
    let _ = plain_child.wait();
    let _ = masked_child.wait();
}
