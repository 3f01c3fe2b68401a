//! What the benchmark binaries share: settings from the environment, medians and percentiles,
//! and the broker's CPU time read from /proc.

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at fraction `p` (0.5 the median, 0.99 the p99) of `values`; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// The median of `values`.
pub fn median(values: Vec<f64>) -> f64 {
    percentile(&values, 0.5)
}

/// A process's CPU seconds so far (utime + stime from /proc).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The newest `sluiced serve` process.
pub fn sluiced_pid() -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-n", "-f", "sluiced serve"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Where a benchmark's HTTP client sends requests: base URL, a header to add (a bearer token),
/// and the CA to trust for HTTPS.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// `http(s)://127.0.0.1:PORT`.
    pub url: String,
    /// `Name: value` added to every request.
    pub header: Option<String>,
    /// PEM file of the CA, for HTTPS.
    pub ca: Option<std::path::PathBuf>,
}

/// `count` GETs of `path`, `parallel` at a time over kept-alive connections, by one
/// `curl --parallel` process; (wall seconds, seconds per request, bytes). Panics when a request
/// fails: a benchmark of errors measures nothing.
pub fn curl_gets(
    target: &HttpTarget,
    path: &str,
    count: u64,
    parallel: u64,
    dir: &std::path::Path,
) -> (f64, Vec<f64>, u64) {
    let config = dir.join("curl.cfg");
    let mut text = String::new();
    if let Some(header) = &target.header {
        text.push_str(&format!("header = \"{header}\"\n"));
    }
    for _ in 0..count {
        text.push_str(&format!(
            "url = \"{}{path}\"\noutput = \"/dev/null\"\n",
            target.url
        ));
    }
    std::fs::write(&config, text).expect("curl config");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-q", "-s", "--fail", "--noproxy", "*"])
        .args(["--parallel", "--parallel-immediate", "--parallel-max"])
        .arg(parallel.to_string());
    if let Some(ca) = &target.ca {
        cmd.arg("--cacert").arg(ca);
    }
    let started = std::time::Instant::now();
    let out = cmd
        .arg("-K")
        .arg(&config)
        .args(["-w", "%{time_total} %{size_download} %{http_code}\\n"])
        .output()
        .expect("curl");
    let wall = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let mut bytes = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(t), Some(b), Some(code)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        assert_eq!(code, "200", "a request failed: {line}");
        times.push(t.parse().unwrap_or(f64::NAN));
        bytes += b.parse::<u64>().unwrap_or(0);
    }
    assert_eq!(
        times.len() as u64,
        count,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, times, bytes)
}
