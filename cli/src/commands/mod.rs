//! One module per command; [`run`] dispatches.

mod approvals;
mod audit;
mod completions;
mod connect;
mod decide;
mod grant;
mod kube;
mod login;
mod mcp;
mod resources;
mod run;
mod sessions;
mod ssh;
mod whoami;

use crate::args::{Cli, Command, GlobalArgs};
use crate::client::Broker;
use crate::exit::{CliError, CliResult, Exit};
use crate::profile;

/// Runs the parsed command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> CliResult<u8> {
    match cli.command {
        Command::Login(args) => login::login(&cli.global, &args).await,
        Command::Logout => login::logout(&cli.global).await,
        Command::Whoami { output } => whoami::run(&cli.global, output).await,
        Command::Resources { output } => resources::run(&cli.global, output).await,
        Command::Connect(args) => connect::run(&cli.global, args).await,
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Ssh(args) => ssh::run(&cli.global, args).await,
        Command::Kube(args) => connect::kube(&cli.global, args).await,
        Command::Mcp(args) => mcp::run(&cli.global, args).await,
        Command::Proxy(crate::args::ProxyCommand::Ssh(args)) => ssh::proxy(&cli.global, args).await,
        Command::Config(crate::args::ConfigCommand::Ssh(args)) => ssh::config(&cli.global, args),
        Command::Config(crate::args::ConfigCommand::Kube(args)) => {
            kube::config(&cli.global, args).await
        }
        Command::KubeCredential(args) => kube::credential(&cli.global, args).await,
        Command::Grant(command) => grant::run(&cli.global, command).await,
        Command::Approvals(args) => approvals::run(&cli.global, args).await,
        Command::Approve(args) => {
            decide::run(&cli.global, &args.id, true, args.reason, args.output).await
        }
        Command::Deny(args) => {
            decide::run(&cli.global, &args.id, false, Some(args.reason), args.output).await
        }
        Command::Sessions(command) => sessions::run(&cli.global, command).await,
        Command::Audit(command) => audit::run(&cli.global, command).await,
        Command::Completions { shell } => completions::run(shell),
    }
}

/// The broker to talk to: `--broker`/`SLUICE_BROKER`, else the profile.
pub fn broker(global: &GlobalArgs) -> CliResult<Broker> {
    let stored = profile::load()?;
    let url = global.broker.clone().or(stored.broker).ok_or_else(|| {
        CliError::new(Exit::Usage, "no broker is configured")
            .hint("run `sluice login --broker https://HOST:PORT` first")
    })?;
    let ca = global.ca.clone().or(stored.ca);
    Broker::new(&url, ca.as_deref())
}

/// Groups for a one-line message: `dba, dev`, or `none`.
pub fn groups(groups: &[String]) -> String {
    if groups.is_empty() {
        "none".to_string()
    } else {
        groups.join(", ")
    }
}

/// Prints an API value as one line of JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

/// Percent-encodes everything outside the URI "unreserved" set.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
