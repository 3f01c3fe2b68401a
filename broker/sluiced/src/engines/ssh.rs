//! The SSH engine's wiring: the client's per-connect public key (sent in the tunnel's secret
//! header), the host's address, login, the broker's key for it and the pinned host key, the
//! role's shell and exec rules from the gate's plan, and the terminal recording, handed to
//! `sluice-engine-ssh`.

use super::{BoxFuture, Engine, Served, Session, Tunnel};
use crate::plan::RolePlan;
use crate::tunnel::SessionOpener;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use russh::keys::{PrivateKey, PublicKey};
use sluice_config::{Need, ResourceSpec, SshCredential};
use sluice_engine::{Lease, LeaseHandle};
use sluice_engine_ssh::{Credential, FileEvent, FileOutcome, HostKey, Judgement, Params, Target};
use sluice_recording::SessionRecording;
use sluice_shared::recording::{Decision, HostEvent, SessionEvent, TerminalEvent};
use sluice_shared::tunnel::SECRET_HEADER;
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

/// Shell and exec rules, and a recording of what the terminal showed.
pub const ENFORCES: &[Need] = &[Need::SshRules, Need::ContentRecording];

/// The SSH engine: the broker's own SSH host key, made at start, which `sluice ssh` pins.
pub struct SshEngine {
    host_key: PrivateKey,
    /// Where held commands wait for approvers.
    holds: Arc<crate::holds::Holds>,
}

/// How long a held command waits for a decision.
const HOLD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl std::fmt::Debug for SshEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshEngine").finish_non_exhaustive()
    }
}

impl SshEngine {
    /// An engine with a fresh ed25519 host key, filing held commands with `holds`.
    pub fn new(holds: Arc<crate::holds::Holds>) -> Self {
        let seed: [u8; 32] = rand::random();
        let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
        Self {
            host_key: PrivateKey::from(pair),
            holds,
        }
    }

    /// The host key clients pin, as an OpenSSH public key line.
    pub fn host_public_key(&self) -> String {
        self.host_key.public_key().to_openssh().unwrap_or_default()
    }
}

impl Engine for SshEngine {
    fn inspect<'a>(
        &'a self,
        _resource: &'a sluice_config::Resource,
    ) -> BoxFuture<'a, super::Inspection> {
        Box::pin(std::future::ready(super::Inspection {
            ssh_host_key: Some(self.host_public_key()),
            ..Default::default()
        }))
    }

    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>> {
        Box::pin(async move {
            let authz = tunnel.authz;
            let resource = &authz.resource().name;
            let ResourceSpec::Ssh(spec) = &authz.resource().spec else {
                return Err(super::another_kind("ssh"));
            };
            let client_key = super::secret_header(tunnel.headers)
                .and_then(|text| PublicKey::from_openssh(text.trim()).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::BadRequest,
                        format!(
                            "an ssh tunnel needs the client's per-connect public key in \
                             `{SECRET_HEADER}` (use `sluice ssh`)"
                        ),
                    )
                })?;
            let unreadable = |what: &str| super::unreadable(resource, what);
            let secret = spec
                .credential
                .value
                .secret()
                .resolve()
                .map_err(|_| unreadable("login credential"))?;
            let private_key = || {
                PrivateKey::from_openssh(secret.expose().as_bytes())
                    .map(Arc::new)
                    .map_err(|_| unreadable("login credential"))
            };
            let credential = match &spec.credential.value {
                SshCredential::Key(_) => Credential::Key(private_key()?),
                SshCredential::Password(_) => Credential::Password(secret.expose().as_str().into()),
                SshCredential::Ca { ttl, .. } => Credential::Ca {
                    ca: private_key()?,
                    ttl: *ttl,
                    // Who and under which grant, in the host's own log (sshd logs the key id).
                    key_id: format!(
                        "sluice:{}:{}:{}",
                        authz.identity().subject,
                        authz.grant_id(),
                        resource
                    ),
                },
            };
            let host_key =
                HostKey::parse(&spec.host_key.value).map_err(|_| unreadable("host key"))?;
            let mut opener = tunnel.opener;
            opener
                .open(None, false)
                .await
                .map_err(|why| ApiError::new(ErrorCode::Unavailable, why))?;
            let plan: watch::Receiver<Arc<RolePlan>> = tunnel.plan;
            let (policy, approvers) = {
                let plan = plan.borrow();
                (plan.ssh.clone(), plan.approvers.clone())
            };
            let approvals = crate::holds::SessionApprovals::for_tunnel(
                &self.holds,
                authz,
                approvers,
                HOLD_TIMEOUT,
            );
            // Always a journal: file operations and refusals reach the audit trail even when
            // the role records nothing.
            let journal: Arc<dyn sluice_engine_ssh::Journal> = Arc::new(Recorded {
                recording: opener.recording(),
                budget: Budget::new(OUTPUT_CAP),
                session: opener.session_id().unwrap_or_default().to_owned(),
            });
            let journal = Some(journal);
            Ok(Box::new(SshSession {
                params: Params {
                    client_key,
                    host_key: self.host_key.clone(),
                    target: Target {
                        address: spec.address.clone(),
                        user: spec.user.clone(),
                        credential,
                        host_key,
                    },
                    policy,
                    journal,
                    approvals: Some(Arc::new(approvals)),
                },
                opener,
            }) as Box<dyn Session>)
        })
    }
}

