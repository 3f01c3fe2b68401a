//! `sluice-bench`: one PostgreSQL, five ways to reach it, measured side by side on this machine.
//!
//! Paths: `direct` (127.0.0.1:PGPORT), `socat` (a plain forking TCP relay: the floor any proxy
//! pays), `pgbouncer` (session mode), `sluice` (`sluice connect`: psql → CLI → TLS → sluiced →
//! PostgreSQL, under a role with no guardrails or masking, so sluiced relays bytes) and
//! `sluice-guarded` (the same broker, a second tunnel under a role with `guardrails:
//! guarded-write` and a masking profile, so sluiced runs the enforcing relay: every statement
//! classified and decided, every result row and COPY line masked). Workloads: `pgbench -S` at
//! `-c 1` and `-c 8`, `pgbench -S -M extended -c 8`, and
//! `\copy (select * from pgbench_accounts) to /dev/null`.
//!
//! Every rep runs every path for a workload back to back (path order rotated per rep), so drift
//! hits all paths alike; the table shows the median over reps. Proxy CPU comes from
//! /proc/PID/stat (utime+stime, and cutime+cstime for socat's forked children) read before and
//! after each run. This is a benchmark: it reports, it asserts nothing.
//!
//! Settings (flag or environment variable):
//! `--seconds`/`BENCH_SECONDS` (20), `--reps`/`BENCH_REPS` (3), `--scale`/`BENCH_SCALE` (20),
//! `--out`/`BENCH_OUT` (also write the results as Markdown), `--paths`/`BENCH_PATHS`
//! (direct,socat,pgbouncer,sluice,sluice-guarded), `--workloads`/`BENCH_WORKLOADS`
//! (c1,c8,c8x,c8p,c8c,copy), `--perf`/`BENCH_PERF` (after the measured reps, record `perf record -g` of
//! sluiced and the sluice CLI during one extra, unrecorded `-c 8` run through the `sluice` path
//! into this file).

use sluice_tests::{BrokerBuilder, Cli, Postgres};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    seconds: u64,
    reps: usize,
    scale: u32,
    out: Option<PathBuf>,
    perf: Option<PathBuf>,
    paths: Vec<PathKind>,
    workloads: Vec<Workload>,
}

/// Every path, in table order; the default of `--paths`.
const DEFAULT_PATHS: &str = "direct,socat,pgbouncer,sluice,sluice-guarded";

const USAGE: &str =
    "usage: sluice-bench [--seconds N] [--reps N] [--scale N] [--out FILE.md] [--perf FILE.data]
                    [--paths direct,socat,pgbouncer,sluice,sluice-guarded]
                    [--workloads c1,c8,c8x,c8p,c8c,copy]
Each flag has an environment variable: BENCH_SECONDS (20), BENCH_REPS (3), BENCH_SCALE (20),
BENCH_OUT, BENCH_PERF, BENCH_PATHS, BENCH_WORKLOADS.";

