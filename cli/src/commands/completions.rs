//! `sluice completions SHELL`: completions generated from the one clap definition.

use crate::args::Cli;
use crate::exit::CliResult;
use clap::CommandFactory;

pub fn run(shell: clap_complete::Shell) -> CliResult<u8> {
    clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
    Ok(crate::exit::Exit::Ok as u8)
}
