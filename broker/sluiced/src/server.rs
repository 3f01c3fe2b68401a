//! `sluiced serve`: one TLS listener serving the API and tunnels, with bounded connections and a
//! graceful shutdown that ends every tunnel's lease.

use crate::api::{self, AppState};
use crate::gate::Gate;
use crate::live::LiveConfig;
use crate::sessions::Sessions;
use crate::tokens::{Revocations, TokenService, now_secs};
use anyhow::{Context, Result, bail};
use hyper_util::rt::{TokioIo, TokioTimer};
use sluice_config::Config;
use sluice_engine::LeaseHandle;
use sluice_recording::{LocalDir, Options as RecorderOptions, Recorder, Sink};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

/// Most connections (API calls plus tunnels) served at once; beyond it, accepts wait.
const MAX_CONNECTIONS: usize = 8192;
/// A client that has not finished its TLS handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent its request headers by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often revocations of tokens that have since expired are dropped (memory and store).
const REVOCATION_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs the broker until SIGINT or SIGTERM. `audit` holds the audit events captured since
/// logging started; the audit writer takes them over once the store is open.
/// The recordings sink on object storage, with its credentials read now.
fn object_sink(s3: &sluice_config::S3Recording) -> Result<sluice_recording::ObjectSink> {
    let read = |key: &sluice_config::Located<sluice_config::CredentialRef>, name: &str| {
        key.value
            .resolve()
            .map(|secret| secret.expose().clone())
            .with_context(|| format!("{}: recording.s3.{name}", key.location))
    };
    Ok(sluice_recording::ObjectSink::s3(
        sluice_recording::S3Options {
            bucket: s3.bucket.clone(),
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            prefix: s3.prefix.clone(),
            access_key_id: read(&s3.access_key_id, "access_key_id")?,
            secret_access_key: read(&s3.secret_access_key, "secret_access_key")?,
            encryption: s3.encryption.as_ref().map(|e| match e {
                sluice_config::S3Encryption::Aes256 => ("AES256".to_owned(), None),
                sluice_config::S3Encryption::Kms(key) => ("aws:kms".to_owned(), key.clone()),
            }),
        },
    )?)
}

