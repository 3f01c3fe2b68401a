//! One SSH session through the broker: the client's SSH is terminated here (russh server on the
//! tunnel's stream), the broker logs in to the host with its own key (russh client, host key
//! pinned), and each session channel is relayed with the role's rules applied to what it asks.
//!
//! ```text
//!  client ssh ══tunnel══▶ [server: ephemeral key only] ──▶ per channel: pty, shell?, exec judged
//!                                                             │ allowed          │ refused
//!                                           [client: broker key, pinned host] ◀──┘  stderr + exit 126
//!  host sshd ◀══TCP════════════════════════════════════════════╯
//! ```
//!
//! Refused work never reaches the host: the client gets one line on stderr and the exit status
//! 126. Port forwarding, agent and X11 forwarding and subsystems (SFTP) are refused in this
//! version.

use crate::command::{ExecRules, Judgement, Transfer, TransferKind};
use crate::credential::Credential;
use crate::files::{Access, FileRules, Refusal};
use crate::resolve::{Resolved, Resolver};
use russh::keys::PrivateKeyWithHashAlg;
use russh::keys::ssh_key::{HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg};
use sluice_engine::Lease;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Exit status of a refused command: "found but not executable", as shells use it.
pub const REFUSED: u32 = 126;
/// Exit status when the host cannot be reached or refuses the broker.
pub const UNREACHABLE: u32 = 255;
/// How long the login to the host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The ciphers the broker speaks on both legs: AES-GCM only. Every byte is decrypted and
/// encrypted again in the broker, and ring's AES-GCM (AES-NI) costs a fraction of
/// ChaCha20-Poly1305 there; a client picks the first of its own list the server offers, so
/// ChaCha20 (first in OpenSSH's list) is not offered. Every OpenSSH since 6.2 speaks AES-GCM.
const CIPHERS: &[russh::cipher::Name] = &[russh::cipher::AES_128_GCM, russh::cipher::AES_256_GCM];

fn preferred() -> russh::Preferred {
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(CIPHERS),
        ..russh::Preferred::default()
    }
}

/// The host, and how the broker logs in to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// The login on the host.
    pub user: String,
    /// How the broker logs in.
    pub credential: Credential,
    /// The host key it must present.
    pub host_key: HostKey,
}

/// A pinned host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKey {
    /// The key itself.
    Key(PublicKey),
    /// Its SHA-256 fingerprint, `SHA256:…`.
    Fingerprint(String),
}

impl HostKey {
    /// Reads `ssh-ed25519 AAAA…` or `SHA256:…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("SHA256:") {
            return Ok(Self::Fingerprint(text.to_owned()));
        }
        PublicKey::from_openssh(text)
            .map(Self::Key)
            .map_err(|e| format!("not an OpenSSH public key: {e}"))
    }

    fn accepts(&self, presented: &PublicKey) -> bool {
        match self {
            Self::Key(key) => key.key_data() == presented.key_data(),
            Self::Fingerprint(fingerprint) => {
                presented.fingerprint(HashAlg::Sha256).to_string() == *fingerprint
            }
        }
    }

    /// The pinned key's fingerprint, for messages.
    fn describe(&self) -> String {
        match self {
            Self::Key(key) => key.fingerprint(HashAlg::Sha256).to_string(),
            Self::Fingerprint(fingerprint) => fingerprint.clone(),
        }
    }
}

/// What a session's role allows.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Whether an interactive shell may be opened.
    pub shell: bool,
    /// The exec rules.
    pub exec: ExecRules,
    /// What SFTP, `scp`, `rsync` and `git` may do; `None`: no file transfers at all.
    pub files: Option<FileRules>,
    /// `host:port` pairs a local forward (`ssh -L`) may reach, from the host.
    pub forwards: Vec<String>,
    /// Logins besides the resource's own that the client may ask for (`ssh app@host`).
    pub logins: Vec<String>,
    /// Whether what the client types is recorded (off: passwords typed at prompts).
    pub record_input: bool,
    /// Whether remote forwards (`ssh -R`) may be opened on the host.
    pub remote_forward: bool,
    /// Whether the client's agent may be forwarded to the host (`ssh -A`).
    pub agent: bool,
}

