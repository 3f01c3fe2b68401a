//! The command line, defined once: help text, completions and docs all come from here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Sluice: just-in-time, policy-enforced access to databases and servers through the Sluice
/// broker. The broker holds the credentials; you get a tunnel on localhost.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    after_help = "Exit codes are documented in docs/cli.md."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Broker URL (https://HOST:PORT); remembered by `login`.
    #[arg(long, global = true, env = "SLUICE_BROKER", value_name = "URL")]
    pub broker: Option<String>,
    /// PEM file with the CA that signed the broker's certificate; remembered by `login`.
    #[arg(long, global = true, env = "SLUICE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Output format of commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// One JSON document (JSON Lines for streams).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to the broker: approve a code at your identity provider (OIDC device flow), or
    /// pipe in a token with --token-stdin.
    #[command(
        after_help = "Examples:\n  sluice login --broker https://sluice.internal:8443   # prints a code to approve in a browser\n  sluice login --issuer corp                           # when the broker trusts several providers\n  sluiced token issue ... | sluice login --token-stdin"
    )]
    Login(LoginArgs),
    /// Forget the stored session token.
    Logout,
    /// Show who the broker thinks you are.
    Whoami {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List the resources you may ask for, with the roles policy lets you request on each.
    ///
    /// Each role shows how long a grant of it may last at most and, if someone has to approve
    /// it, who. The first role of a resource is your default there: the one `connect` asks for
    /// without --role.
    #[command(
        after_help = "Examples:\n  sluice resources                 # NAME, KIND, ROLES, DESCRIPTION\n  sluice resources --output json   # every field, labels and role descriptions too\n\nA role reads `write (1h, approval: dba-leads)`: at most 1h, approved by someone in dba-leads.\nAn empty list means policy gives you no role anywhere; exit 0 all the same."
    )]
    Resources {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the
    /// `--exec` command exits). Uses your active grant for the resource and role, or asks for
    /// one and waits for its approval.
    #[command(
        after_help = "Examples:\n  sluice connect pg-main                      # prints a psql command; Ctrl-C closes\n  sluice connect pg-main --role write --ttl 1h --reason 'fix invoice 4411'\n  sluice connect pg-main --exec psql -c 'select 1'\n  sluice connect cache --port 6380"
    )]
    Connect(ConnectArgs),
    /// Run one command with a fresh grant: ask for it, wait for approval, connect, run CMD with
    /// the connection in its environment, then revoke the grant when CMD exits (one CI step).
    #[command(
        after_help = "The grant is revoked when CMD exits, fails, or is stopped with Ctrl-C or SIGTERM (which are\npassed on to CMD first); `sluice run` exits with CMD's exit code.\n\nExamples:\n  sluice run pg-main --role read -- psql -c 'select count(*) from invoices'\n  sluice run pg-main --role write --ttl 15m --reason 'migration 42' -- ./migrate.sh\n  sluice run pg-main --role write --workload github -- sqitch deploy"
    )]
    Run(RunArgs),
    /// Run the system ssh (or scp's/rsync's ssh) through the broker under a grant: the broker
    /// logs in to the host with its own key and decides each command.
    #[command(
        after_help = "Examples:\n  sluice ssh web -- uptime\n  sluice ssh web --role ops\n  sluice ssh web --ssh=-tt -- top"
    )]
    Ssh(SshArgs),
    /// Run kubectl through the broker under a grant: a temporary kubeconfig points it at a
    /// local tunnel with a one-time token; the broker decides every API request and calls the
    /// cluster with its own credential.
    #[command(
        after_help = "Examples:\n  sluice kube prod-cluster -- get pods -n prod\n  sluice kube prod-cluster --role deployer -- rollout restart deploy/web -n prod\n  sluice connect prod-cluster --exec kubectl get ns   # the same, KUBECONFIG set for the command"
    )]
    Kube(KubeArgs),
    /// Serve Sluice to an AI agent as MCP tools (stdio by default, the transport MCP clients
    /// launch): list resources, ask for access, run queries, commands and requests through
    /// the broker's guardrails, read masked results, end the grant. The agent never receives a
    /// credential or a tunnel secret.
    #[command(
        after_help = "Examples:\n  sluice mcp                                  # stdio: put this command in the agent's MCP config\n  sluice mcp --workload github               # an agent in CI, as the workflow's identity\n  sluice mcp --listen 127.0.0.1:8765         # streamable HTTP at http://127.0.0.1:8765/mcp\n\nSee docs/agents.md for client configuration and an agent policy."
    )]
    Mcp(McpArgs),
    /// Helpers other programs run (ssh's ProxyCommand).
    #[command(subcommand, hide = true)]
    Proxy(ProxyCommand),
    /// Write configuration for other tools: `sluice config ssh` lets plain ssh, scp, sftp,
    /// rsync and git reach ssh resources as RESOURCE.sluice.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A kubectl exec credential plugin (written into kubeconfigs by `sluice config kube`):
    /// prints an ExecCredential for the broker's Kubernetes endpoint under your grant on RES,
    /// asking for one when you hold none.
    #[command(name = "kube-credential")]
    KubeCredential(KubeCredentialArgs),
    /// Ask for, wait for, list and revoke just-in-time grants (a role on a resource for a time).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Show the pending requests and held statements you may approve or deny; with --watch,
    /// wait for new ones and prompt for each as it arrives.
    ///
    /// Grant requests (ids `g_…`) ask for a role on a resource for a time. Held statements (ids
    /// `s_…`) are single SQL statements a guardrail rule stopped inside someone's live session:
    /// the person waits in psql until you decide, and the broker denies the statement if nobody
    /// does in time. Nobody may decide a statement held in their own session.
    #[command(
        after_help = "Examples:\n  sluice approvals                  # what waits for you now\n  sluice approvals --watch          # prompt for each new request or statement: approve, deny or skip\n  sluice approvals --watch --output json   # one JSON object per new request or statement (no prompt)"
    )]
    Approvals(ApprovalsArgs),
    /// Approve a pending request (one approver's yes; some roles need more than one), or a
    /// statement held in a live session (an `s_…` id), which then runs at once.
    #[command(
        after_help = "Examples:\n  sluice approve g_7Kx2pQ\n  sluice approve g_7Kx2pQ --reason 'ticket OPS-12'\n  sluice approve s_3fQ9LmT          # a held statement: it runs now in its session"
    )]
    Approve(DecisionArgs),
    /// Deny a pending request, or a statement held in a live session (an `s_…` id); the reason
    /// is shown to the requester.
    #[command(
        after_help = "Examples:\n  sluice deny g_7Kx2pQ --reason 'not during the freeze'\n  sluice deny s_3fQ9LmT --reason 'use a batch job for this'"
    )]
    Deny(DenyArgs),
    /// List, show and replay recorded sessions: yours, or everyone's if you are an auditor
    /// (policy.auditors).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Check the broker's tamper-evident audit trail, or export it for a SIEM (auditors only:
    /// policy.auditors).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Read a session token (from `sluiced token issue`) from standard input.
    #[arg(long)]
    pub token_stdin: bool,
    /// The identity provider to log in with, by the broker's name for it; needed only when the
    /// broker trusts more than one.
    #[arg(long, value_name = "NAME", conflicts_with = "token_stdin")]
    pub issuer: Option<String>,
    /// Log in as a CI job or agent with the platform's identity token: github, gitlab,
    /// kubernetes, file:PATH or env:VAR. Prints the session token on stdout unless --store.
    #[arg(long, value_name = "SOURCE", conflicts_with_all = ["token_stdin", "issuer"])]
    pub workload: Option<crate::workload::Source>,
    /// The audience to request the workload token for (default: the broker's rule for the
    /// platform).
    #[arg(long, value_name = "AUD", requires = "workload")]
    pub audience: Option<String>,
    /// With --workload: store the session token like an interactive login instead of printing it.
    #[arg(long, requires = "workload")]
    pub store: bool,
}