struct SshSession {
    params: Params,
    opener: SessionOpener,
}

impl Session for SshSession {
    fn lease(&self) -> Arc<LeaseHandle> {
        self.opener.lease()
    }

    fn serve(
        self: Box<Self>,
        stream: TokioIo<Upgraded>,
        lease: Lease,
    ) -> BoxFuture<'static, Served> {
        Box::pin(async move {
            let Self { params, opener } = *self;
            info!(kind = "ssh", "session started");
            let summary = sluice_engine_ssh::serve(stream, params, lease).await;
            Served {
                opener,
                end: summary.end,
                bytes_up: 0,
                bytes_down: 0,
            }
        })
    }

    fn abandon(self: Box<Self>) -> SessionOpener {
        self.opener
    }
}

/// Terminal output a session's recording keeps at most; the rest is counted, not kept, and
/// the session goes on (a `required` recording is never the reason a large `cat` ends).
const OUTPUT_CAP: u64 = 64 * 1024 * 1024;

/// What is left of the recording's output budget.
struct Budget {
    left: std::sync::atomic::AtomicU64,
}

/// How much of a chunk the recording keeps.
#[derive(Debug, PartialEq, Eq)]
enum Keep {
    /// All of it.
    All,
    /// The first `n` bytes, and the budget is now spent: say so once.
    Part(usize),
    /// Nothing (the budget was spent before).
    None,
}

impl Budget {
    fn new(bytes: u64) -> Self {
        Self {
            left: std::sync::atomic::AtomicU64::new(bytes),
        }
    }

    fn take(&self, len: usize) -> Keep {
        use std::sync::atomic::Ordering;
        let wanted = len as u64;
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            if left == 0 {
                return Keep::None;
            }
            let taken = wanted.min(left);
            match self.left.compare_exchange_weak(
                left,
                left - taken,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) if taken == wanted && left > wanted => return Keep::All,
                Ok(_) => return Keep::Part(usize::try_from(taken).unwrap_or(len)),
                Err(now) => left = now,
            }
        }
    }
}

/// The session's events into its recording: terminal output (up to [`OUTPUT_CAP`]) and sizes
/// as asciicast-shaped events; commands, shells and exit statuses as notes. Input is never
/// recorded (passwords typed at a `sudo` prompt).
struct Recorded {
    recording: Option<SessionRecording>,
    budget: Budget,
    /// The session, for audit events.
    session: String,
}

impl Recorded {
    fn record(&self, event: impl Into<sluice_shared::recording::Body>) {
        if let Some(recording) = &self.recording {
            recording.record(event);
        }
    }
}

impl sluice_engine_ssh::Journal for Recorded {
    fn output(&self, data: &[u8], _stderr: bool) {
        let (kept, spent) = match self.budget.take(data.len()) {
            Keep::All => (data, false),
            Keep::Part(n) => (&data[..n], true),
            Keep::None => return,
        };
        self.record(TerminalEvent::Output {
            data: kept.to_vec(),
        });
        if spent {
            self.record(SessionEvent::Note {
                message: format!(
                    "terminal output past {} MiB is not recorded; the session went on",
                    OUTPUT_CAP / (1024 * 1024)
                ),
            });
        }
    }

    fn input(&self, data: &[u8]) {
        // Typed bytes share the output's budget: a recording stays bounded either way.
        let kept = match self.budget.take(data.len()) {
            Keep::All => data,
            Keep::Part(n) => &data[..n],
            Keep::None => return,
        };
        self.record(TerminalEvent::Input {
            data: kept.to_vec(),
        });
    }