impl Settings {
    fn load() -> Result<Self, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut seconds = env("BENCH_SECONDS").unwrap_or_else(|| "20".into());
        let mut reps = env("BENCH_REPS").unwrap_or_else(|| "3".into());
        let mut scale = env("BENCH_SCALE").unwrap_or_else(|| "20".into());
        let mut out = env("BENCH_OUT");
        let mut perf = env("BENCH_PERF");
        let mut paths = env("BENCH_PATHS").unwrap_or_else(|| DEFAULT_PATHS.into());
        let mut workloads =
            env("BENCH_WORKLOADS").unwrap_or_else(|| "c1,c8,c8x,c8p,c8c,copy".into());
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if name == "-h" || name == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let slot = match name.as_str() {
                "--seconds" => &mut seconds,
                "--reps" => &mut reps,
                "--scale" => &mut scale,
                "--paths" => &mut paths,
                "--workloads" => &mut workloads,
                "--out" | "--perf" => {
                    let value = inline
                        .or_else(|| args.next())
                        .ok_or(format!("{name} needs a value"))?;
                    if name == "--out" {
                        out = Some(value);
                    } else {
                        perf = Some(value);
                    }
                    continue;
                }
                _ => return Err(format!("unknown argument `{arg}`\n{USAGE}")),
            };
            *slot = inline
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))?;
        }
        let num = |what: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{what}: `{v}` is not a number"))
        };
        let paths = paths
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                PathKind::parse(s.trim()).ok_or(format!("unknown path `{s}` ({DEFAULT_PATHS})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let workloads = workloads
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                Workload::parse(s.trim()).ok_or(format!(
                    "unknown workload `{s}` (c1, c8, c8x, c8p, c8c, copy)"
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            seconds: num("seconds", &seconds)?.max(1),
            reps: (num("reps", &reps)? as usize).max(1),
            scale: (num("scale", &scale)? as u32).max(1),
            out: out.map(PathBuf::from),
            perf: perf.map(PathBuf::from),
            paths,
            workloads,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and workloads

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Direct,
    Socat,
    PgBouncer,
    /// `sluice connect` under role `use`: no guardrails, no masking; the message relay records
    /// every statement (as every PostgreSQL session is).
    Sluice,
    /// `sluice connect` under role `guarded`: guarded-write and masking profile `bench` (the
    /// enforcing relay).
    SluiceGuarded,
}

impl PathKind {
    const ALL: [PathKind; 5] = [
        PathKind::Direct,
        PathKind::Socat,
        PathKind::PgBouncer,
        PathKind::Sluice,
        PathKind::SluiceGuarded,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    fn name(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Socat => "socat",
            PathKind::PgBouncer => "pgbouncer",
            PathKind::Sluice => "sluice",
            PathKind::SluiceGuarded => "sluice-guarded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `pgbench -S -c 1`
    C1,
    /// `pgbench -S -c 8`
    C8,
    /// `pgbench -S -M extended -c 8`
    C8Extended,
    /// `pgbench -S -M prepared -c 8`
    C8Prepared,
    /// `pgbench -S -C -c 8`: a new connection (for Sluice: a new tunnel, TLS, token check and
    /// upstream login) per transaction
    C8Connect,
    /// `\copy (select * from pgbench_accounts) to /dev/null`
    Copy,
}

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::C1,
        Workload::C8,
        Workload::C8Extended,
        Workload::C8Prepared,
        Workload::C8Connect,
        Workload::Copy,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.key() == s)
    }

    fn key(self) -> &'static str {
        match self {
            Workload::C1 => "c1",
            Workload::C8 => "c8",
            Workload::C8Extended => "c8x",
            Workload::C8Prepared => "c8p",
            Workload::C8Connect => "c8c",
            Workload::Copy => "copy",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Workload::C1 => "pgbench -S -c 1",
            Workload::C8 => "pgbench -S -c 8",
            Workload::C8Extended => "pgbench -S -M extended -c 8",
            Workload::C8Prepared => "pgbench -S -M prepared -c 8",
            Workload::C8Connect => "pgbench -S -C -c 8",
            Workload::Copy => "\\copy pgbench_accounts",
        }
    }

    /// (clients, `-M` query mode, `-C`) for pgbench workloads.
    fn pgbench(self) -> Option<(u32, &'static str, bool)> {
        match self {
            Workload::C1 => Some((1, "simple", false)),
            Workload::C8 => Some((8, "simple", false)),
            Workload::C8Extended => Some((8, "extended", false)),
            Workload::C8Prepared => Some((8, "prepared", false)),
            Workload::C8Connect => Some((8, "simple", true)),
            Workload::Copy => None,
        }
    }
}

/// Where a libpq client connects for one path.
#[derive(Debug, Clone)]
struct Endpoint {
    port: u16,
    user: String,
    password: String,
    database: String,
}

impl Endpoint {
    fn apply(&self, cmd: &mut Command) {
        for var in [
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGPASSFILE",
            "PGHOSTADDR",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", &self.database)
            .env("PGSSLMODE", "disable")
            .env("PGAPPNAME", "sluice-bench");
    }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

/// Fields of /proc/PID/stat after the command name: [state, ppid, ..., utime, stime, cutime, cstime].
fn proc_stat(pid: u32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] = state (field 3), fields[1] = ppid (4), fields[11..15] = utime, stime, cutime, cstime (14..17)
    let mut out = vec![0, fields.get(1)?.parse().ok()?];
    for i in 11..15 {
        out.push(fields.get(i)?.parse().ok()?);
    }
    Some(out)
}

/// utime + stime + cutime + cstime of one process, in clock ticks.
fn ticks(pid: u32) -> u64 {
    proc_stat(pid).map(|f| f[2..6].iter().sum()).unwrap_or(0)
}

/// `pid` plus its live children (socat forks one child per connection; reaped children are in
/// the parent's cutime/cstime).
fn tree_ticks(pid: u32) -> u64 {
    let mut total = ticks(pid);
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for entry in rd.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(f) = proc_stat(child)
                && f[1] == u64::from(pid)
            {
                total += f[2..6].iter().sum::<u64>();
            }
        }
    }
    total
}

/// The pid of the process whose command line contains every one of `needles` as an argument.
fn find_pid(needles: &[&str]) -> Option<u32> {
    let rd = std::fs::read_dir("/proc").ok()?;
    for entry in rd.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        if needles.iter().all(|n| args.iter().any(|a| a == n)) {
            return Some(pid);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Side processes

/// A child process killed on drop.
#[derive(Debug)]
struct Guard {
    child: Child,
    what: &'static str,
}

impl Guard {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, guard: &mut Guard, log: Option<&Path>) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = guard.child.try_wait() {
            let log = log
                .and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default();
            return Err(format!(
                "{} exited ({status}) before listening\n{log}",
                guard.what
            ));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not listen on 127.0.0.1:{port} within 20 s",
        guard.what
    ))
}

fn which(name: &str) -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn start_socat(pg_port: u16) -> Result<(Guard, u16), String> {
    let socat = which("socat").ok_or("socat is not installed (apt-get install socat)")?;
    let port = sluice_tests::free_port();
    let child = Command::new(socat)
        .arg(format!("TCP-LISTEN:{port},fork,reuseaddr,bind=127.0.0.1"))
        .arg(format!("TCP:127.0.0.1:{pg_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn socat: {e}"))?;
    let mut guard = Guard {
        child,
        what: "socat",
    };
    wait_listening(port, &mut guard, None)?;
    // The probe connection forked a child that exits now; let it go before measuring.
    std::thread::sleep(Duration::from_millis(200));
    Ok((guard, port))
}

/// uid and gid of the `postgres` OS user when we are root (PgBouncer refuses to run as root).
fn postgres_owner() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let fields: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))?
        .split(':')
        .collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

#[derive(Debug)]
struct PgBouncer {
    guard: Guard,
    port: u16,
    _dir: tempfile::TempDir,
}