/// The grant a command uses: an active one of yours is reused, else one is asked for.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The role to use; the policy's default role for you on the resource when left out.
    #[arg(long, short)]
    pub role: Option<String>,
    /// How long a new grant should last (e.g. 30m, 8h); the role's default when left out. Capped
    /// at the role's maximum. An active grant you already hold is used as it is.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Why you need access, for the approvers and the audit trail [default: the command, e.g.
    /// "sluice connect"].
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The resource to connect to.
    pub resource: String,
    /// The grant to use or ask for.
    #[command(flatten)]
    pub grant: GrantArgs,
    /// Local port to listen on (127.0.0.1 only); a free one by default.
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Output format of the connection details (not used with --exec).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Run this command with the connection in its environment (PGHOST, PGPORT, PGUSER,
    /// PGDATABASE, PGPASSWORD for postgres; KUBECONFIG for kubernetes; SLUICE_SSH_KEY and
    /// SLUICE_SSH_KNOWN_HOSTS for ssh; SLUICE_HOST, SLUICE_PORT always), close the tunnel when it
    /// exits and exit with its code.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
    pub exec: Option<Vec<String>>,
    /// Authenticate this one command with the platform's identity token instead of a stored
    /// login (CI steps): github, gitlab, kubernetes, file:PATH or env:VAR.
    #[arg(long, value_name = "SOURCE")]
    pub workload: Option<crate::workload::Source>,
    /// The audience to request the workload token for.
    #[arg(long, value_name = "AUD", requires = "workload")]
    pub audience: Option<String>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve streamable HTTP on this loopback address (at /mcp) instead of stdio.
    #[arg(long, value_name = "127.0.0.1:PORT", value_parser = parse_loopback)]
    pub listen: Option<std::net::SocketAddr>,
    /// Authenticate with the platform's identity token instead of a stored login (an agent
    /// in CI or Kubernetes): github, gitlab, kubernetes, file:PATH or env:VAR.
    #[arg(long, value_name = "SOURCE")]
    pub workload: Option<crate::workload::Source>,
    /// The audience to request the workload token for.
    #[arg(long, value_name = "AUD", requires = "workload")]
    pub audience: Option<String>,
    /// Most rows a query returns to the agent (a tool call may ask for fewer).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_rows: u32,
    /// Most bytes of one tool result (rows, command output, response body); more is cut and
    /// marked truncated.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024))]
    pub max_bytes: u32,
}

