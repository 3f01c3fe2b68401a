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
    /// Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the
    /// `--exec` command exits).
    #[command(
        after_help = "Examples:\n  sluice connect pg-main                      # prints a psql command; Ctrl-C closes\n  sluice connect pg-main --exec psql -c 'select 1'\n  sluice connect cache --port 6380"
    )]
    Connect(ConnectArgs),
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

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The resource to connect to.
    pub resource: String,
    /// Local port to listen on (127.0.0.1 only); a free one by default.
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Output format of the connection details (not used with --exec).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Run this command with the connection in its environment (PGHOST, PGPORT, PGUSER,
    /// PGDATABASE, PGPASSWORD for postgres; SLUICE_HOST, SLUICE_PORT for tcp), close the tunnel
    /// when it exits and exit with its code.
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
