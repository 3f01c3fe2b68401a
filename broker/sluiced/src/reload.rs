//! Config reload: SIGHUP (which `sluiced reload` sends) re-reads the broker's config file,
//! checks it as `check-config` does, and only then replaces what the broker decides by. A file
//! that does not check is refused and the running config stays; either way the outcome is
//! audited and written to a status file `sluiced reload` reads back.
//!
//! Applied at once: `resources` and `policy` (grants, tunnels and sessions decide by them from
//! the next request; open sessions re-check themselves, see `tunnel.rs`). Sections the broker
//! reads only at start (`listen`, `tls`, `tokens`, `store`, `recording`, `identity`, `limits`)
//! are noted as waiting for a restart.

use crate::engines::Targets;
use crate::live::Snapshot;
use serde::{Deserialize, Serialize};
use sluice_config::Config;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// The file `sluiced serve` writes its process id to, beside the store.
pub const PID_FILE: &str = "sluiced.pid";
/// The file each reload writes its outcome to, beside the store.
pub const STATUS_FILE: &str = "sluiced.reload.json";

/// What the last reload did, as `sluiced reload` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Counts reloads since the broker started.
    pub seq: u64,
    /// The broker's process id (so a status left by another broker is not mistaken).
    pub pid: u32,
    /// Whether the new config is in force.
    pub applied: bool,
    /// The located errors of a refused config, or notes on an applied one.
    pub messages: Vec<String>,
}

/// The directory of the pid and status files: the SQLite store's, or with a shared PostgreSQL
/// store the config file's (a directory of this machine).
pub fn state_dir(config: &Config) -> PathBuf {
    let beside = match config.store.sqlite() {
        Some(sqlite) => &sqlite.value,
        None => &config.source,
    };
    beside.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Replaces the broker's config, enforcement and target settings on reload.
#[derive(Debug)]
pub struct Reloader {
    /// The broker's own config file.
    path: PathBuf,
    config: watch::Sender<Arc<Snapshot>>,
    targets: watch::Sender<Arc<Targets>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Reloader {
    /// A reloader for the config at `path`, replacing what the two senders publish.
    pub fn new(
        path: PathBuf,
        config: watch::Sender<Arc<Snapshot>>,
        targets: watch::Sender<Arc<Targets>>,
    ) -> Self {
        Self {
            path,
            config,
            targets,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Reloads on every SIGHUP for the broker's life.
    pub async fn on_hangup(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP; config reloads need a restart");
                return;
            }
        };
        while hup.recv().await.is_some() {
            self.reload_and_report();
        }
    }

    /// One reload, audited and written to the status file.
    pub fn reload_and_report(&self) -> Status {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let path = self.path.display().to_string();
        let status = match self.reload() {
            Ok(notes) => {
                info!(target: "audit", event = "config.reloaded.v1", config = %path,
                    notes = %notes.join("; "));
                Status {
                    seq,
                    pid: std::process::id(),
                    applied: true,
                    messages: notes,
                }
            }
            Err(errors) => {
                warn!(target: "audit", event = "config.reload_refused.v1", config = %path,
                    errors = %errors.join("\n"));
                Status {
                    seq,
                    pid: std::process::id(),
                    applied: false,
                    messages: errors,
                }
            }
        };
        let file = state_dir(&self.config.borrow().config).join(STATUS_FILE);
        let written = serde_json::to_vec_pretty(&status)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&file, json));
        if let Err(e) = written {
            warn!(file = %file.display(), error = %e, "cannot write the reload status");
        }
        status
    }

    /// Checks the file as `check-config` does and, if it checks, puts it in force. `Ok` carries
    /// notes (sections that wait for a restart), `Err` every problem found.
    fn reload(&self) -> Result<Vec<String>, Vec<String>> {
        let new = sluice_config::load(&self.path)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let mut problems = crate::engines::check(&new);
        problems.extend(new.check_environment());
        if !problems.is_empty() {
            return Err(problems.iter().map(ToString::to_string).collect());
        }
        let targets = Targets::load(&new).map_err(|e| vec![format!("{e:#}")])?;
        let new = Snapshot::compile(Arc::new(new)).map_err(|e| vec![format!("{e:#}")])?;
        let old = Arc::clone(&self.config.borrow().config);
        let notes = restart_only(&old, &new.config);
        self.targets.send_replace(Arc::new(targets));
        // Last: sessions re-check themselves when the config changes, and by then the target
        // settings for new sessions are in place too.
        self.config.send_replace(Arc::new(new));
        Ok(notes)
    }
}

/// The sections that changed but are read only at start.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            changed.push(format!(
                "{name} changed; it takes effect when the broker restarts"
            ));
        }
    };
    check("listen", old.listen == new.listen);
    check("tls", old.tls == new.tls);
    check("tokens", old.tokens == new.tokens);
    check("store", old.store == new.store);
    check("recording", old.recording == new.recording);
    check("identity", old.identity == new.identity);
    check("limits", old.limits == new.limits);
    changed
}

/// `sluiced reload --config F`: check F as `check-config` does, signal the broker whose pid
/// file sits beside F's store, and wait (up to 10 s) for the outcome it writes back.
pub fn command(path: &Path) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    use std::process::ExitCode;
    let config = match sluice_config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!(
                "{} problem(s) found; the running broker was not touched",
                errors.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut problems = crate::engines::check(&config);
    problems.extend(config.check_environment());
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!(
            "{} problem(s) found; the running broker was not touched",
            problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let dir = state_dir(&config);
    let pid_file = dir.join(PID_FILE);
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| {
            format!(
                "no running broker found ({} is missing); start it with `sluiced serve --config {}`",
                pid_file.display(),
                path.display()
            )
        })?
        .trim()
        .parse::<u32>()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    let status_file = dir.join(STATUS_FILE);
    let before = read_status(&status_file)
        .filter(|s| s.pid == pid)
        .map(|s| s.seq);
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .with_context(|| format!("{} holds no valid process id", pid_file.display()))?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP).with_context(|| {
        format!(
            "cannot signal the broker (pid {pid} from {}): is it still running?",
            pid_file.display()
        )
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(status) =
            read_status(&status_file).filter(|s| s.pid == pid && Some(s.seq) != before)
        {
            if status.applied {
                println!("{}: reloaded by the broker (pid {pid})", path.display());
                for note in &status.messages {
                    println!("note: {note}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            for message in &status.messages {
                eprintln!("{message}");
            }
            eprintln!("the broker refused the config and keeps serving the one it had");
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    anyhow::bail!("the broker (pid {pid}) did not report a reload within 10s; see its log",)
}

fn read_status(file: &Path) -> Option<Status> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}