/// A socket address on the loopback interface: the MCP endpoint carries the caller's access.
fn parse_loopback(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|e| format!("'{text}' is not an address like 127.0.0.1:8765: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; the MCP endpoint acts as you, so it listens on \
             127.0.0.1 (or ::1) only"
        ));
    }
    Ok(addr)
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// The ssh resource, optionally as LOGIN@RESOURCE for a login the role allows besides the
    /// resource's own (`ssh.logins`).
    pub target: String,
    /// The grant to use or ask for.
    #[command(flatten)]
    pub grant: GrantArgs,
    /// Extra options for ssh, e.g. --ssh=-tt (repeatable).
    #[arg(long = "ssh", value_name = "OPTION", allow_hyphen_values = true)]
    pub ssh: Vec<String>,
    /// The command to run on the host; an interactive shell when left out.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// The kubernetes resource.
    pub resource: String,
    /// The grant to use or ask for.
    #[command(flatten)]
    pub grant: GrantArgs,
    /// The namespace the kubeconfig's context starts in.
    #[arg(long, short, value_name = "NS")]
    pub namespace: Option<String>,
    /// The kubectl program to run.
    #[arg(long, default_value = "kubectl", value_name = "PROGRAM")]
    pub kubectl: String,
    /// Arguments for kubectl.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `sluice proxy …`.
#[derive(Debug, clap::Subcommand)]
pub enum ProxyCommand {
    /// One tunnel to an ssh resource on stdin/stdout (ssh's ProxyCommand).
    Ssh(ProxySshArgs),
}