    fn resize(&self, cols: u32, rows: u32) {
        self.record(TerminalEvent::Resize {
            cols: u16::try_from(cols).unwrap_or(u16::MAX),
            rows: u16::try_from(rows).unwrap_or(u16::MAX),
        });
    }

    fn command(&self, command: &str, judgement: &Judgement) {
        let decision = match judgement {
            // Journaled with its outcome by `held`.
            Judgement::Hold { .. } => return,
            Judgement::Allow | Judgement::Transfer(_) => Decision::Allowed,
            Judgement::Block { rule, reason } => Decision::Blocked {
                rule: rule.clone(),
                message: reason.clone(),
            },
        };
        crate::metrics::decided("ssh", &decision);
        if let Decision::Blocked { rule, .. } = &decision {
            info!(
                target: "audit",
                event = "ssh.exec_refused.v1",
                session = %self.session,
                rule = %rule,
                "an exec command was refused"
            );
        }
        self.record(HostEvent::Exec {
            command: command.to_owned(),
            decision,
        });
    }

    fn held(&self, command: &str, rule: &str, request: &str, outcome: Result<&str, &str>) {
        let decision = match outcome {
            Ok(by) => Decision::Approved {
                rule: rule.to_owned(),
                by: by.to_owned(),
                request: request.to_owned(),
            },
            Err(reason) => Decision::Denied {
                rule: rule.to_owned(),
                reason: reason.to_owned(),
                request: request.to_owned(),
            },
        };
        crate::metrics::decided("ssh", &decision);
        self.record(HostEvent::Exec {
            command: command.to_owned(),
            decision,
        });
    }

    fn shell(&self, allowed: bool) {
        self.record(SessionEvent::Note {
            message: if allowed {
                "shell opened".into()
            } else {
                "shell refused: the role may not open one".into()
            },
        });
    }

    fn exit(&self, status: u32) {
        self.record(HostEvent::Exit { status });
    }

    fn file(&self, event: &FileEvent<'_>) {
        let outcome = match &event.outcome {
            FileOutcome::Done => "done".to_owned(),
            FileOutcome::Failed(code) => format!("failed: {}", sftp_status(*code)),
            FileOutcome::Refused(refusal) => {
                format!("refused by {}: {}", refusal.rule, refusal.reason)
            }
        };
        // Every file operation is in the audit trail too: who touched which path on which
        // host, whatever happens to the recording.
        info!(
            target: "audit",
            event = "ssh.file.v1",
            session = %self.session,
            op = %event.op,
            path = %event.path,
            to = event.to.unwrap_or(""),
            bytes = event.bytes.unwrap_or(0),
            outcome = %outcome,
            "file operation"
        );
        self.record(HostEvent::File {
            op: event.op.to_owned(),
            path: event.path.to_owned(),
            to: event.to.map(str::to_owned),
            bytes: event.bytes,
            outcome,
        });
    }

    fn forward(&self, to: &str, allowed: bool) {
        info!(
            target: "audit",
            event = "ssh.forward.v1",
            session = %self.session,
            to = %to,
            allowed,
            "local forward"
        );
        self.record(HostEvent::Forward {
            to: to.to_owned(),
            allowed,
        });
    }

    fn note(&self, message: &str) {
        self.record(SessionEvent::Note {
            message: message.to_owned(),
        });
    }
}

/// `SSH_FX_*` codes as words.
fn sftp_status(code: u32) -> String {
    match code {
        1 => "end of file".into(),
        2 => "no such file".into(),
        3 => "permission denied".into(),
        4 => "failure".into(),
        8 => "unsupported".into(),
        other => format!("code {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, Keep};

    #[test]
    fn the_output_budget_keeps_up_to_its_size_and_says_when_it_is_spent() {
        let budget = Budget::new(10);
        assert_eq!(budget.take(4), Keep::All);
        assert_eq!(budget.take(5), Keep::All);
        assert_eq!(budget.take(5), Keep::Part(1));
        assert_eq!(budget.take(3), Keep::None);
        assert_eq!(budget.take(0), Keep::None);
        let exact = Budget::new(4);
        assert_eq!(exact.take(4), Keep::Part(4));
        assert_eq!(exact.take(1), Keep::None);
    }
}
