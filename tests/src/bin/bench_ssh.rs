//! The SSH benchmark: bulk bytes through `ssh host 'cat > /dev/null'` and the setup time of
//! `ssh host true`, direct to a real sshd vs a plain TCP relay (socat) vs `sluice ssh` through
//! the broker (recording on), in one run, as medians over reps and ratios to direct. Also the
//! broker's CPU per GB (utime + stime of `sluiced` from /proc). Not a test: `bench/ssh.sh`.
//!
//! Environment: BENCH_SSH_MB (1024), BENCH_REPS (3).

use sluice_tests::measure::{cpu_seconds, env_num, median, sluiced_pid};
use sluice_tests::{BrokerBuilder, Cli, Sshd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `command` with `input` on stdin; its wall time in seconds.
fn timed(mut command: Command, input: Option<&Path>) -> f64 {
    if let Some(path) = input {
        command.stdin(std::fs::File::open(path).expect("input file"));
    } else {
        command.stdin(Stdio::null());
    }
    let started = Instant::now();
    let out = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn direct(sshd: &Sshd, port: u16, remote: &str) -> Command {
    let mut command = Command::new("ssh");
    command
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(sshd.client_key())
        .args(["-p", &port.to_string()])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .arg(remote);
    command
}

fn main() {
    let megabytes = env_num("BENCH_SSH_MB", 1024);
    let reps = env_num("BENCH_REPS", 3).max(1);
    let sshd = Sshd::start();
    let broker = BrokerBuilder::new()
        .ssh("web", &sshd)
        .role("ops", "      max_ttl: 8h\n")
        .rule_with("eng", &[], &["eng"], &["web"], &["ops"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("bench", &["eng"], "8h"));
    let relay_port = sluice_tests::free_port();
    let mut socat = Command::new("socat")
        .arg(format!(
            "TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork"
        ))
        .arg(format!("TCP:{}", sshd.address()))
        .spawn()
        .expect("socat (apt-get install socat)");
    sluice_tests::wait_for("socat", std::time::Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", relay_port)).is_ok()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input");
    let file = std::fs::File::create(&input).expect("input");
    file.set_len(megabytes * 1024 * 1024).expect("size");
    drop(file);
    let sluice = |remote: &str| {
        let mut command = cli.cmd();
        command.args(["ssh", "web", "--role", "ops", "--", remote]);
        command
    };
    // Warm up: the grant, the key exchange paths, the page cache.
    timed(sluice("true"), None);
    timed(direct(&sshd, sshd.port, "true"), None);

    let pid = sluiced_pid();
    let mut rows = Vec::new();
    for (name, path) in ["direct", "socat", "sluice"].iter().zip([0, 1, 2]) {
        let (mut bulk, mut setup, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let make = |remote: &str| match path {
                0 => direct(&sshd, sshd.port, remote),
                1 => direct(&sshd, relay_port, remote),
                _ => sluice(remote),
            };
            let before = pid.map(cpu_seconds);
            bulk.push(timed(make("cat > /dev/null"), Some(&input)));
            if let (Some(pid), Some(before)) = (pid, before) {
                cpu.push((cpu_seconds(pid) - before) / (megabytes as f64 / 1024.0));
            }
            setup.push(timed(make("true"), None));
        }
        let seconds = median(bulk);
        rows.push((
            *name,
            megabytes as f64 / seconds,
            median(setup) * 1000.0,
            if path == 2 { median(cpu) } else { f64::NAN },
        ));
    }
    let _ = socat.kill();
    let _ = socat.wait();
    let direct_mbs = rows[0].1;
    let direct_ms = rows[0].2;
    println!(
        "SSH through Sluice vs direct vs a plain relay: {megabytes} MiB through `ssh host 'cat > /dev/null'`, `ssh host true`; median of {reps}\n"
    );
    println!(
        "| path | bulk MB/s | × direct | `ssh host true` ms | + ms vs direct | sluiced CPU s/GB |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, mbs, ms, cpu) in &rows {
        println!(
            "| {name} | {mbs:.1} | {:.2} | {ms:.0} | {:+.0} | {} |",
            mbs / direct_mbs,
            ms - direct_ms,
            if cpu.is_nan() {
                "-".to_owned()
            } else {
                format!("{cpu:.2}")
            }
        );
    }
    println!(
        "\n`sluice ssh` times include its own start: the grant check (reused), a per-connect key (ssh-keygen) and the TLS tunnel."
    );
}