#[derive(Debug, Args)]
pub struct ProxySshArgs {
    /// The ssh resource, or the host name ssh was given (web.sluice) with --suffix.
    pub resource: String,
    /// The active grant to use; without it an active grant is reused or one is asked for.
    #[arg(long)]
    pub grant: Option<String>,
    /// The role to ask for when there is no --grant.
    #[arg(long, short)]
    pub role: Option<String>,
    /// The key the broker is to accept for this tunnel.
    #[arg(long, value_name = "FILE")]
    pub public_key: std::path::PathBuf,
    /// A domain to take off RESOURCE (`.sluice`: ssh was given web.sluice).
    #[arg(long, value_name = "SUFFIX")]
    pub suffix: Option<String>,
    /// Pin the broker's SSH host key for RESOURCE (as given) in this known_hosts file first.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<std::path::PathBuf>,
}

/// `sluice config …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Write an ssh_config block for `Include`: `ssh web.sluice`, `scp f web.sluice:`, `sftp`,
    /// `rsync` and `git clone web.sluice:repo.git` then go through the broker, reusing your
    /// active grant or asking for one, with the broker's host key pinned.
    #[command(
        after_help = "Examples:\n  sluice config ssh                  # writes ~/.config/sluice/ssh_config, prints the Include line\n  sluice config ssh --output -       # print the block instead\n  echo 'Include ~/.config/sluice/ssh_config' >> ~/.ssh/config && ssh web.sluice uptime"
    )]
    Ssh(ConfigSshArgs),
    /// Write a context into your kubeconfig whose server is the broker and whose credential is
    /// `sluice kube-credential RES`: plain `kubectl --context RES` then works while you hold a
    /// grant (reused, or asked for when kubectl first needs it).
    #[command(
        after_help = "Examples:\n  sluice config kube prod-cluster                 # context prod-cluster in ~/.kube/config (or $KUBECONFIG)\n  sluice config kube prod-cluster --role deployer -n prod\n  kubectl --context prod-cluster get pods"
    )]
    Kube(ConfigKubeArgs),
}

#[derive(Debug, Args)]
pub struct ConfigKubeArgs {
    /// The kubernetes resource.
    pub resource: String,
    /// The role the credential asks for when you hold no grant (the policy's default when
    /// left out).
    #[arg(long, short)]
    pub role: Option<String>,
    /// The context's name [default: the resource's].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace the context starts in.
    #[arg(long, short, value_name = "NS")]
    pub namespace: Option<String>,
    /// The kubeconfig file to write [default: kubectl's: $KUBECONFIG or ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubectl program that writes it.
    #[arg(long, default_value = "kubectl", value_name = "PROGRAM")]
    pub kubectl: String,
}

#[derive(Debug, Args)]
pub struct KubeCredentialArgs {
    /// The kubernetes resource.
    pub resource: String,
    /// The grant to use or ask for.
    #[command(flatten)]
    pub grant: GrantArgs,
}

