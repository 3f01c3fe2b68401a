//! Opens the store the config names: the SQLite file, or the shared PostgreSQL with its
//! password read and TLS pinned to the configured CA.

use anyhow::{Context, Result};
use sluice_config::{PostgresStore, StoreConfig};
use sluice_store::Store;

/// This broker's name among the brokers sharing a store: `HOST:PORT` of its host name and
/// listen port, the same across restarts (so a broker that starts again finds its own open
/// sessions) and distinct per replica.
pub fn node_id(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sluiced".to_owned());
    format!("{host}:{}", listen.port())
}

/// Opens (and migrates) the configured store; errors name the config key.
pub async fn open(config: &StoreConfig) -> Result<Store> {
    match config {
        StoreConfig::Sqlite(sqlite) => Store::open(&sqlite.value)
            .await
            .with_context(|| format!("{}: store.sqlite", sqlite.location)),
        StoreConfig::Postgres(postgres) => {
            let url = postgres_url(postgres)?;
            Store::open_postgres(&url, &postgres.url.value)
                .await
                .with_context(|| format!("{}: store.postgres.url", postgres.url.location))
        }
    }
}

/// The URL sqlx connects with: the configured one plus the password and, with a CA, TLS that
/// verifies the server's certificate and host name (`verify-full`). Never logged or shown.
fn postgres_url(postgres: &PostgresStore) -> Result<String> {
    let mut url = url::Url::parse(&postgres.url.value)
        .with_context(|| format!("{}: store.postgres.url", postgres.url.location))?;
    if let Some(password) = &postgres.password {
        let secret = password
            .value
            .resolve()
            .with_context(|| format!("{}: store.postgres.password", password.location))?;
        url.set_password(Some(secret.expose())).map_err(|()| {
            anyhow::anyhow!(
                "{}: store.postgres.url cannot hold a password",
                postgres.url.location
            )
        })?;
    }
    match &postgres.ca {
        Some(ca) => {
            let ca = ca.value.to_str().with_context(|| {
                format!("{}: store.postgres.ca is not a UTF-8 path", ca.location)
            })?;
            url.query_pairs_mut()
                .append_pair("sslmode", "verify-full")
                .append_pair("sslrootcert", ca);
        }
        // Only a loopback host gets here (the config refuses others without a CA).
        None => {
            url.query_pairs_mut().append_pair("sslmode", "disable");
        }
    }
    Ok(url.into())
}

/// Opens the store a `sluiced store copy` argument names: `sqlite:PATH`, `config:FILE` (the
/// store of that configuration, password and CA included) or `postgres://URL` (its password, if
/// the server asks for one, from the environment variable `SLUICE_STORE_PASSWORD`: never on a
/// command line, where every user of the machine can read it).
pub async fn open_spec(spec: &str) -> Result<Store> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return Store::open(std::path::Path::new(path))
            .await
            .with_context(|| format!("cannot open {spec}"));
    }
    if let Some(file) = spec.strip_prefix("config:") {
        let config = sluice_config::load(std::path::Path::new(file))
            .map_err(|errors| anyhow::anyhow!("{file} does not check:\n{errors}"))?;
        return open(&config.store).await;
    }
    if spec.starts_with("postgres:") || spec.starts_with("postgresql:") {
        let mut parsed = url::Url::parse(spec).context("the postgres: store is not a URL")?;
        let shown = {
            let mut shown = parsed.clone();
            let _ = shown.set_password(None);
            shown.to_string()
        };
        if parsed.password().is_some() {
            anyhow::bail!(
                "{shown}: put the password in the SLUICE_STORE_PASSWORD environment variable, \
                 not on the command line"
            );
        }
        if let Ok(password) = std::env::var("SLUICE_STORE_PASSWORD") {
            parsed
                .set_password(Some(&password))
                .map_err(|()| anyhow::anyhow!("{shown} cannot hold a password"))?;
        }
        return Store::open_postgres(parsed.as_str(), &shown)
            .await
            .with_context(|| format!("cannot open {shown}"));
    }
    anyhow::bail!(
        "{spec:?} names no store: write sqlite:PATH, postgres://USER@HOST:PORT/DATABASE or \
         config:FILE (a sluiced configuration whose store to use)"
    )
}