pub async fn run(config: Config, audit: crate::audit::AuditQueue) -> Result<()> {
    let mut problems = crate::engines::check(&config);
    problems.extend(config.check_environment());
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!(
            "the configuration cannot be served as written:\n{}",
            list.join("\n")
        );
    }
    let tls = crate::tls::server_config(&config.tls.cert.value, &config.tls.key.value)?;
    let tokens = Arc::new(TokenService::load(&config.tokens.signing_key.value)?);
    let exchanger = Arc::new(crate::login::Exchanger::new(&config, tokens.clone())?);
    let targets = Arc::new(crate::engines::Targets::load(&config)?);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let node = crate::store::node_id(config.listen);
    let store = crate::store::open(&config.store).await?.on_node(&node);
    if let Err(e) = store.heartbeat(now_secs()).await {
        warn!(error = %e, "cannot record this broker's heartbeat");
    }
    // Checkpoints are signed with the session-token key (docs/audit.md).
    let signer = Arc::new(crate::audit::Signer::load(
        &config.tokens.signing_key.value,
    )?);
    let metrics = match &config.metrics {
        Some(m) => {
            let token = m
                .token
                .value
                .resolve()
                .with_context(|| format!("{}: metrics.token", m.token.location))?;
            Some(crate::metrics::Metrics::install(
                token,
                audit.depth(),
                &node,
            )?)
        }
        None => None,
    };
    let audit_writer = audit
        .start(store.clone(), signer.clone())
        .await
        .context("cannot read the end of the audit trail from the store")?;
    let revocations = Arc::new(
        Revocations::load(store.clone(), now_secs())
            .await
            .context("cannot load the logout revocations from the store")?,
    );
    let sink: Arc<dyn Sink> = match &config.recording.s3 {
        Some(s3) => Arc::new(object_sink(s3)?),
        None => Arc::new(LocalDir::new(config.recording.dir.value.clone())),
    };
    let (recorder, recorder_task) = Recorder::start(Arc::clone(&sink), RecorderOptions::default());
    match store.interrupt_open_sessions().await {
        Ok(0) => {}
        Ok(n) => warn!(
            sessions = n,
            "sessions were still open when the broker last stopped"
        ),
        Err(e) => warn!(error = %e, "cannot mark the sessions the broker left open"),
    }
    let sessions = Sessions::new(
        recorder.clone(),
        sink,
        store.clone(),
        config.recording.retention,
    );
    tokio::spawn(sessions.clone().sweep_forever());
    let config = Arc::new(config);
    let (config_tx, live) = LiveConfig::new(Arc::clone(&config))?;
    let audit = Arc::new(crate::audit_api::AuditAccess::new(
        store.clone(),
        live.clone(),
        signer,
    ));
    let grants = crate::grants::Grants::start(store.clone(), live.clone())
        .await
        .context("cannot load the live grants from the store")?;
    let holds = crate::holds::Holds::sharing(grants.changes(), store.clone());
    let enforcer = Arc::new(crate::enforce::Enforcer::new(holds.clone()));
    let (targets_tx, targets) = watch::channel(targets);
    let reloader = crate::reload::Reloader::new(config.source.clone(), config_tx, targets_tx);
    tokio::spawn(reloader.on_hangup());
    let pid_file = crate::reload::state_dir(&config).join(crate::reload::PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        warn!(file = %pid_file.display(), error = %e, "cannot write the pid file; `sluiced reload` will not find this broker (send SIGHUP instead)");
    }
    let postgres = crate::engines::PostgresEngine::new(enforcer, targets);
    let cancels = postgres.cancels();
    let engines = Arc::new(crate::engines::Registry::new(
        postgres,
        Arc::new(crate::engines::SshEngine::new(holds.clone())),
        crate::engines::KubeEngine::new(holds.clone()),
        crate::engines::HttpEngine::new(holds.clone(), tokens.clone()),
    ));
    let fanout = crate::fanout::start(crate::fanout::Here {
        store,
        grants: grants.clone(),
        revocations: revocations.clone(),
        holds: holds.clone(),
        cancels,
    });
    let state = AppState {
        gate: Gate::new(live, tokens, revocations.clone(), grants.clone()),
        kube_links: Arc::default(),
        holds: holds.clone(),
        engines,
        audit,
        grants,
        shutdown: Arc::new(LeaseHandle::new()),
        tunnels: Arc::new(crate::tunnel::TunnelSlots::new(config.limits.max_tunnels)),
        exchanger,
        revocations,
        sessions,
        metrics,
        fanout,
    };
    tokio::spawn(prune_revocations(state.revocations.clone()));
    info!(
        listen = %listener.local_addr()?,
        resources = config.resources.len(),
        config = %config.source.display(),
        node = %node,
        "sluiced is serving"
    );
    let grace = config.limits.shutdown_grace;
    let served = serve(
        listener,
        TlsAcceptor::from(tls),
        state,
        shutdown_signal(),
        grace,
    )
    .await;
    // Everything recorded so far reaches the sink before the process exits.
    recorder.shutdown().await;
    if let Err(e) = recorder_task.await {
        warn!(error = %e, "the recording writer stopped abnormally");
    }
    let _ = std::fs::remove_file(&pid_file);
    // Last, so the audit events of the shutdown itself are written and signed.
    audit_writer.shutdown().await;
    served
}

/// Accepts connections until `stop` resolves, then ends every lease and waits up to `grace`
/// for API calls to finish and every session to write its end.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: AppState,
    stop: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let router = api::router(state.clone());
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.context("connection limiter closed")?,
            () = &mut stop => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(e) = sluice_engine::tcp::tune(&tcp) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY or keepalive");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| router.clone().oneshot(req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow with the broker's uptime.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    info!(
        sessions = state.tunnels.open(),
        "shutting down: no new connections; ending every session"
    );
    state.shutdown.end("the broker is shutting down");
    let drained = tokio::time::timeout(grace, async {
        while tasks.join_next().await.is_some() {}
        state.tunnels.drained().await;
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = tasks.len(),
            sessions = state.tunnels.open(),
            grace = %humantime::format_duration(grace),
            "still open after the shutdown grace; stopping anyway"
        );
        tasks.abort_all();
    }
    Ok(())
}

/// Drops expired revocations every [`REVOCATION_PRUNE_INTERVAL`] for the broker's life, so
/// neither the map nor the table grows with uptime. A failure only delays the cleanup: the
/// entries are harmless, and the next round (or the next start) retries.
async fn prune_revocations(revocations: Arc<Revocations>) {
    let mut every = tokio::time::interval(REVOCATION_PRUNE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and `load` has just pruned.
    every.tick().await;
    loop {
        every.tick().await;
        match revocations.prune(now_secs()).await {
            Ok(deleted) => debug!(deleted, "pruned expired logout revocations"),
            Err(e) => warn!(error = %e, "cannot prune expired logout revocations"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