#[derive(Debug, Args)]
pub struct ConfigSshArgs {
    /// Where to write the block; `-` prints it [default: ssh_config in the CLI's directory].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// The domain ssh host names end with.
    #[arg(long, default_value = "sluice", value_name = "DOMAIN")]
    pub domain: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The resource to connect to.
    pub resource: String,
    /// The role to ask for.
    #[arg(long, short)]
    pub role: String,
    /// How long the grant may last at most (e.g. 15m); the role's default when left out. It is
    /// revoked as soon as CMD exits anyway.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Why you need access, for the approvers and the audit trail [default: "sluice run: " and the program's name].
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,
    /// Authenticate with the platform's identity token instead of a stored login (CI steps):
    /// github, gitlab, kubernetes, file:PATH or env:VAR.
    #[arg(long, value_name = "SOURCE")]
    pub workload: Option<crate::workload::Source>,
    /// The audience to request the workload token for.
    #[arg(long, value_name = "AUD", requires = "workload")]
    pub audience: Option<String>,
    /// The command and its arguments, after `--`. It gets PGHOST, PGPORT, PGUSER, PGDATABASE,
    /// PGPASSWORD for postgres, SLUICE_HOST and SLUICE_PORT for tcp.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Ask for a role on a resource for a time. Policy grants it at once or sends it to
    /// approvers; --wait waits for their decision.
    #[command(
        after_help = "Examples:\n  sluice grant request pg-main --role write --ttl 30m --reason 'fix invoice 4411'\n  sluice grant request pg-main --role write --reason 'incident 77' --wait\n\nWith --wait, exits 0 once the grant is active and 15 if it is denied or nobody approves it in time."
    )]
    Request(GrantRequestArgs),
    /// Wait for the decision on a pending request of yours.
    #[command(
        after_help = "Example:\n  sluice grant wait g_7Kx2pQ && sluice connect pg-main --role write"
    )]
    Wait {
        /// The grant id (from `sluice grant request` or `sluice grant list`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List your active and pending grants (with --all, ended ones too).
    #[command(
        after_help = "Examples:\n  sluice grant list\n  sluice grant list --all --output json"
    )]
    List {
        /// Include denied, expired and revoked grants.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// End a grant now (yours, or one you approve for); its open sessions are closed.
    #[command(after_help = "Example:\n  sluice grant revoke g_7Kx2pQ --reason 'done'")]
    Revoke {
        /// The grant id.
        id: String,
        /// Why, for the audit trail.
        #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
        reason: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions through the broker, newest first: who, what, when, how they ended.
    #[command(
        after_help = "Examples:\n  sluice sessions list\n  sluice sessions list --resource pg-main --since 24h\n  sluice sessions list --user alice --output json      # auditors only for other users"
    )]
    List {
        /// Only sessions on this resource.
        #[arg(long, value_name = "RESOURCE")]
        resource: Option<String>,
        /// Only this user's (or workload's) sessions; other people's need policy.auditors.
        #[arg(long, value_name = "SUBJECT")]
        user: Option<String>,
        /// Only sessions started within this long (e.g. 24h, 7d).
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        since: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// One session's timeline: statements, decisions, approvals, durations, rows.
    #[command(
        after_help = "Examples:\n  sluice sessions show ses_4f1c...\n  sluice sessions show ses_4f1c... --output json"
    )]
    Show {
        /// The session id (from `sluice sessions list`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Replays a session as it happened: each statement and its outcome at its moment, or, for
    /// an SSH terminal session, what the terminal showed, written to your terminal at its pace.
    #[command(
        after_help = "Examples:\n  sluice sessions replay ses_4f1c...            # real time\n  sluice sessions replay ses_4f1c... --speed 10  # ten times faster\n  sluice sessions replay ses_4f1c... --speed 0   # no waiting"
    )]
    Replay {
        /// The session id.
        id: String,
        /// Playback speed: 2 is twice as fast, 0 prints everything at once.
        #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
        speed: f64,
    },
    /// Writes a session's recording to stdout: `asciicast` (a terminal session, playable with
    /// `asciinema play`) or `jsonl` (the session, then every event, one JSON object a line).
    #[command(
        after_help = "Examples:\n  sluice sessions export ses_4f1c... --format asciicast > s.cast\n  sluice sessions export ses_4f1c... --format jsonl | jq ."
    )]
    Export {
        /// The session id.
        id: String,
        /// The format.
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
}

/// `sluice sessions export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// asciicast v2: a header line, then `[seconds, "o", "text"]` per terminal event.
    Asciicast,
    /// The session as a JSON object, then one JSON object per event.
    Jsonl,
}

/// A look-back such as `24h` or `7d`, in seconds.
fn parse_since(s: &str) -> Result<u64, String> {
    humantime::parse_duration(s.trim())
        .map(|d| d.as_secs())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 30m, 24h or 7d"))
}

