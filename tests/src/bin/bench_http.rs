//! The HTTP benchmark: requests per second and p50/p99 latency of a small GET (8 concurrent
//! keep-alive clients) and the MB/s of a large response, direct to the test service vs through
//! a plain TCP relay (socat) vs through `sluice connect` and the broker (no masking, then a role
//! that masks JSON with detectors and a path), in one run; the broker's CPU per 1,000 requests.
//! Not a test: `bench/http.sh`. The client is `curl --parallel` (one process, reused
//! connections).
//!
//! Environment: BENCH_HTTP_REQUESTS (20000), BENCH_HTTP_MB (100), BENCH_REPS (3).

use sluice_fake_http::FakeHttp;
use sluice_tests::measure::{
    HttpTarget, cpu_seconds, curl_gets, env_num, median, percentile, sluiced_pid,
};
use sluice_tests::{BrokerBuilder, Cli, free_port};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `sluice connect api --role ROLE` in the background; its target.
fn connect(cli: &Cli, role: &str) -> (Child, HttpTarget) {
    let mut child = cli
        .cmd()
        .args(["connect", "api", "--role", role, "--output", "json"])
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
    let target = HttpTarget {
        url: details["url"].as_str().expect("url").to_owned(),
        header: details["header"].as_str().map(str::to_owned),
        ca: None,
    };
    (child, target)
}

/// `socat` relaying a free local port to `address`.
fn relay(address: &str) -> (Child, HttpTarget) {
    let port = free_port();
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("TCP:{address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (apt install socat)");
    sluice_tests::wait_for(
        "socat to listen",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    (
        child,
        HttpTarget {
            url: format!("http://127.0.0.1:{port}"),
            header: None,
            ca: None,
        },
    )
}

fn main() {
    let requests = env_num("BENCH_HTTP_REQUESTS", 20000);
    let mb = env_num("BENCH_HTTP_MB", 100);
    let reps = env_num("BENCH_REPS", 3).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let service = FakeHttp::start();
    let broker = BrokerBuilder::new()
        .http(
            "api",
            &format!(
                "    address: {}\n    plaintext: true\n    inject:\n      bearer: env:API_TOKEN\n",
                service.address()
            ),
            &[("API_TOKEN", "bench-upstream-token-1234")],
        )
        .role("plain", "      max_ttl: 1h\n")
        .role(
            "masked",
            "      max_ttl: 1h\n      http: {masking: pii, mask: [\"$.rows[*].note\"]}\n",
        )
        .policy_extra(
            "  masking:\n    pii:\n      detectors:\n        - {name: mails, detector: email, style: redact}\n",
        )
        .rule_with("eng", &[], &["eng"], &["api"], &["plain", "masked"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "8h"));
    let pid = sluiced_pid();

    let direct = HttpTarget {
        url: service.url(),
        header: None,
        ca: None,
    };
    let (mut socat, relayed) = relay(&service.address());
    let (mut plain_child, plain) = connect(&cli, "plain");
    let (mut masked_child, masked) = connect(&cli, "masked");
    // The masking role reads JSON only, so the large JSON answer is measured on every path.
    let json_mb = mb;
    // Throughput counts the service's bytes: a masked answer is shorter than what the broker
    // read and rewrote (every long note becomes a short mask), so its own length would
    // understate the path by the masks' savings.
    let (_, _, json_bytes) = curl_gets(
        &direct,
        &format!("/big.json?mb={json_mb}"),
        1,
        1,
        dir.path(),
    );
    println!(
        "HTTP through Sluice vs direct vs socat: {requests} GETs of a small JSON answer, 8 concurrent keep-alive clients \
         (curl --parallel); one {mb} MB response (bytes), and one {json_mb} MB JSON response (masked for sluice-masked; MB/s of the service's bytes, not the shorter masked output); median of {reps}\n"
    );
    println!(
        "| path | GET req/s | × direct | p50 ms | p99 ms | + p99 ms | {mb} MB MB/s | × direct | {json_mb} MB JSON MB/s | × direct | sluiced CPU s/1k req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut base: Option<(f64, f64, f64, f64)> = None;
    for (name, target) in [
        ("direct", &direct),
        ("socat", &relayed),
        ("sluice", &plain),
        ("sluice-masked", &masked),
    ] {
        // BENCH_HTTP_ONLY=sluice-masked measures one path (e.g. under a profiler); ratios then
        // compare with that path itself.
        if std::env::var("BENCH_HTTP_ONLY").is_ok_and(|only| only != name) {
            continue;
        }
        let mut rps = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut big = Vec::new();
        let mut json = Vec::new();
        let mut cpu = Vec::new();
        let _ = curl_gets(target, "/small", 50, 8, dir.path());
        for _ in 0..reps {
            let before = pid.map(cpu_seconds);
            let (wall, times, _) = curl_gets(target, "/small", requests, 8, dir.path());
            if let (Some(pid), Some(before)) = (pid, before)
                && name.starts_with("sluice")
            {
                cpu.push((cpu_seconds(pid) - before) / (requests as f64 / 1000.0));
            }
            rps.push(requests as f64 / wall);
            p50.push(percentile(&times, 0.5) * 1000.0);
            p99.push(percentile(&times, 0.99) * 1000.0);
            if name != "sluice-masked" {
                let (wall, _, bytes) =
                    curl_gets(target, &format!("/big?mb={mb}"), 1, 1, dir.path());
                big.push(bytes as f64 / 1e6 / wall);
            }
            let (wall, _, _) =
                curl_gets(target, &format!("/big.json?mb={json_mb}"), 1, 1, dir.path());
            json.push(json_bytes as f64 / 1e6 / wall);
        }
        let (rps, p50, p99, json) = (median(rps), median(p50), median(p99), median(json));
        let big = if big.is_empty() {
            f64::NAN
        } else {
            median(big)
        };
        let (base_rps, base_p99, base_big, base_json) = *base.get_or_insert((rps, p99, big, json));
        let cpu = if cpu.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.3}", median(cpu))
        };
        let (big_text, big_ratio) = if big.is_nan() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (format!("{big:.1}"), format!("{:.2}", big / base_big))
        };
        println!(
            "| {name} | {rps:.0} | {:.2} | {p50:.2} | {p99:.2} | {:+.2} | {big_text} | {big_ratio} | {json:.1} | {:.2} | {cpu} |",
            rps / base_rps,
            p99 - base_p99,
            json / base_json
        );
    }
    for child in [&mut plain_child, &mut masked_child, &mut socat] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