fn start_pgbouncer(pg: &Postgres) -> Result<PgBouncer, String> {
    let bin = which("pgbouncer").ok_or("pgbouncer is not installed (apt-get install pgbouncer)")?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench-pgbouncer-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let port = sluice_tests::free_port();
    let d = dir.path().display();
    let ini = format!(
        "[databases]\n{db} = host=127.0.0.1 port={pgport} dbname={db}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {d}/userlist.txt\npool_mode = session\nmax_client_conn = 100\ndefault_pool_size = 20\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits\nlog_connections = 0\nlog_disconnections = 0\n",
        db = pg.database,
        pgport = pg.port,
    );
    let userlist = format!("\"{}\" \"{}\"\n", pg.app_user, pg.app_password);
    std::fs::write(dir.path().join("pgbouncer.ini"), ini).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("userlist.txt"), userlist).map_err(|e| e.to_string())?;
    let owner = postgres_owner();
    if let Some((uid, gid)) = owner {
        for p in [
            dir.path().to_path_buf(),
            dir.path().join("pgbouncer.ini"),
            dir.path().join("userlist.txt"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", p.display()))?;
        }
    }
    let mut cmd = Command::new(bin);
    cmd.arg(dir.path().join("pgbouncer.ini"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let child = cmd.spawn().map_err(|e| format!("spawn pgbouncer: {e}"))?;
    let mut guard = Guard {
        child,
        what: "pgbouncer",
    };
    wait_listening(port, &mut guard, Some(&dir.path().join("pgbouncer.log")))?;
    Ok(PgBouncer {
        guard,
        port,
        _dir: dir,
    })
}

/// The role of the `sluice` path: the harness's `use`, with no guardrails and no masking, so
/// sluiced relays its sessions' bytes without framing them.
const PLAIN_ROLE: &str = "use";
/// The role of the `sluice-guarded` path.
const GUARDED_ROLE: &str = "guarded";
/// Its YAML under `policy.roles`: guarded-write (pgbench -S and `COPY (SELECT ...) TO STDOUT`
/// are allowed) and the masking profile below, so every statement is classified and every
/// row and COPY line goes through the masker.
const GUARDED_ROLE_YAML: &str =
    "      max_ttl: 12h\n      guardrails: guarded-write\n      masking: bench\n";
/// Masking profile `bench` (under `policy:`): the detectors the issue names, and no column
/// rules: a profile with column rules may not COPY out at all (COPY sends no RowDescription to
/// apply them to, so the guard refuses it), which would leave the COPY workload nothing to
/// measure.
const BENCH_MASKING_YAML: &str = "  masking:\n    bench:\n      detectors:\n        - {name: cards, detector: card, style: last4}\n        - {name: emails, detector: email, style: redact}\n        - {name: ssns, detector: ssn, style: redact}\n        - {name: secrets, detector: secret, style: redact}\n";
/// The role and profile as the report states them.
const GUARDED_SUMMARY: &str = "role `guarded`: `guardrails: guarded-write`, `masking: bench` = detectors card (last4), email, ssn, secret (redact)";

/// Checks, before measuring, that the guarded tunnel really runs the enforcing relay: planted
/// values come back masked in a result row and in COPY output (the path the COPY workload
/// takes), and DDL is refused.
fn probe_guarded(ep: &Endpoint) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    ep.apply(&mut cmd);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'paid with 4111 1111 1111 1111, mail ada@example.com' as note",
        "-c",
        "\\copy (select 'paid with 4111 1111 1111 1111' as note) to stdout",
        "-c",
        "create temp table sluice_bench_probe (x int)",
    ]);
    let out = cmd.output().map_err(|e| format!("run psql: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    let masked = lines.len() == 2
        && !stdout.contains("4111 1111")
        && !stdout.contains("ada@example.com")
        && lines[0].ends_with("****")
        && lines[1].ends_with("*1111");
    if !masked {
        return Err(format!(
            "values not masked as expected: `{}` {stderr}",
            lines.join(" / ")
        ));
    }
    let refusal = stderr.lines().find(|l| l.contains("ERROR")).unwrap_or("");
    if refusal.is_empty() {
        return Err(format!(
            "`create temp table` was not refused under guarded-write: {stderr}"
        ));
    }
    Ok(format!(
        "sluice-guarded checked before measuring: planted values came back as `{}` (result row) and `{}` (COPY TO STDOUT), and `create temp table` was refused (`{}`)",
        lines[0],
        lines[1],
        refusal.trim()
    ))
}

/// `sluice connect RESOURCE --role ROLE --output json`, spawned here so its pid is known.
#[derive(Debug)]
struct Tunnel {
    guard: Guard,
    endpoint: Endpoint,
}

fn start_tunnel(cli: &Cli, resource: &str, role: &str, log: &Path) -> Result<Tunnel, String> {
    let stderr = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut child = cli
        .cmd()
        .args(["connect", resource, "--role", role, "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn sluice connect: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let guard = Guard {
        child,
        what: "sluice connect",
    };
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim().is_empty() {
        return Err(format!(
            "sluice connect printed nothing: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        ));
    }
    // Keep draining stdout so the CLI never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let details: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("connect output `{line}`: {e}"))?;
    let field = |k: &str| {
        details[k]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("connect output lacks `{k}`: {line}"))
    };
    let port = details["port"]
        .as_u64()
        .ok_or(format!("connect output lacks port: {line}"))? as u16;
    let uri = field("uri")?;
    // postgresql://USER:SECRET@127.0.0.1:PORT/DB?sslmode=disable
    let password = uri
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(cred, _)| cred.split_once(':'))
        .map(|(_, pw)| pw.to_string())
        .ok_or(format!("cannot find the secret in {uri}"))?;
    Ok(Tunnel {
        guard,
        endpoint: Endpoint {
            port,
            user: field("user")?,
            password,
            database: field("database")?,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Measurements

#[derive(Debug, Clone, Default)]
struct Sample {
    tps: f64,
    latency_ms: f64,
    /// pgbench's "average connection time" (with -C: per transaction's new connection).
    connect_ms: f64,
    transactions: f64,
    mb_per_s: f64,
    wall_s: f64,
    /// CPU seconds of the proxy processes during the run, per component.
    cpu_s: Vec<f64>,
}

/// What to read CPU from for each path.
#[derive(Debug, Default)]
struct CpuSources {
    /// The `sluice connect` of the `sluice` path.
    sluice_cli: Option<u32>,
    /// The `sluice connect` of the `sluice-guarded` path.
    guarded_cli: Option<u32>,
    /// Shared by both sluice paths; the paths never run at the same time, so its CPU during a
    /// run belongs to the path that ran (the idle tunnel's sessions are closed by then).
    sluiced: Option<u32>,
    socat: Option<u32>,
    pgbouncer: Option<u32>,
}

impl CpuSources {
    /// Clock ticks of each component of `path` (for the sluice paths: [sluice, sluiced]).
    fn read(&self, path: PathKind) -> Vec<u64> {
        match path {
            PathKind::Direct => vec![],
            PathKind::Socat => self.socat.map(tree_ticks).into_iter().collect(),
            PathKind::PgBouncer => self.pgbouncer.map(ticks).into_iter().collect(),
            PathKind::Sluice => vec![
                self.sluice_cli.map(ticks).unwrap_or(0),
                self.sluiced.map(ticks).unwrap_or(0),
            ],
            PathKind::SluiceGuarded => vec![
                self.guarded_cli.map(ticks).unwrap_or(0),
                self.sluiced.map(ticks).unwrap_or(0),
            ],
        }
    }
}

fn pgbench_run(
    ep: &Endpoint,
    (clients, mode, connect): (u32, &str, bool),
    seconds: u64,
) -> Result<Sample, String> {
    let mut cmd = Command::new("pgbench");
    ep.apply(&mut cmd);
    cmd.args([
        "-n",
        "-S",
        "-T",
        &seconds.to_string(),
        "-c",
        &clients.to_string(),
        "-j",
        &clients.min(2).to_string(),
    ]);
    cmd.args(["-M", mode]);
    if connect {
        cmd.arg("-C");
    }
    let out = cmd.output().map_err(|e| format!("run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(format!(
            "pgbench failed ({}): {}{}",
            out.status,
            text,
            err.lines().take(5).collect::<Vec<_>>().join("\n")
        ));
    }
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    // With -C pgbench counts the reconnections in: "(including reconnection times)".
    let tps = text
        .lines()
        .find(|l| {
            l.starts_with("tps = ")
                && (l.contains("without initial connection time")
                    || l.contains("including reconnection times"))
        })
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or(format!("no tps in pgbench output:\n{text}"))?;
    Ok(Sample {
        tps,
        latency_ms: value("latency average = ").unwrap_or(f64::NAN),
        connect_ms: value("average connection time = ").unwrap_or(f64::NAN),
        transactions: value("number of transactions actually processed: ")
            .unwrap_or(tps * seconds as f64),
        ..Sample::default()
    })
}

/// The first lines of an error, on one line, for a report note.
fn first_lines(e: &str) -> String {
    e.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" / ")
}

const COPY_SQL: &str = "\\copy (select * from pgbench_accounts) to /dev/null";

fn copy_run(ep: &Endpoint, bytes: u64) -> Result<Sample, String> {
    let mut cmd = Command::new("psql");
    ep.apply(&mut cmd);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", COPY_SQL]);
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("run psql: {e}"))?;
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "psql \\copy failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Sample {
        mb_per_s: bytes as f64 / 1e6 / wall,
        wall_s: wall,
        ..Sample::default()
    })
}

/// Bytes of the table's COPY text output, counted from a direct `\copy ... to stdout` over the
/// Unix socket.
fn copy_bytes(pg: &Postgres) -> Result<u64, String> {
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(pg.socket_dir())
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            &pg.app_user,
            "-d",
            &pg.database,
        ])
        .args(["-c", "\\copy (select * from pgbench_accounts) to stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run psql: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "copy to stdout failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(total)
}

fn median(values: &mut [f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median figures of one (workload, path) cell.
#[derive(Debug, Clone)]
struct Cell {
    tps: f64,
    tps_min: f64,
    tps_max: f64,
    latency_ms: f64,
    connect_ms: f64,
    mb_per_s: f64,
    mb_min: f64,
    mb_max: f64,
    /// Proxy CPU seconds per 1,000 transactions (pgbench) or per GB of COPY output, total and
    /// per component.
    cpu: f64,
    cpu_parts: Vec<f64>,
    runs: usize,
    failures: usize,
}

fn summarize(samples: &[Sample], failures: usize, workload: Workload, copy_bytes: u64) -> Cell {
    let col = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let per_unit = |s: &Sample, cpu: f64| match workload {
        Workload::Copy => cpu / (copy_bytes as f64 / 1e9),
        _ => cpu / (s.transactions / 1000.0),
    };
    let parts = samples.first().map(|s| s.cpu_s.len()).unwrap_or(0);
    let cpu_parts = (0..parts)
        .map(|i| {
            median(&mut col(&|s: &Sample| {
                per_unit(s, s.cpu_s.get(i).copied().unwrap_or(0.0))
            }))
        })
        .collect();
    let mut tps = col(&|s| s.tps);
    let mut mb = col(&|s| s.mb_per_s);
    let fmin = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let fmax = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Cell {
        tps: median(&mut tps),
        tps_min: fmin(&tps),
        tps_max: fmax(&tps),
        latency_ms: median(&mut col(&|s| s.latency_ms)),
        connect_ms: median(&mut col(&|s| s.connect_ms)),
        mb_per_s: median(&mut mb),
        mb_min: fmin(&mb),
        mb_max: fmax(&mb),
        cpu: if parts == 0 {
            f64::NAN
        } else {
            median(&mut col(&|s: &Sample| per_unit(s, s.cpu_s.iter().sum())))
        },
        cpu_parts,
        runs: samples.len(),
        failures,
    }
}

// ---------------------------------------------------------------------------------------------
// Report

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

#[derive(Debug)]
struct Report {
    settings: Settings,
    machine: Vec<(String, String)>,
    copy_bytes: u64,
    copy_rows: u64,
    /// (workload, path, cell)
    cells: Vec<(Workload, PathKind, Cell)>,
    notes: Vec<String>,
}

impl Report {
    fn cell(&self, w: Workload, p: PathKind) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|(cw, cp, _)| *cw == w && *cp == p)
            .map(|(_, _, c)| c)
    }

    fn value(&self, w: Workload, p: PathKind) -> f64 {
        match (w, self.cell(w, p)) {
            (_, None) => f64::NAN,
            (Workload::Copy, Some(c)) => c.mb_per_s,
            (_, Some(c)) => c.tps,
        }
    }

    /// The results as a Markdown table (also used for the terminal: Markdown tables read fine).
    fn markdown(&self) -> String {
        let s = &self.settings;
        let mut o = String::new();
        let _ = writeln!(o, "## Results\n");
        for (k, v) in &self.machine {
            let _ = writeln!(o, "- {k}: {v}");
        }
        let _ = writeln!(
            o,
            "- Settings: {} s per pgbench run, {} reps (median shown, range in brackets; path order rotated each rep), scale {} ({} rows in pgbench_accounts)",
            s.seconds, s.reps, s.scale, self.copy_rows
        );
        let _ = writeln!(
            o,
            "- COPY MB/s = {} bytes (the table's COPY text output, counted once from a direct `\\copy ... to stdout`) / wall time of `psql -c \"{COPY_SQL}\"` (connection setup included), MB = 10^6 bytes",
            self.copy_bytes
        );
        let _ = writeln!(
            o,
            "- Proxy CPU: utime+stime (+cutime+cstime) from /proc/PID/stat before and after each run; socat includes its forked children; sluice and sluice-guarded = that path's own `sluice connect` + `sluiced`, which both paths share: paths run one at a time, so sluiced's CPU during a run is charged to the path that ran (background work of the broker or of the idle tunnel falls in whichever run it happens in)"
        );
        if s.paths.contains(&PathKind::SluiceGuarded) {
            let _ = writeln!(
                o,
                "- sluice-guarded: the same broker and resource as sluice, a second `sluice connect --role guarded`; {GUARDED_SUMMARY}. sluice runs under role `use` (no guardrails, no masking; like every PostgreSQL session it is recorded, so it runs the message relay and writes each statement and result to the session recording)"
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| workload | path | TPS | latency avg (ms) | MB/s | proxy CPU | CPU split |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---|");
        for w in &s.workloads {
            for p in PathKind::ALL.iter().filter(|p| s.paths.contains(p)) {
                let Some(c) = self.cell(*w, *p) else { continue };
                let failed = if c.failures > 0 {
                    format!(" ({} of {} runs failed)", c.failures, c.failures + c.runs)
                } else {
                    String::new()
                };
                let unit = if *w == Workload::Copy {
                    "s/GB"
                } else {
                    "s/1k tx"
                };
                let cpu = if c.cpu.is_finite() {
                    format!("{} {unit}", fmt(c.cpu, 3))
                } else {
                    "-".into()
                };
                let sluice_path = matches!(p, PathKind::Sluice | PathKind::SluiceGuarded);
                let split = if sluice_path && c.cpu_parts.len() == 2 {
                    format!(
                        "sluice {} + sluiced {}",
                        fmt(c.cpu_parts[0], 3),
                        fmt(c.cpu_parts[1], 3)
                    )
                } else {
                    String::new()
                };
                let (tps, lat, mb) = if *w == Workload::Copy {
                    (
                        "-".to_string(),
                        "-".to_string(),
                        format!(
                            "{} [{}–{}]",
                            fmt(c.mb_per_s, 1),
                            fmt(c.mb_min, 1),
                            fmt(c.mb_max, 1)
                        ),
                    )
                } else {
                    (
                        format!(
                            "{} [{}–{}]",
                            fmt(c.tps, 0),
                            fmt(c.tps_min, 0),
                            fmt(c.tps_max, 0)
                        ),
                        if *w == Workload::C8Connect {
                            format!(
                                "{} (connect {})",
                                fmt(c.latency_ms, 3),
                                fmt(c.connect_ms, 2)
                            )
                        } else {
                            fmt(c.latency_ms, 3)
                        },
                        "-".to_string(),
                    )
                };
                let _ = writeln!(
                    o,
                    "| {} | {}{failed} | {tps} | {lat} | {mb} | {cpu} | {split} |",
                    w.title(),
                    p.name()
                );
            }
        }
        let _ = writeln!(o, "\n### Ratios (TPS, or MB/s for COPY)\n");
        let _ = writeln!(
            o,
            "| workload | sluice / direct | sluice / socat | sluice / pgbouncer | socat / direct | pgbouncer / direct |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        for w in &s.workloads {
            let v = |p| self.value(*w, p);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                w.title(),
                fmt(ratio(v(PathKind::Sluice), v(PathKind::Direct)), 2),
                fmt(ratio(v(PathKind::Sluice), v(PathKind::Socat)), 2),
                fmt(ratio(v(PathKind::Sluice), v(PathKind::PgBouncer)), 2),
                fmt(ratio(v(PathKind::Socat), v(PathKind::Direct)), 2),
                fmt(ratio(v(PathKind::PgBouncer), v(PathKind::Direct)), 2),
            );
        }
        if s.paths.contains(&PathKind::SluiceGuarded) {
            self.guarded_section(&mut o);
        }
        let _ = writeln!(o, "\n### Targets\n");
        for line in self.targets() {
            let _ = writeln!(o, "- {line}");
        }
        if !self.notes.is_empty() {
            let _ = writeln!(o, "\n### Notes\n");
            for n in &self.notes {
                let _ = writeln!(o, "- {n}");
            }
        }
        o
    }

    /// "Guardrails + masking cost": the guarded tunnel against the plain one and direct.
    fn guarded_section(&self, o: &mut String) {
        let s = &self.settings;
        let _ = writeln!(
            o,
            "\n### Guardrails + masking cost (TPS, or MB/s for COPY; CPU per 1k tx or per GB)\n"
        );
        let _ = writeln!(
            o,
            "| workload | sluice-guarded / sluice | sluice-guarded / direct | proxy CPU sluice-guarded / sluice |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for w in &s.workloads {
            let v = |p| self.value(*w, p);
            let cpu = |p| self.cell(*w, p).map(|c| c.cpu).unwrap_or(f64::NAN);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                w.title(),
                fmt(ratio(v(PathKind::SluiceGuarded), v(PathKind::Sluice)), 2),
                fmt(ratio(v(PathKind::SluiceGuarded), v(PathKind::Direct)), 2),
                fmt(
                    ratio(cpu(PathKind::SluiceGuarded), cpu(PathKind::Sluice)),
                    2
                ),
            );
        }
        let _ = writeln!(
            o,
            "\nWhat the guarded path does per workload: every pgbench statement is classified (pg_query) and decided under guarded-write, then its RowDescription is planned against the masking profile and each row passes the plan (`abalance` is an int4 no rule names, so rows go through unchanged). With `-M simple` every `select abalance ... where aid = N` is a new text (the aid is a literal): it misses the text cache but hits the shape cache (the scanner's tokens with constants blanked, about 0.9 µs instead of a 9 µs parse); with `-M extended` the Parse text (`... where aid = $1`) repeats and hits the text cache. The COPY is classified once; every COPY data line (one row) then goes through the detectors. The profile has no column rules on purpose: a role whose masking has column rules may not COPY out at all (COPY text carries no column names to apply them to), which would leave nothing to measure."
        );
        let _ = writeln!(
            o,
            "\nClassification time per statement (p50/p99) is not measured here: sluiced does not time its guard and this harness does not link sluice-sql. The classifier's own figure, over PostgreSQL's regression statements without the cache: `cargo test -p sluice-sql --release --test conformance -- --ignored --nocapture`."
        );
    }

    fn targets(&self) -> Vec<String> {
        let verdict = |r: f64, goal: f64, strict: bool| {
            if !r.is_finite() {
                "not measured".to_string()
            } else if (strict && r > goal) || (!strict && r >= goal) {
                "**met**".to_string()
            } else {
                format!("**missed** by {:.0}%", (goal - r) / goal * 100.0)
            }
        };
        let c8 = |p| self.value(Workload::C8, p);
        let copy = |p| self.value(Workload::Copy, p);
        let a = ratio(c8(PathKind::Sluice), c8(PathKind::Socat));
        let b = ratio(c8(PathKind::Sluice), c8(PathKind::PgBouncer));
        let c = ratio(copy(PathKind::Sluice), copy(PathKind::Direct));
        let g8 = ratio(c8(PathKind::SluiceGuarded), c8(PathKind::Sluice));
        let gc = ratio(copy(PathKind::SluiceGuarded), copy(PathKind::Sluice));
        let mut targets = vec![
            format!(
                "`-S -c 8`: sluice ≥ 0.80 × socat TPS: {} ({})",
                fmt(a, 2),
                verdict(a, 0.8, false)
            ),
            format!(
                "`-S -c 8`: sluice ahead of PgBouncer: {} ({})",
                fmt(b, 2),
                verdict(b, 1.0, true)
            ),
            format!(
                "COPY: sluice ≥ 0.80 × direct MB/s: {} ({})",
                fmt(c, 2),
                verdict(c, 0.8, false)
            ),
        ];
        if self.settings.paths.contains(&PathKind::SluiceGuarded) {
            targets.push(format!(
                "`-S -c 8`: guardrails + masking cost ≤ 10% over the plain tunnel, sluice-guarded ≥ 0.90 × sluice TPS: {} ({})",
                fmt(g8, 2),
                verdict(g8, 0.9, false)
            ));
            targets.push(format!(
                "COPY: guardrails + masking cost ≤ 10% over the plain tunnel, sluice-guarded ≥ 0.90 × sluice MB/s: {} ({})",
                fmt(gc, 2),
                verdict(gc, 0.9, false)
            ));
        }
        targets
    }
}

fn machine_facts(pg: &Postgres) -> Vec<(String, String)> {
    let sh = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1048576.0))
        .unwrap_or_else(|| "?".into());
    let server = pg
        .admin_sql("postgres", "show server_version")
        .trim()
        .to_string();
    let shared = pg
        .admin_sql("postgres", "show shared_buffers")
        .trim()
        .to_string();
    vec![
        (
            "Machine".into(),
            format!(
                "{cores} cores ({model}), {mem} RAM, Linux {}",
                sh("uname", &["-r"])
            ),
        ),
        (
            "Software".into(),
            format!(
                "PostgreSQL {server} (shared_buffers {shared}, fsync off), {}, {}, {}, sluice/sluiced release build",
                sh("pgbench", &["--version"]),
                sh("pgbouncer", &["--version"]),
                socat_version(),
            ),
        ),
    ]
}