/// A replay speed: a finite number, 0 or more.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed >= 0.0 => Ok(speed),
        _ => Err(format!(
            "'{s}' is not a speed; use e.g. 1 (real time), 10 (ten times faster) or 0 (no waiting)"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Fetch the whole audit trail and check it here: every record's hash, every link to the
    /// record before it, and every checkpoint the broker signed. Names the first broken link.
    ///
    /// Each record carries the SHA-256 of its content and of the record before it, and the
    /// broker signs the newest record every 100 records or minute with its Ed25519 token key.
    /// An edited, deleted, reordered or rewritten record shows up as a broken link; records
    /// deleted from the end show up once a checkpoint covers them.
    #[command(
        after_help = "Examples:\n  sluice audit verify\n  sluice audit verify --output json\n  sluice audit verify --key-id 3f9a1c2b7d4e5f60   # also insist on the key you know\n\nExits 0 when the trail is intact and 16 when it is not (the first broken link is named);\n12 when you are not an auditor (policy.auditors). See docs/audit.md."
    )]
    Verify {
        /// The key id the checkpoints must be signed with (printed by an earlier verify); by
        /// default the broker's current key, as the broker reports it.
        #[arg(long, value_name = "ID")]
        key_id: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Write audit records as JSON Lines (one record per line, oldest first) for a SIEM.
    ///
    /// Each line is one record with its seq, time (ms since the epoch), event name, fields and
    /// chain hashes; a record's fields never hold a credential.
    #[command(
        after_help = "Examples:\n  sluice audit export --since 24h > audit.jsonl\n  sluice audit export --since 2026-03-01T00:00:00Z --until 2026-03-02T00:00:00Z --output march-1.jsonl\n  sluice audit export --since 15m | jq -c 'select(.event == \"grant.requested.v1\")'"
    )]
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Records from this time on: how far back from now (24h, 7d, 90m) or an RFC 3339 time
    /// (2026-03-01T00:00:00Z, 2026-03-01T09:00:00+01:00).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: When,
    /// Records before this time (same forms); up to now when left out.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<When>,
    /// Write to FILE (created or replaced) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A point in time given on the command line: a duration back from now, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long before now.
    Ago(std::time::Duration),
    /// This time, milliseconds since the Unix epoch.
    At(u64),
}

impl When {
    /// Milliseconds since the epoch, with `now_ms` as now.
    pub fn to_ms(self, now_ms: u64) -> u64 {
        match self {
            Self::Ago(d) => now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Self::At(ms) => ms,
        }
    }
}

#[derive(Debug, Args)]
pub struct GrantRequestArgs {
    /// The resource.
    pub resource: String,
    /// The role to ask for.
    #[arg(long, short)]
    pub role: String,
    /// How long the grant should last once active (e.g. 30m, 8h, 1h30m); the role's default
    /// when left out. Capped at the role's maximum, and the answer says so.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Why you need access, for the approvers and the audit trail.
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: String,
    /// Wait until the request is approved, denied or lapses.
    #[arg(long)]
    pub wait: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// Keep running: wait for new requests and held statements and prompt for each (approve,
    /// deny or skip) on a terminal; elsewhere, or with --output json, print each new one without
    /// prompting. Ctrl-C stops.
    #[arg(long)]
    pub watch: bool,
    /// Output format (JSON Lines with --watch).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// The grant id (`g_…`) or held statement id (`s_…`), from `sluice approvals`.
    pub id: String,
    /// Why, for the requester and the audit trail.
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The grant id (`g_…`) or held statement id (`s_…`), from `sluice approvals`.
    pub id: String,
    /// Why, shown to the requester.
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// A TTL such as `30m`, `8h`, `1h30m` or `90s`, in whole seconds.
fn parse_ttl(s: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 30m, 8h or 1h30m"))?;
    match d.as_secs() {
        0 => Err("the TTL must be at least 1s".to_string()),
        secs => Ok(secs),
    }
}

/// `24h` (back from now) or an RFC 3339 time.
fn parse_when(s: &str) -> Result<When, String> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(When::Ago(d));
    }
    let at = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
        format!(
            "'{s}' is neither a duration (24h, 7d, 90m) nor an RFC 3339 time \
             (2026-03-01T00:00:00Z)"
        )
    })?;
    u64::try_from(at.timestamp_millis())
        .map(When::At)
        .map_err(|_| format!("'{s}' is before 1970"))
}

