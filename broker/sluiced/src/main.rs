//! `sluiced`, the Sluice broker. `main` parses arguments, sets up logging and runs one command.

mod agents_api;
mod api;
mod audit;
mod audit_api;
mod enforce;
mod engines;
mod explain;
mod fanout;
mod gate;
mod grants;
mod grants_api;
mod holds;
mod init;
mod live;
mod login;
mod metrics;
mod plan;
mod reload;
mod server;
mod sessions;
mod sessions_api;
mod store;
mod tls;
mod tokens;
mod tunnel;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The Sluice broker: holds target credentials, authorizes every tunnel, terminates protocols.
#[derive(Debug, Parser)]
#[command(name = "sluiced", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter config, a development CA, a server certificate and a token signing key.
    Init {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Address the broker will listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Extra DNS names or IPs for the server certificate.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Overwrite an existing config, CA and keys.
        #[arg(long)]
        force: bool,
    },
    /// Check a config file and everything it refers to; report every problem at once.
    CheckConfig {
        /// The config file.
        #[arg(long, short, env = "SLUICED_CONFIG")]
        config: PathBuf,
    },
    /// Run the broker.
    Serve {
        /// The config file.
        #[arg(long, short, env = "SLUICED_CONFIG")]
        config: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Check a config file, then have the broker running on it apply it (SIGHUP does the same).
    #[command(
        after_help = "The broker re-reads its own config file and applies resources and policy at once; open\nsessions the new policy would not allow end with a reason the client can read. A file that\ndoes not check is refused and the broker keeps serving the old one.\n\nExample:\n  sluiced reload --config /etc/sluice/sluice.yaml"
    )]
    Reload {
        /// The config file the broker was started with.
        #[arg(long, short, env = "SLUICED_CONFIG")]
        config: PathBuf,
    },
    /// Bring the store's schema up to date (serve does it too; run this first to upgrade a
    /// shared PostgreSQL store before the replicas).
    #[command(
        after_help = "Several brokers may run this at once: migrations take a lock in the database. A store\nmigrated by a newer sluiced is refused, by this command and by serve, naming the version.\n\nExample:\n  sluiced migrate --config /etc/sluice/sluice.yaml"
    )]
    Migrate {
        /// The config file (its `store`).
        #[arg(long, short, env = "SLUICED_CONFIG")]
        config: PathBuf,
    },
    /// The broker's store: moving it to another database.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Session tokens (operator bootstrap).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Try the policy: what a request would get, without a running broker.
    #[command(subcommand)]
    Policy(explain::PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy grants, logout revocations, the session index and the audit trail (chain and
    /// checkpoints unchanged) into an empty store.
    #[command(
        after_help = "STORE is sqlite:PATH, postgres://USER@HOST:PORT/DB (password from SLUICE_STORE_PASSWORD, never\nin the URL) or config:FILE (the store of that sluiced configuration). Stop the broker first: a copy\nis a snapshot. Held statements and heartbeats belong to running brokers and are not copied.\n\nExample:\n  SLUICE_STORE_PASSWORD=... sluiced store copy --from sqlite:/var/lib/sluice/sluice.db \\\n      --to postgres://sluice@db.internal:5432/sluice?sslmode=verify-full&sslrootcert=/etc/sluice/db-ca.pem"
    )]
    Copy {
        /// Where the state is now.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// Where it goes (must be empty; its schema is created).
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a signed, short-lived session token for a subject.
    Issue {
        /// The config file (for the signing key and TTL limits).
        #[arg(long, short, env = "SLUICED_CONFIG")]
        config: PathBuf,
        /// Who the token is for.
        #[arg(long)]
        subject: String,
        /// Comma-separated groups.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime, e.g. 30m or 1h (capped at tokens.max_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluiced: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init {
            dir,
            listen,
            hostnames,
            force,
        } => {
            let out = init::run(&dir, listen, &hostnames, force)?;
            println!("wrote {}", out.config.display());
            println!(
                "development CA: {} (give it to the CLI: sluice login --ca {})",
                out.ca_cert.display(),
                out.ca_cert.display()
            );
            println!(
                "next: add resources and policy, then `sluiced check-config --config {}`",
                out.config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let loaded = match sluice_config::load(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    for e in errors.iter() {
                        eprintln!("{e}");
                    }
                    eprintln!("{} problem(s) found", errors.len());
                    return Ok(ExitCode::FAILURE);
                }
            };
            let mut problems = engines::check(&loaded);
            problems.extend(loaded.check_environment());
            if problems.is_empty() {
                println!(
                    "{}: ok ({} resources, {} policy rules)",
                    config.display(),
                    loaded.resources.len(),
                    loaded.policy.rules.len()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("{} problem(s) found", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Reload { config } => reload::command(&config),
        Command::Store(StoreCommand::Copy { from, to }) => {
            let copied = runtime()?.block_on(async {
                let source = store::open_spec(&from).await?;
                let target = store::open_spec(&to).await?;
                let copied = source.copy_to(&target).await.context("the copy failed")?;
                source.close().await;
                target.close().await;
                anyhow::Ok(copied)
            })?;
            println!(
                "copied {} grants, {} logout revocations, {} sessions, {} audit records and {} checkpoints",
                copied.grants,
                copied.revocations,
                copied.sessions,
                copied.audit_records,
                copied.checkpoints
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            let loaded = load_config(&config)?;
            let (kind, version) = runtime()?.block_on(async {
                let store = store::open(&loaded.store).await?;
                let version = store.schema_version().await?;
                store.close().await;
                anyhow::Ok((store.dialect(), version))
            })?;
            println!(
                "{}: the {kind} store is at schema version {version}",
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config, log_json } => {
            let audit = init_logging(log_json);
            let loaded = load_config(&config)?;
            let runtime = runtime()?;
            runtime.block_on(server::run(loaded, audit))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(explain::PolicyCommand::Explain(args)) => explain::run(&args),
        Command::Token(TokenCommand::Issue {
            config,
            subject,
            groups,
            ttl,
        }) => {
            let loaded = load_config(&config)?;
            let service = tokens::TokenService::load(&loaded.tokens.signing_key.value)?;
            let wanted = ttl.unwrap_or(loaded.tokens.default_ttl);
            let ttl = wanted.min(loaded.tokens.max_ttl);
            if ttl < wanted {
                eprintln!(
                    "note: TTL capped at tokens.max_ttl ({})",
                    humantime::format_duration(ttl)
                );
            }
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            let (token, _) = service
                .issue(&subject, &groups, "operator", ttl)
                .context("cannot sign the token")?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The broker's runtime: `SLUICED_WORKER_THREADS` workers (default: one per core); `1` runs a
/// single-threaded runtime.
fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = match std::env::var("SLUICED_WORKER_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("SLUICED_WORKER_THREADS={v} is not a positive number"))?,
        Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn load_config(path: &std::path::Path) -> Result<sluice_config::Config> {
    sluice_config::load(path).map_err(|errors| {
        let n = errors.0.len();
        anyhow::anyhow!("{errors}\n{n} problem(s) found in {}", path.display())
    })
}

/// Logs to stderr, filtered by `SLUICED_LOG`, and captures audit events whatever that filter
/// says: each layer has its own filter. Returns the audit queue for the writer to drain.
fn init_logging(json: bool) -> audit::AuditQueue {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = EnvFilter::try_from_env("SLUICED_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // What `tracing_subscriber::fmt()` sets up, as a layer.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(true);
    let log = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (capture, queue) = audit::capture();
    tracing_subscriber::registry()
        .with(log)
        .with(capture.with_filter(audit::interest()))
        .init();
    queue
}
