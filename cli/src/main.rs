//! `sluice`, the Sluice CLI. `main` parses arguments, runs one command and maps the outcome to
//! a documented exit code.

mod args;
mod auth;
mod client;
mod commands;
mod exit;
mod format;
mod keyring;
mod pgerror;
mod present;
mod profile;
mod progress;
mod retry;
mod tunnel;
mod workload;

use clap::Parser;
use exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // One thread: the CLI only relays bytes, and on a busy machine handing each wake-up to
    // another worker thread costs more (futex, context switch) than the relaying itself
    // (docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    let outcome = runtime.block_on(commands::run(cli));
    // Tunnel tasks may still hold sockets; do not wait for them.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", e.line());
            ExitCode::from(e.exit as u8)
        }
    }
}