/// A reason that says something.
fn parse_reason(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("the reason must not be empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn grant_request_needs_a_role_and_a_reason() {
        let cli = parse(&[
            "grant",
            "request",
            "pg-main",
            "--role",
            "write",
            "--ttl",
            "1h30m",
            "--reason",
            "fix invoice",
            "--wait",
        ])
        .expect("parses");
        let Command::Grant(GrantCommand::Request(args)) = cli.command else {
            panic!("not grant request");
        };
        assert_eq!(args.resource, "pg-main");
        assert_eq!(args.role, "write");
        assert_eq!(args.ttl, Some(5400));
        assert_eq!(args.reason, "fix invoice");
        assert!(args.wait);

        assert!(parse(&["grant", "request", "pg-main", "--reason", "x"]).is_err());
        assert!(parse(&["grant", "request", "pg-main", "--role", "write"]).is_err());
        assert!(
            parse(&[
                "grant", "request", "pg-main", "--role", "w", "--reason", " "
            ])
            .is_err()
        );
    }

    #[test]
    fn audit_commands_and_times() {
        let cli = parse(&["audit", "verify", "--output", "json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::Verify {
                output: Output::Json,
                key_id: None
            })
        ));
        let cli = parse(&[
            "audit",
            "export",
            "--since",
            "24h",
            "--until",
            "2026-03-01T01:00:00+01:00",
            "--output",
            "x.jsonl",
        ])
        .expect("parses");
        let Command::Audit(AuditCommand::Export(args)) = cli.command else {
            panic!("not audit export");
        };
        assert_eq!(
            args.since,
            When::Ago(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(args.until, Some(When::At(1_772_323_200_000)));
        assert_eq!(args.output, Some(PathBuf::from("x.jsonl")));
        assert_eq!(
            When::Ago(std::time::Duration::from_secs(2)).to_ms(5_000),
            3_000
        );
        assert!(parse(&["audit", "export"]).is_err(), "--since is required");
        assert!(parse(&["audit", "export", "--since", "yesterday"]).is_err());
        assert!(parse(&["audit", "export", "--since", "1969-12-31T00:00:00Z"]).is_err());
    }

    #[test]
    fn ttls_are_durations() {
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("8h"), Ok(28_800));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert!(parse_ttl("30").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn deny_requires_a_reason_and_approve_does_not() {
        assert!(parse(&["deny", "g_1"]).is_err());
        let cli = parse(&["deny", "g_1", "--reason", "not now"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Deny(DenyArgs { ref reason, .. }) if reason == "not now")
        );
        let cli = parse(&["approve", "g_1", "--output", "json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Approve(DecisionArgs {
                reason: None,
                output: Output::Json,
                ..
            })
        ));
    }

    #[test]
    fn run_takes_the_command_after_a_double_dash() {
        let cli = parse(&[
            "run", "pg-main", "--role", "read", "--", "psql", "-c", "select 1",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.command, ["psql", "-c", "select 1"]);
        assert_eq!(args.reason, None);
        assert!(parse(&["run", "pg-main", "--role", "read"]).is_err());
        assert!(parse(&["run", "pg-main", "--", "psql"]).is_err());
    }

    #[test]
    fn connect_takes_an_optional_role_ttl_and_reason() {
        let cli = parse(&["connect", "pg-main"]).expect("parses");
        let Command::Connect(args) = cli.command else {
            panic!("not connect");
        };
        assert_eq!(
            (args.grant.role, args.grant.ttl, args.grant.reason),
            (None, None, None)
        );
        let cli = parse(&[
            "connect", "pg-main", "-r", "write", "--ttl", "2h", "--reason", "deploy", "--exec",
            "psql", "-c", "select 1",
        ])
        .expect("parses");
        let Command::Connect(args) = cli.command else {
            panic!("not connect");
        };
        assert_eq!(args.grant.role.as_deref(), Some("write"));
        assert_eq!(args.grant.ttl, Some(7200));
        assert_eq!(args.exec.expect("exec"), ["psql", "-c", "select 1"]);
    }

    #[test]
    fn resources_takes_only_an_output_format() {
        let cli = parse(&["resources", "--output", "json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Resources {
                output: Output::Json
            }
        ));
        assert!(parse(&["resources", "pg-main"]).is_err());
    }

    #[test]
    fn approvals_watch_and_grant_list_flags() {
        let cli = parse(&["approvals", "--watch", "--output", "json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Approvals(ApprovalsArgs {
                watch: true,
                output: Output::Json
            })
        ));
        let cli = parse(&["grant", "list", "--all"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Grant(GrantCommand::List {
                all: true,
                output: Output::Text
            })
        ));
        assert!(parse(&["grant", "revoke"]).is_err());
    }
}