fn socat_version() -> String {
    let v = Command::new("socat")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    v.lines()
        .find(|l| l.starts_with("socat version"))
        .map(|l| l.split(" on ").next().unwrap_or(l).to_string())
        .unwrap_or_else(|| "socat ?".into())
}

// ---------------------------------------------------------------------------------------------
// main

fn main() {
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::exit(2);
        }
    };
    for tool in ["pgbench", "psql"] {
        if which(tool).is_none() {
            eprintln!(
                "sluice-bench: `{tool}` is not installed (apt-get install postgresql-contrib postgresql-client)"
            );
            std::process::exit(1);
        }
    }
    let tck = clk_tck();
    let mut notes = Vec::new();

    eprintln!("==> PostgreSQL, pgbench -i -s {}", settings.scale);
    let pg = Postgres::start();
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", &settings.scale.to_string(), "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port.to_string(), "-U", &pg.app_user, &pg.database])
        .output()
        .expect("run pgbench -i");
    if !init.status.success() {
        eprintln!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        std::process::exit(1);
    }
    let copy_rows: u64 = pg
        .admin_sql(&pg.database, "select count(*) from pgbench_accounts")
        .trim()
        .parse()
        .unwrap_or(0);
    let bytes = copy_bytes(&pg).unwrap_or_else(|e| {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1)
    });
    eprintln!("    pgbench_accounts: {copy_rows} rows, {bytes} bytes of COPY text");
    pg.admin_sql(&pg.database, "checkpoint");

    let mut endpoints: Vec<(PathKind, Endpoint)> = Vec::new();
    let mut cpu = CpuSources::default();
    let direct = Endpoint {
        port: pg.port,
        user: pg.app_user.clone(),
        password: pg.app_password.clone(),
        database: pg.database.clone(),
    };
    if settings.paths.contains(&PathKind::Direct) {
        endpoints.push((PathKind::Direct, direct.clone()));
    }

    let mut _socat = None;
    if settings.paths.contains(&PathKind::Socat) {
        eprintln!("==> socat");
        match start_socat(pg.port) {
            Ok((g, port)) => {
                cpu.socat = Some(g.pid());
                endpoints.push((
                    PathKind::Socat,
                    Endpoint {
                        port,
                        ..direct.clone()
                    },
                ));
                _socat = Some(g);
            }
            Err(e) => notes.push(format!("socat path skipped: {e}")),
        }
    }

    let mut _bouncer = None;
    if settings.paths.contains(&PathKind::PgBouncer) {
        eprintln!("==> pgbouncer (session mode)");
        match start_pgbouncer(&pg) {
            Ok(b) => {
                cpu.pgbouncer = Some(b.guard.pid());
                endpoints.push((
                    PathKind::PgBouncer,
                    Endpoint {
                        port: b.port,
                        ..direct.clone()
                    },
                ));
                _bouncer = Some(b);
            }
            Err(e) => notes.push(format!("pgbouncer path skipped: {e}")),
        }
    }

    // One broker for both sluice paths; each path has its own `sluice connect`, under its role.
    let mut _broker = None;
    let mut _tunnels = Vec::new();
    let mut _cli = None;
    let mut tunnel_logs = Vec::new();
    let sluice_paths: Vec<PathKind> = [PathKind::Sluice, PathKind::SluiceGuarded]
        .into_iter()
        .filter(|p| settings.paths.contains(p))
        .collect();
    if !sluice_paths.is_empty() {
        eprintln!("==> sluiced, sluice login, sluice connect pg");
        let broker = BrokerBuilder::new()
            .postgres("pg", &pg)
            .role(GUARDED_ROLE, GUARDED_ROLE_YAML)
            .policy_extra(BENCH_MASKING_YAML)
            .rule_with(
                "all",
                &["alice"],
                &[],
                &["*"],
                &[PLAIN_ROLE, GUARDED_ROLE],
                "",
            )
            .start();
        let cli = Cli::new(&broker);
        cli.login(&broker.token("alice", &[], "12h"));
        cpu.sluiced = find_pid(&["serve", &broker.config().to_string_lossy()]);
        if cpu.sluiced.is_none() {
            notes.push("could not find the sluiced pid in /proc: its CPU is missing".into());
        }
        for path in sluice_paths {
            let role = if path == PathKind::Sluice {
                PLAIN_ROLE
            } else {
                GUARDED_ROLE
            };
            let log = std::env::temp_dir().join(format!(
                "sluice-bench-connect-{role}-{}.log",
                std::process::id()
            ));
            eprintln!("    sluice connect pg --role {role} ({})", path.name());
            match start_tunnel(&cli, "pg", role, &log) {
                Ok(t) => {
                    if path == PathKind::Sluice {
                        cpu.sluice_cli = Some(t.guard.pid());
                    } else {
                        cpu.guarded_cli = Some(t.guard.pid());
                        match probe_guarded(&t.endpoint) {
                            Ok(line) => notes.push(line),
                            Err(e) => notes.push(format!(
                                "**sluice-guarded probe failed**: {e}; its figures may not \
                                 include guardrails or masking"
                            )),
                        }
                    }
                    endpoints.push((path, t.endpoint.clone()));
                    _tunnels.push(t);
                }
                Err(e) => notes.push(format!("{} path skipped: {e}", path.name())),
            }
            tunnel_logs.push(log);
        }
        _broker = Some(broker);
        _cli = Some(cli);
    }

    // Warm up: every path connects and runs briefly; the table is read once into the page cache.
    eprintln!("==> warm-up");
    for (p, ep) in &endpoints {
        if let Err(e) = pgbench_run(ep, (8, "simple", false), 3) {
            eprintln!("    warm-up on {}: {e}", p.name());
            notes.push(format!(
                "warm-up `pgbench -S -c 8` on {} failed: {}",
                p.name(),
                first_lines(&e)
            ));
        }
    }
    if settings.workloads.contains(&Workload::Copy) {
        let _ = copy_run(&direct, bytes);
    }

    let mut samples: Vec<(Workload, PathKind, Vec<Sample>, usize)> = Vec::new();
    for w in &settings.workloads {
        for (p, _) in &endpoints {
            samples.push((*w, *p, Vec::new(), 0));
        }
    }
    let total = settings.reps * settings.workloads.len() * endpoints.len();
    let mut done = 0;
    for rep in 0..settings.reps {
        for w in &settings.workloads {
            let n = endpoints.len();
            for i in 0..n {
                let (p, ep) = &endpoints[(i + rep) % n];
                done += 1;
                let before = cpu.read(*p);
                let result = match w.pgbench() {
                    Some(how) => pgbench_run(ep, how, settings.seconds),
                    None => copy_run(ep, bytes),
                };
                // Let socat reap its children before reading the totals.
                std::thread::sleep(Duration::from_millis(100));
                let after = cpu.read(*p);
                let slot = samples
                    .iter_mut()
                    .find(|(sw, sp, _, _)| sw == w && sp == p)
                    .expect("slot");
                match result {
                    Ok(mut s) => {
                        s.cpu_s = before
                            .iter()
                            .zip(&after)
                            .map(|(b, a)| a.saturating_sub(*b) as f64 / tck)
                            .collect();
                        eprintln!(
                            "    [{done}/{total}] rep {} {:<28} {:<14} {}",
                            rep + 1,
                            w.title(),
                            p.name(),
                            if *w == Workload::Copy {
                                format!("{:.1} MB/s ({:.2} s)", s.mb_per_s, s.wall_s)
                            } else {
                                format!(
                                    "{:.0} tps, {:.3} ms, connect {:.2} ms",
                                    s.tps, s.latency_ms, s.connect_ms
                                )
                            }
                        );
                        slot.2.push(s);
                    }
                    Err(e) => {
                        eprintln!(
                            "    [{done}/{total}] rep {} {} {}: {e}",
                            rep + 1,
                            w.title(),
                            p.name()
                        );
                        // The first failure of a cell goes into the report, so a refusal (a
                        // guardrail, a masking limit) is visible there and not only on stderr.
                        if slot.3 == 0 {
                            notes.push(format!(
                                "{} on {} failed: {}",
                                w.title(),
                                p.name(),
                                first_lines(&e)
                            ));
                        }
                        slot.3 += 1;
                    }
                }
            }
        }
    }

    if let Some(perf_out) = &settings.perf {
        match endpoints.iter().find(|(p, _)| *p == PathKind::Sluice) {
            Some((_, ep)) => profile(perf_out, &cpu, ep, settings.seconds, &mut notes),
            None => notes.push("--perf: no sluice path to profile".into()),
        }
    }

    let cells = samples
        .iter()
        .map(|(w, p, s, failures)| (*w, *p, summarize(s, *failures, *w, bytes)))
        .collect();
    let report = Report {
        machine: machine_facts(&pg),
        settings: settings.clone(),
        copy_bytes: bytes,
        copy_rows,
        cells,
        notes,
    };
    let md = report.markdown();
    println!("\n{md}");
    if let Some(out) = &settings.out {
        let mut text = String::from("# sluice-bench results (latest run)\n\n");
        text.push_str(&md);
        match std::fs::write(out, text) {
            Ok(()) => eprintln!("==> wrote {}", out.display()),
            Err(e) => eprintln!("sluice-bench: cannot write {}: {e}", out.display()),
        }
    }
    for log in &tunnel_logs {
        let _ = std::fs::remove_file(log);
    }
}