/// The client's session, for channels the host opens toward it (a remote forward's
/// connections, agent requests); set once the client asks for either.
#[derive(Clone, Default)]
pub(crate) struct Link(Arc<std::sync::Mutex<Option<(russh::server::Handle, Allowed)>>>);

/// What the host may open toward the client.
#[derive(Clone, Copy)]
struct Allowed {
    remote_forward: bool,
    agent: bool,
}

impl Link {
    fn set(&self, handle: russh::server::Handle, policy: &Policy) {
        if let Ok(mut link) = self.0.lock() {
            *link = Some((
                handle,
                Allowed {
                    remote_forward: policy.remote_forward,
                    agent: policy.agent,
                },
            ));
        }
    }

    fn get(&self, allowed: impl Fn(Allowed) -> bool) -> Option<russh::server::Handle> {
        let link = self.0.lock().ok()?;
        link.as_ref()
            .filter(|(_, a)| allowed(*a))
            .map(|(handle, _)| handle.clone())
    }
}

/// The login `sluice ssh` asks for when the person names none: the resource's own.
pub const DEFAULT_LOGIN: &str = "sluice";

/// One file operation, for the journal.
#[derive(Debug)]
pub struct FileEvent<'a> {
    /// `read`, `write`, `list`, `remove`, `rename`, `mkdir`, `scp-upload`, `git-download`, …
    pub op: &'a str,
    /// The path as the host resolved it.
    pub path: &'a str,
    /// The second path of a rename or link.
    pub to: Option<&'a str>,
    /// Bytes read or written, for files.
    pub bytes: Option<u64>,
    /// What became of it.
    pub outcome: FileOutcome<'a>,
}

/// What became of a file operation.
#[derive(Debug)]
pub enum FileOutcome<'a> {
    /// Done (or, for a transfer, ended).
    Done,
    /// Passed on; the host answered with this `SSH_FX_*` error code.
    Failed(u32),
    /// Refused by the role's file rules; never reached the host.
    Refused(&'a Refusal),
}

