//! One module per command; [`run`] dispatches.

mod completions;
mod connect;
mod login;
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
        Command::Connect(args) => connect::run(&cli.global, args).await,
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