/// One extra `-c 8` run through sluice with `perf record -g` attached to sluiced and the CLI.
fn profile(out: &Path, cpu: &CpuSources, ep: &Endpoint, seconds: u64, notes: &mut Vec<String>) {
    let pids: Vec<String> = [cpu.sluiced, cpu.sluice_cli]
        .iter()
        .flatten()
        .map(u32::to_string)
        .collect();
    if pids.is_empty() || which("perf").is_none() {
        notes.push("profile skipped: perf or the sluice pids are missing".into());
        return;
    }
    eprintln!(
        "==> profiling sluiced + sluice (pids {}) during one extra pgbench -S -c 8 run",
        pids.join(",")
    );
    let perf = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "-g",
            "-p",
            &pids.join(","),
            "-o",
        ])
        .arg(out)
        .args(["--", "sleep", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(perf) = perf else {
        notes.push("profile skipped: cannot start perf".into());
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    let run = pgbench_run(ep, (8, "simple", false), seconds.saturating_sub(1).max(1));
    let perf_out = perf.wait_with_output();
    match (run, perf_out) {
        (Ok(s), Ok(o)) if o.status.success() => {
            eprintln!(
                "    profiled run: {:.0} tps (perf attached; not in the table)",
                s.tps
            );
            notes.push(format!(
                "profile: `perf record -e cpu-clock -F 999 -g -p <sluiced>,<sluice>` during an extra `-S -c 8` run ({:.0} TPS with perf attached, not in the table), written to {}",
                s.tps,
                out.display()
            ));
        }
        (run, o) => notes.push(format!(
            "profile failed: pgbench {:?}, perf {}",
            run.err(),
            o.map(|o| String::from_utf8_lossy(&o.stderr).to_string())
                .unwrap_or_else(|e| e.to_string())
        )),
    }
}