/// Where the session's events go (the broker's recording and audit).
pub trait Journal: Send + Sync {
    /// Bytes the host sent to the client's terminal or stdout (`stderr` for stream 1).
    fn output(&self, data: &[u8], stderr: bool);
    /// A terminal size, at the pty request and at each change.
    fn resize(&self, cols: u32, rows: u32);
    /// Bytes the client typed, when the role records input.
    fn input(&self, data: &[u8]);
    /// An exec command and what was decided (a held one is journaled by [`Journal::held`]).
    fn command(&self, command: &str, judgement: &Judgement);
    /// A held command's outcome: approved by someone (`Ok(by)`), or refused (`Err(reason)`).
    fn held(&self, command: &str, rule: &str, request: &str, outcome: Result<&str, &str>);
    /// A shell was opened, or refused.
    fn shell(&self, allowed: bool);
    /// The exit status the host reported.
    fn exit(&self, status: u32);
    /// A file operation (SFTP, or a whole `scp`/`rsync`/`git` transfer).
    fn file(&self, event: &FileEvent<'_>);
    /// A local forward (`ssh -L`) to `to`, allowed or refused.
    fn forward(&self, to: &str, allowed: bool);
    /// Anything else worth keeping.
    fn note(&self, message: &str);
}

/// Everything one session needs.
#[derive(Clone)]
pub struct Params {
    /// The only key the client may log in with (the CLI's per-connect key).
    pub client_key: PublicKey,
    /// The broker's SSH host key, which the CLI pins.
    pub host_key: PrivateKey,
    /// The host.
    pub target: Target,
    /// The role's rules.
    pub policy: Policy,
    /// Events.
    pub journal: Option<Arc<dyn Journal>>,
    /// Where commands an `approve` rule matches wait for a person; `None` refuses them.
    pub approvals: Option<Arc<dyn sluice_engine::hold::Approvals>>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material.
        f.debug_struct("Params")
            .field("target", &self.target.address)
            .field("user", &self.target.user)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How the session ended.
#[derive(Debug)]
pub struct Summary {
    /// `closed`, `revoked: …`, `error: …`.
    pub end: String,
}

/// Serves the client's SSH on `stream` until it disconnects or `lease` ends.
pub async fn serve<S>(stream: S, params: Params, mut lease: Lease) -> Summary
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = Arc::new(russh::server::Config {
        keys: vec![params.host_key.clone()],
        inactivity_timeout: None,
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        nodelay: true,
        preferred: preferred(),
        ..Default::default()
    });
    let resolver = Arc::new(Resolver::new(params.target.clone()));
    let handler = Broker {
        params: Arc::new(params),
        upstream: None,
        unreachable: None,
        resolver,
        link: Link::default(),
    };
    let running = match russh::server::run_stream(config, stream, handler).await {
        Ok(running) => running,
        Err(e) => {
            return Summary {
                end: format!("error: {e}"),
            };
        }
    };
    let handle = running.handle();
    tokio::select! {
        ended = running => Summary {
            end: match ended {
                Ok(()) => "closed".into(),
                // The client's side went away without a goodbye: how most SSH clients end.
                Err(russh::Error::IO(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "closed".into()
                }
                Err(e) => format!("error: {e}"),
            },
        },
        reason = lease.revoked() => {
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    format!("sluice: access to this host ended: {reason}"),
                    String::new(),
                )
                .await;
            Summary { end: format!("revoked: {reason}") }
        }
    }
}

/// The server side of one client connection.
struct Broker {
    params: Arc<Params>,
    /// The login to the host, once the client authenticated.
    upstream: Option<Arc<russh::client::Handle<Upstream>>>,
    /// Why the host could not be reached, told on the first channel.
    unreachable: Option<String>,
    /// Resolves paths on the host for the file rules (its own login, made on first use).
    resolver: Arc<Resolver>,
    /// The client's session, for what the host opens toward it.
    link: Link,
}

impl russh::server::Handler for Broker {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() != self.params.client_key.key_data() {
            return Ok(Auth::reject());
        }
        let mut target = self.params.target.clone();
        if user != DEFAULT_LOGIN && user != target.user {
            if !self.params.policy.logins.iter().any(|l| l == user) {
                let mut may: Vec<&str> = vec![&target.user];
                may.extend(self.params.policy.logins.iter().map(String::as_str));
                self.unreachable = Some(format!(
                    "this role may not log in as {user}; it may use {}",
                    may.join(", ")
                ));
                if let Some(j) = &self.params.journal {
                    j.note(&format!("login as {user} refused"));
                }
                return Ok(Auth::Accept);
            }
            target.user = user.to_owned();
        }
        if let Some(j) = &self.params.journal {
            j.note(&format!("logged in to the host as {}", target.user));
        }
        self.resolver = Arc::new(Resolver::new(target.clone()));
        match tokio::time::timeout(CONNECT_TIMEOUT, login(&target, self.link.clone())).await {
            Ok(Ok(handle)) => self.upstream = Some(Arc::new(handle)),
            Ok(Err(why)) => self.unreachable = Some(why),
            Err(_) => {
                self.unreachable = Some(format!(
                    "no answer from {} within {}s",
                    self.params.target.address,
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(upstream) = self.upstream.clone() else {
            reply.accept().await;
            let why = self
                .unreachable
                .clone()
                .unwrap_or_else(|| "the host is not connected".into());
            tokio::spawn(refuse(channel, format!("sluice: {why}\r\n"), UNREACHABLE));
            return Ok(());
        };
        match upstream.channel_open_session().await {
            Ok(host) => {
                reply.accept().await;
                tokio::spawn(relay(
                    channel,
                    host,
                    Arc::clone(&self.params),
                    Arc::clone(&self.resolver),
                    session.handle(),
                ));
            }
            Err(e) => {
                reply.accept().await;
                tokio::spawn(refuse(
                    channel,
                    format!("sluice: the host refused a session: {e}\r\n"),
                    UNREACHABLE,
                ));
            }
        }
        Ok(())
    }

    // Requests are answered here; the relay acts on them (it sees them on the channel).
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Environment from the client (LANG, …) is not passed on: it can change what runs.
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The relay starts SFTP on the host, or tells the client why not.
        if name == "sftp" && self.params.policy.files.is_some() && self.upstream.is_some() {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let allowed = self.params.policy.remote_forward;
        let upstream = self.upstream.clone().filter(|_| allowed);
        let Some(upstream) = upstream else {
            if let Some(j) = &self.params.journal {
                j.forward(&format!("remote {address}:{port}"), false);
            }
            return Ok(false);
        };
        self.link.set(session.handle(), &self.params.policy);
        let bound = upstream.tcpip_forward(address, *port).await;
        if let Some(j) = &self.params.journal {
            let shown = bound.as_ref().map_or(*port, |bound| *bound);
            j.forward(&format!("remote {address}:{shown}"), bound.is_ok());
        }
        match bound {
            Ok(bound) => {
                if *port == 0 {
                    *port = bound;
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(upstream) = self.upstream.clone() else {
            return Ok(false);
        };
        Ok(upstream.cancel_tcpip_forward(address, port).await.is_ok())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if let Some(j) = &self.params.journal {
            j.note(if self.params.policy.agent {
                "agent forwarding opened"
            } else {
                "agent forwarding refused"
            });
        }
        if !self.params.policy.agent {
            return Ok(false);
        }
        self.link.set(session.handle(), &self.params.policy);
        Ok(true)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let to = format!("{host_to_connect}:{port_to_connect}");
        let allowed = self.params.policy.forwards.contains(&to);
        if let Some(j) = &self.params.journal {
            j.forward(&to, allowed);
        }
        let Some(upstream) = self.upstream.clone().filter(|_| allowed) else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match upstream
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await
        {
            Ok(host) => {
                reply.accept().await;
                tokio::spawn(forward(channel, host));
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

/// Logs in to the host with the broker's key, checking its host key.
pub(crate) async fn login(
    target: &Target,
    link: Link,
) -> Result<russh::client::Handle<Upstream>, String> {
    let config = Arc::new(russh::client::Config {
        inactivity_timeout: None,
        nodelay: true,
        preferred: preferred(),
        ..Default::default()
    });
    let checker = Upstream {
        link,
        pin: target.host_key.clone(),
        mismatch: None,
    };
    let mut handle = russh::client::connect(config, target.address.as_str(), checker)
        .await
        .map_err(|e| match e {
            russh::Error::UnknownKey => format!(
                "the host at {} presented another host key than the one pinned ({}); the \
                 session is refused",
                target.address,
                target.host_key.describe()
            ),
            other => format!("cannot reach the host at {}: {other}", target.address),
        })?;
    let failed = |e: russh::Error| format!("cannot log in to {}: {e}", target.address);
    let user = target.user.clone();
    let (auth, what) = match &target.credential {
        Credential::Key(key) => {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(failed)?
                .flatten();
            let auth = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::clone(key), hash))
                .await
                .map_err(failed)?;
            (
                auth,
                "the broker's key; the operator should check its authorized_keys",
            )
        }
        Credential::Password(password) => {
            let auth = handle
                .authenticate_password(user, password.to_string())
                .await
                .map_err(failed)?;
            (auth, "the broker's password")
        }
        Credential::Ca { ca, ttl, key_id } => {
            let (key, certificate) =
                crate::credential::user_certificate(ca, &target.user, key_id, *ttl)?;
            let auth = handle
                .authenticate_openssh_cert(user, Arc::new(key), certificate)
                .await
                .map_err(failed)?;
            (
                auth,
                "a certificate from the broker's CA; the operator should check the host's \
                 TrustedUserCAKeys",
            )
        }
    };
    if !auth.success() {
        return Err(format!(
            "the host at {} refused {what} for {}",
            target.address, target.user
        ));
    }
    Ok(handle)
}

/// The broker's client to the host: it only checks the host key.
pub(crate) struct Upstream {
    link: Link,
    pin: HostKey,
    mismatch: Option<String>,
}

impl russh::client::Handler for Upstream {
    type Error = russh::Error;

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<russh::client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut russh::client::Session,
    ) -> Result<(), Self::Error> {
        let Some(client) = self.link.get(|a| a.remote_forward) else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match client
            .channel_open_forwarded_tcpip(
                connected_address,
                connected_port,
                originator_address,
                originator_port,
            )
            .await
        {
            Ok(toward_client) => {
                reply.accept().await;
                tokio::spawn(forward(toward_client, channel));
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<russh::client::Msg>,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut russh::client::Session,
    ) -> Result<(), Self::Error> {
        let Some(client) = self.link.get(|a| a.agent) else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match client.channel_open_agent().await {
            Ok(toward_client) => {
                reply.accept().await;
                tokio::spawn(forward(toward_client, channel));
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is not a pinned key: refused in this version.
        let russh::keys::PublicKeyOrCertificate::PublicKey { key: presented, .. } = key else {
            return Ok(false);
        };
        let ok = self.pin.accepts(presented);
        if !ok {
            self.mismatch = Some(presented.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(ok)
    }
}

/// How a held command ended.
enum Held {
    /// Approved: run it, then pass on what the client sent meanwhile (and its end of input).
    Run(Vec<bytes::Bytes>, bool),
    /// Denied, timed out, or no approvals service: the client's message.
    Refused(String),
    /// The client went away: the request was withdrawn.
    Gone,
}

/// Files `command` for approval, tells the client who may decide, and waits for the decision
/// or the client's going away (which withdraws it).
async fn held(
    client: &mut Channel<Msg>,
    params: &Params,
    command: &str,
    rule: &str,
    reason: &str,
) -> Held {
    let Some(approvals) = params.approvals.as_ref() else {
        return Held::Refused(format!(
            "sluice: refused: rule '{rule}' holds this command for approval and no approvals \
             service is available\r\n"
        ));
    };
    let request = sluice_engine::hold::HoldRequest {
        kind: "exec".into(),
        what: command.to_owned(),
        rule: rule.to_owned(),
        reason: reason.to_owned(),
    };
    let hold = match approvals.request(request) {
        Ok(hold) => hold,
        Err(why) => return Held::Refused(format!("sluice: refused: {why}\r\n")),
    };
    let _ = client
        .extended_data_bytes(
            1,
            format!(
                "sluice: {reason}; waiting for approval by {} (request {}, `sluice approve {}`)\r\n",
                hold.approvers, hold.id, hold.id
            )
            .into_bytes(),
        )
        .await;
    let mut decision = hold.decision;
    let mut early = Vec::new();
    let mut eof = false;
    loop {
        tokio::select! {
            outcome = &mut decision => {
                if let Some(j) = &params.journal {
                    let decided = match &outcome {
                        sluice_engine::hold::HoldOutcome::Approved { by } => Ok(by.as_str()),
                        sluice_engine::hold::HoldOutcome::Denied { message } => Err(message.as_str()),
                    };
                    j.held(command, rule, &hold.id, decided);
                }
                return match outcome {
                    sluice_engine::hold::HoldOutcome::Approved { by } => {
                        let _ = client
                            .extended_data_bytes(1, format!("sluice: approved by {by}\r\n").into_bytes())
                            .await;
                        Held::Run(early, eof)
                    }
                    sluice_engine::hold::HoldOutcome::Denied { message } => {
                        Held::Refused(format!("sluice: {message}\r\n"))
                    }
                };
            }
            message = client.wait() => match message {
                Some(ChannelMsg::Data { data }) => early.push(data),
                Some(ChannelMsg::Eof) => eof = true,
                Some(ChannelMsg::Close) | None => {
                    approvals.withdraw(&hold.id, "the client went away");
                    if let Some(j) = &params.journal {
                        j.held(command, rule, &hold.id, Err("withdrawn: the client went away"));
                    }
                    return Held::Gone;
                }
                Some(_) => {}
            }
        }
    }
}

/// Tells the client why nothing runs, then ends the channel.
async fn refuse(channel: Channel<Msg>, message: String, status: u32) {
    let _ = channel.extended_data_bytes(1, message.into_bytes()).await;
    let _ = channel.exit_status(status).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

/// A file transfer an exec command started (`scp -t`, `rsync --server`, `git-upload-pack`):
/// its output is file data, counted and not recorded as terminal output.
struct Running {
    op: String,
    path: String,
    upload: bool,
    bytes: u64,
}

/// Judges a transfer's paths, as the host resolves them, by the role's file rules; the
/// client's message when it is refused.
async fn judge_transfer(
    params: &Params,
    resolver: &Resolver,
    transfer: &Transfer,
) -> Result<Running, String> {
    let op = format!(
        "{}-{}",
        transfer.kind,
        if transfer.upload {
            "upload"
        } else {
            "download"
        }
    );
    let Some(rules) = &params.policy.files else {
        return Err(format!(
            "sluice: refused: this role may not transfer files ({} needs `ssh.files` in the \
             role)\r\n",
            transfer.kind
        ));
    };
    let Some(first) = transfer.paths.first() else {
        return Err(format!(
            "sluice: refused: the {} command names no path\r\n",
            transfer.kind
        ));
    };
    let access = if transfer.upload {
        Access::Write
    } else {
        Access::Read
    };
    // A directory sent or received whole: no denied path may lie below it.
    let tree = match transfer.kind {
        TransferKind::Scp => transfer.recursive,
        TransferKind::Rsync | TransferKind::Git => true,
    };
    let mut resolved_first = String::new();
    for path in &transfer.paths {
        if path.starts_with('~') || path.contains(['$', '`', '*', '?', '[', '{']) {
            return Err(format!(
                "sluice: refused: the shell would expand the path `{path}`, so where it leads \
                 cannot be judged; give the path itself\r\n"
            ));
        }
        // `dir/` names `dir` (rsync's destination, made if missing).
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        let resolved = match resolver.resolve(trimmed, crate::sftp::Follow::Yes).await {
            Ok(Resolved::Path(resolved)) => resolved,
            Ok(Resolved::Status(_)) => {
                return Err(format!("sluice: {path}: no such file or directory\r\n"));
            }
            Err(why) => return Err(format!("sluice: refused: {why}\r\n")),
        };
        let judged = if tree {
            rules.judge_tree(access, &resolved)
        } else {
            rules.judge(access, &resolved)
        };
        if let Err(refusal) = judged {
            if let Some(j) = &params.journal {
                j.file(&FileEvent {
                    op: &op,
                    path: &resolved,
                    to: None,
                    bytes: None,
                    outcome: FileOutcome::Refused(&refusal),
                });
            }
            return Err(format!(
                "sluice: Permission denied: {} (rule {})\r\n",
                refusal.reason, refusal.rule
            ));
        }
        if path == first {
            resolved_first = resolved;
        }
    }
    Ok(Running {
        op,
        path: resolved_first,
        upload: transfer.upload,
        bytes: 0,
    })
}

/// Relays a local forward (`ssh -L`) channel both ways until either side ends it.
async fn forward(client: Channel<Msg>, host: Channel<russh::client::Msg>) {
    let (mut client_in, client_out) = client.split();
    let (mut host_in, host_out) = host.split();
    tokio::select! {
        () = pump(&mut client_in, &host_out) => {}
        () = pump(&mut host_in, &client_out) => {}
    }
    let _ = host_out.close().await;
    let _ = client_out.close().await;
}

/// Passes data and end-of-data from one channel to another until it closes.
async fn pump<S>(from: &mut russh::ChannelReadHalf, to: &russh::ChannelWriteHalf<S>)
where
    S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    while let Some(message) = from.wait().await {
        let sent = match message {
            ChannelMsg::Data { data } => to.data_bytes(data).await,
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::Close => return,
            _ => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Relays one session channel between the client and the host, deciding what it asks.
async fn relay(
    mut client: Channel<Msg>,
    mut host: Channel<russh::client::Msg>,
    params: Arc<Params>,
    resolver: Arc<Resolver>,
    session: russh::server::Handle,
) {
    let journal = params.journal.clone();
    let mut running: Option<Running> = None;
    loop {
        tokio::select! {
            message = client.wait() => {
                let Some(message) = message else { break };
                match message {
                    ChannelMsg::RequestPty { term, col_width, row_height, pix_width, pix_height, terminal_modes, .. } => {
                        if let Some(j) = &journal {
                            j.resize(col_width, row_height);
                        }
                        let _ = host
                            .request_pty(false, &term, col_width, row_height, pix_width, pix_height, &terminal_modes)
                            .await;
                    }
                    ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                        if let Some(j) = &journal {
                            j.resize(col_width, row_height);
                        }
                        let _ = host.window_change(col_width, row_height, pix_width, pix_height).await;
                    }
                    ChannelMsg::RequestShell { .. } => {
                        if let Some(j) = &journal {
                            j.shell(params.policy.shell);
                        }
                        if params.policy.shell {
                            let _ = host.request_shell(false).await;
                        } else {
                            let _ = host.close().await;
                            refuse(
                                client,
                                "sluice: this role may not open an interactive shell; run a \
                                 command instead (ssh HOST COMMAND)\r\n"
                                    .into(),
                                REFUSED,
                            )
                            .await;
                            return;
                        }
                    }
                    ChannelMsg::RequestSubsystem { name, .. } => {
                        let Some(rules) = params.policy.files.clone().filter(|_| name == "sftp") else {
                            if let Some(j) = &journal {
                                j.note(&format!("subsystem {name} refused"));
                            }
                            let _ = host.close().await;
                            let why = if name == "sftp" {
                                "sluice: this role may not transfer files (no `ssh.files` in the role)\r\n".to_owned()
                            } else {
                                format!("sluice: the subsystem {name} is not served through sluice\r\n")
                            };
                            refuse(client, why, REFUSED).await;
                            return;
                        };
                        if host.request_subsystem(false, "sftp").await.is_err() {
                            let _ = client.close().await;
                            return;
                        }
                        crate::sftp_relay::relay(client, host, rules, resolver, journal).await;
                        return;
                    }
                    ChannelMsg::Exec { command, .. } => {
                        let command = String::from_utf8_lossy(&command).into_owned();
                        let judgement = params.policy.exec.judge(&command);
                        if let Some(j) = &journal {
                            j.command(&command, &judgement);
                        }
                        let refusal = match &judgement {
                            Judgement::Allow => None,
                            Judgement::Block { rule, reason } => {
                                Some(format!("sluice: refused by rule '{rule}': {reason}\r\n"))
                            }
                            Judgement::Hold { rule, reason } => {
                                match held(&mut client, &params, &command, rule, reason).await {
                                    Held::Run(early, eof) => {
                                        let _ = host.exec(false, command.into_bytes()).await;
                                        for data in early {
                                            let _ = host.data_bytes(data).await;
                                        }
                                        if eof {
                                            let _ = host.eof().await;
                                        }
                                        continue;
                                    }
                                    Held::Refused(message) => Some(message),
                                    Held::Gone => {
                                        let _ = host.close().await;
                                        return;
                                    }
                                }
                            }
                            Judgement::Transfer(t) => match judge_transfer(&params, &resolver, t).await {
                                Ok(transfer) => {
                                    running = Some(transfer);
                                    None
                                }
                                Err(message) => Some(message),
                            },
                        };
                        match refusal {
                            None => {
                                let _ = host.exec(false, command.into_bytes()).await;
                            }
                            Some(message) => {
                                let _ = host.close().await;
                                refuse(client, message, REFUSED).await;
                                return;
                            }
                        }
                    }
                    ChannelMsg::Data { data } => {
                        match running.as_mut() {
                            Some(t) => {
                                if t.upload {
                                    t.bytes += data.len() as u64;
                                }
                            }
                            None => {
                                if let Some(j) = journal.as_ref().filter(|_| params.policy.record_input) {
                                    j.input(&data);
                                }
                            }
                        }
                        let _ = host.data_bytes(data).await;
                    }
                    ChannelMsg::Signal { signal } => {
                        let _ = host.signal(signal).await;
                    }
                    // Answered by `agent_request`; only an allowed one is passed on.
                    ChannelMsg::AgentForward { .. } if params.policy.agent => {
                        let _ = host.agent_forward(false).await;
                    }
                    ChannelMsg::Eof => {
                        let _ = host.eof().await;
                    }
                    ChannelMsg::Close => {
                        let _ = host.close().await;
                        break;
                    }
                    _ => {}
                }
            }
            message = host.wait() => {
                let Some(message) = message else {
                    let _ = client.close().await;
                    break;
                };
                match message {
                    ChannelMsg::Data { data } => {
                        match running.as_mut() {
                            Some(t) => {
                                if !t.upload {
                                    t.bytes += data.len() as u64;
                                }
                            }
                            None => {
                                if let Some(j) = &journal {
                                    j.output(&data, false);
                                }
                            }
                        }
                        if client.data_bytes(data).await.is_err() {
                            break;
                        }
                    }
                    ChannelMsg::ExtendedData { data, ext } => {
                        if let Some(j) = &journal {
                            j.output(&data, true);
                        }
                        if client.extended_data_bytes(ext, data).await.is_err() {
                            break;
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        if let Some(j) = &journal {
                            // The transfer is over once the host's command exits: journal it
                            // before the client hears of the exit, so whoever reads the
                            // recording after the client is done finds it.
                            finish_transfer(j.as_ref(), running.take());
                            j.exit(exit_status);
                        }
                        let _ = client.exit_status(exit_status).await;
                    }
                    ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                        if let Some(j) = &journal {
                            j.note(&format!("ended by signal {signal_name:?}"));
                        }
                        let _ = session
                            .exit_signal_request(client.id(), signal_name, core_dumped, error_message, lang_tag)
                            .await;
                    }
                    ChannelMsg::Eof => {
                        let _ = client.eof().await;
                    }
                    ChannelMsg::Close => {
                        if let Some(j) = &journal {
                            finish_transfer(j.as_ref(), running.take());
                        }
                        let _ = client.close().await;
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(j) = &journal {
        finish_transfer(j.as_ref(), running);
    }
}

/// Journals a transfer that ran to its end, with the bytes it moved.
fn finish_transfer(journal: &dyn Journal, running: Option<Running>) {
    if let Some(t) = running {
        journal.file(&FileEvent {
            op: &t.op,
            path: &t.path,
            to: None,
            bytes: Some(t.bytes),
            outcome: FileOutcome::Done,
        });
    }
}
