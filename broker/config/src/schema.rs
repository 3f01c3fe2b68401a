//! The configuration schema: which keys exist, what they must hold, and how they depend on each
//! other.
//!
//! This is where the shape of `sluice.yaml` is defined; the `identity` and `policy` sections,
//! which are large, have their readers in `identity.rs` and `policy_schema.rs`. It walks the
//! marked tree with the readers from `extract.rs`, records every problem, and builds the
//! [`Config`] only when there were none. Cross-checks that need more than one key
//! (`default_ttl <= max_ttl`, rules naming existing resources and roles, kind-specific keys) run
//! after the keys they compare have been read.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_shared::api::ResourceKind;

use crate::credential::CredentialRef;
use crate::extract::{Cx, Fields, Item, suggest};
use crate::location::Located;
use crate::model::{
    Config, LimitsConfig, MetricsConfig, PostgresSpec, PostgresStore, RecordingConfig, Resource,
    ResourceSpec, S3Encryption, S3Recording, StoreConfig, SuperuserLogin, TargetTls, TcpSpec,
    TlsConfig, TlsMode, TokensConfig,
};
use crate::policy::Policy;
use crate::tree::{Node, NodeKind};

/// Top-level keys.
const TOP_KEYS: &[&str] = &[
    "listen",
    "tls",
    "tokens",
    "store",
    "recording",
    "identity",
    "resources",
    "policy",
    "limits",
    "metrics",
];
const METRICS_KEYS: &[&str] = &["token"];
const LIMITS_KEYS: &[&str] = &["max_tunnels", "shutdown_grace"];
const TLS_KEYS: &[&str] = &["cert", "key", "ca"];
const TOKENS_KEYS: &[&str] = &["signing_key", "default_ttl", "max_ttl"];
const STORE_KEYS: &[&str] = &["sqlite", "postgres"];
const POSTGRES_STORE_KEYS: &[&str] = &["url", "password", "ca"];
const RECORDING_KEYS: &[&str] = &["dir", "retention", "s3"];
const S3_KEYS: &[&str] = &[
    "bucket",
    "endpoint",
    "region",
    "prefix",
    "access_key_id",
    "secret_access_key",
    "encryption",
    "kms_key_id",
];
/// The longest `limits.shutdown_grace` accepted.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(600);
/// How long recordings are kept when `recording.retention` is not written.
const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);
const RESOURCE_KEYS: &[&str] = &[
    "kind",
    "address",
    "database",
    "user",
    "password",
    "tls",
    "superuser_login",
    "key",
    "ca",
    "server_name",
    "token",
    "impersonate",
    "plaintext",
    "client_cert",
    "client_key",
    "inject",
    "identity",
    "certificate_ttl",
    "host_key",
    "labels",
    "description",
];
/// Resource keys that only make sense for a PostgreSQL target.
const POSTGRES_ONLY_KEYS: &[&str] = &["database", "user", "password", "tls", "superuser_login"];
/// Resource keys of each kind beyond `kind`, `address`, `labels` and `description`.
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("postgres", POSTGRES_ONLY_KEYS),
    (
        "ssh",
        &[
            "user",
            "key",
            "password",
            "ca",
            "certificate_ttl",
            "host_key",
        ],
    ),
    (
        "kubernetes",
        &[
            "ca",
            "server_name",
            "token",
            "client_cert",
            "client_key",
            "impersonate",
        ],
    ),
    (
        "http",
        &[
            "ca",
            "server_name",
            "plaintext",
            "client_cert",
            "client_key",
            "inject",
            "identity",
        ],
    ),
    ("tcp", &[]),
];
const SUPERUSER_LOGINS: &[&str] = &["allow", "refuse-guarded"];
const KINDS: &[&str] = &["http", "kubernetes", "postgres", "ssh", "tcp"];
const TARGET_TLS_KEYS: &[&str] = &["mode", "ca", "server_name"];
const TLS_MODES: &[&str] = &["disable", "require", "verify-full"];

/// Default token lifetime: long enough for a working session, short enough to limit a leak.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// Default ceiling on token lifetime: one working day.
pub(crate) const DEFAULT_MAX_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Reads an optional key: `Some(None)` when absent or empty, `None` when present but invalid.
pub(crate) fn optional<'n, T>(
    item: Option<Item<'n>>,
    read: impl FnOnce(&Item<'n>) -> Option<T>,
) -> Option<Option<T>> {
    match item {
        None => Some(None),
        Some(item) => read(&item).map(Some),
    }
}

/// Resolves a path from the file against the configuration file's directory, so a config works
/// the same whatever directory the broker is started from.
pub(crate) fn resolve_path(base: &Path, text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Reads the whole configuration from the document root; `None` when anything was reported.
pub(crate) fn config(cx: &mut Cx<'_>, source: &Path, root: Option<&Node>) -> Option<Config> {
    let Some(root) = root.filter(|node| node.kind != NodeKind::Null) else {
        cx.error(
            crate::tree::Pos { line: 1, column: 1 },
            "",
            format!(
                "the file is empty; expected the keys {}",
                TOP_KEYS.join(", ")
            ),
        );
        return None;
    };
    let root = Item::root(root);
    if !matches!(root.node.kind, NodeKind::Map(_)) {
        let found = root.node.kind.describe();
        cx.invalid(
            &root,
            format!(
                "the top level must be a mapping of the keys {}, found {found}",
                TOP_KEYS.join(", ")
            ),
        );
        return None;
    }
    let top = cx.fields(&root, TOP_KEYS)?;

    let listen = cx
        .required(&top, "listen")
        .and_then(|item| listen(cx, &item));
    let tls = cx.required(&top, "tls").and_then(|item| tls(cx, &item));
    let tokens = cx
        .required(&top, "tokens")
        .and_then(|item| tokens(cx, &item));
    let store_item = cx.required(&top, "store");
    let store = store_item.as_ref().and_then(|item| store(cx, item));
    let recording = match (top.entry("recording"), &store, &store_item) {
        (Some(item), _, _) => recording(cx, &item, store.as_ref()),
        (None, Some(store), Some(item)) => default_recording(cx, item, store, false),
        _ => None,
    };
    let (resources, names) = match top.entry("resources") {
        Some(item) => resources(cx, &item),
        None => (Some(Vec::new()), Vec::new()),
    };
    let policy = match top.entry("policy") {
        Some(item) => crate::policy_schema::policy(cx, &item, &names),
        None => Some(Policy::default()),
    };
    let limits = match top.entry("limits") {
        Some(item) => limits(cx, &item),
        None => Some(LimitsConfig::default()),
    };
    let metrics = match top.entry("metrics") {
        Some(item) => metrics(cx, &item).map(Some),
        None => Some(None),
    };
    let identity = match top.entry("identity") {
        Some(item) => crate::identity::identity(cx, &item),
        None => Some(crate::model::IdentityConfig::default()),
    };

    if cx.has_errors() {
        return None;
    }
    Some(Config {
        source: source.to_path_buf(),
        listen: listen?,
        tls: tls?,
        tokens: tokens?,
        store: store?,
        recording: recording?,
        resources: resources?,
        policy: policy?,
        identity: identity?,
        limits: limits?,
        metrics: metrics?,
    })
}

/// `limits`: `max_tunnels` (1 to 1,000,000) and `shutdown_grace` (at most 10m).
fn limits(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<LimitsConfig> {
    let fields = cx.fields(item, LIMITS_KEYS)?;
    let defaults = LimitsConfig::default();
    let max_tunnels = optional(fields.optional("max_tunnels"), |item| {
        let text = cx.text(item)?;
        match text.parse::<u32>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Some(n),
            _ => {
                cx.invalid(
                    item,
                    format!(
                        "expected the most tunnels open at once, a whole number from 1 to \
                         1000000, found \"{text}\""
                    ),
                );
                None
            }
        }
    });
    let grace_item = fields.optional("shutdown_grace");
    let shutdown_grace = optional(grace_item.clone(), |item| duration(cx, item));
    let shutdown_grace = match (shutdown_grace?, grace_item) {
        (Some(grace), Some(item)) if grace > MAX_SHUTDOWN_GRACE => {
            cx.invalid(
                &item,
                "shutdown_grace is at most 10m: a stopping broker must not hang for longer",
            );
            return None;
        }
        (Some(grace), _) => grace,
        (None, _) => defaults.shutdown_grace,
    };
    Some(LimitsConfig {
        max_tunnels: max_tunnels?.unwrap_or(defaults.max_tunnels),
        shutdown_grace,
    })
}

fn metrics(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<MetricsConfig> {
    let fields = cx.fields(item, METRICS_KEYS)?;
    let token = cx.required(&fields, "token")?;
    Some(MetricsConfig {
        token: credential(cx, &token)?,
    })
}

fn listen(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<SocketAddr> {
    let text = cx.text(item)?;
    match text.parse() {
        Ok(address) => Some(address),
        Err(_) => {
            cx.invalid(
                item,
                format!(
                    "invalid listen address \"{text}\": expected IP:PORT such as 127.0.0.1:8443, \
                     0.0.0.0:8443 or [::]:8443 (host names are not accepted here)"
                ),
            );
            None
        }
    }
}

fn tls(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<TlsConfig> {
    let fields = cx.fields(item, TLS_KEYS)?;
    let cert = cx.required(&fields, "cert").and_then(|item| cx.path(&item));
    let key = cx.required(&fields, "key").and_then(|item| cx.path(&item));
    let ca = optional(fields.optional("ca"), |item| cx.path(item));
    Some(TlsConfig {
        cert: cert?,
        key: key?,
        ca: ca?,
    })
}

fn tokens(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<TokensConfig> {
    let fields = cx.fields(item, TOKENS_KEYS)?;
    let signing_key = cx
        .required(&fields, "signing_key")
        .and_then(|item| cx.path(&item));
    let default_item = fields.optional("default_ttl");
    let default_ttl = optional(default_item.clone(), |item| duration(cx, item))
        .map(|ttl| ttl.unwrap_or(DEFAULT_TTL));
    let max_ttl = optional(fields.optional("max_ttl"), |item| duration(cx, item))
        .map(|ttl| ttl.unwrap_or(DEFAULT_MAX_TTL));
    if let (Some(default), Some(max)) = (default_ttl, max_ttl)
        && default > max
    {
        let message = format!(
            "default_ttl ({}) is longer than max_ttl ({})",
            humantime::format_duration(default),
            humantime::format_duration(max)
        );
        match &default_item {
            Some(item) => cx.invalid(item, message),
            // The default only exceeds a max_ttl the operator lowered below it.
            None => match fields.optional("max_ttl") {
                Some(item) => cx.invalid(&item, format!("{message}; set default_ttl as well")),
                None => cx.invalid(&fields.item, message),
            },
        }
        return None;
    }
    Some(TokensConfig {
        signing_key: signing_key?,
        default_ttl: default_ttl?,
        max_ttl: max_ttl?,
    })
}

pub(crate) fn duration(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Duration> {
    let text = cx.text(item)?;
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if duration.is_zero() => {
            cx.invalid(item, "must be longer than zero");
            None
        }
        Ok(duration) => Some(duration),
        Err(error) => {
            cx.invalid(
                item,
                format!("invalid duration \"{text}\" ({error}); write e.g. 30m, 1h or 12h"),
            );
            None
        }
    }
}

/// `store: {sqlite: PATH}` or `store: {postgres: {url, password, ca}}`.
fn store(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<StoreConfig> {
    let fields = cx.fields(item, STORE_KEYS)?;
    match (fields.optional("sqlite"), fields.optional("postgres")) {
        (Some(sqlite), None) => cx.path(&sqlite).map(StoreConfig::Sqlite),
        (None, Some(postgres)) => postgres_store(cx, &postgres).map(StoreConfig::Postgres),
        (Some(_), Some(postgres)) => {
            cx.invalid(
                &postgres,
                "the store is one database: `sqlite` (one broker) or `postgres` (several), not both",
            );
            None
        }
        (None, None) => {
            cx.invalid(
                item,
                "say where the store is: `sqlite: PATH` (one broker) or `postgres: {url: ...}` \
                 (several brokers sharing one database)",
            );
            None
        }
    }
}

fn postgres_store(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<PostgresStore> {
    let fields = cx.fields(item, POSTGRES_STORE_KEYS)?;
    let url_item = cx.required(&fields, "url");
    let checked = url_item.as_ref().and_then(|item| {
        let text = cx.text(item)?;
        match check_postgres_url(&text) {
            Ok(loopback) => Some((cx.located(item, text), loopback)),
            Err(why) => {
                cx.invalid(item, why);
                None
            }
        }
    });
    let password = optional(fields.optional("password"), |item| credential(cx, item));
    let ca = optional(fields.optional("ca"), |item| cx.path(item));
    let (url, loopback) = checked?;
    let ca = ca?;
    if ca.is_none() && !loopback {
        cx.invalid(
            item,
            "a store off this machine is reached over TLS: add `ca: PATH` (the CA certificate \
             the database server's certificate chains to)",
        );
        return None;
    }
    Some(PostgresStore {
        url,
        password: password?,
        ca,
    })
}

/// Checks a store URL: `postgres://` or `postgresql://`, a host, a database, no password and
/// no parameters (TLS comes from `ca`). Returns whether the host is a loopback address.
fn check_postgres_url(text: &str) -> Result<bool, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "expected a postgres:// URL, found a {}:// one",
            url.scheme()
        ));
    }
    if url.password().is_some() {
        // Never repeat the URL: it holds the password.
        return Err(
            "the URL holds a password: move it to `password: env:NAME` or `password: file:PATH` \
             (secrets do not belong in the configuration file)"
                .into(),
        );
    }
    if url.query().is_some() {
        return Err("the URL takes no parameters: TLS is set with `ca`".into());
    }
    let Some(host) = url.host() else {
        return Err("the URL names no host".into());
    };
    if url.path().trim_start_matches('/').is_empty() {
        return Err("the URL names no database (postgres://USER@HOST:PORT/DATABASE)".into());
    }
    if url.username().is_empty() {
        return Err("the URL names no user (postgres://USER@HOST:PORT/DATABASE)".into());
    }
    // `postgres:` is not a scheme the URL standard knows, so its host stays text.
    Ok(match host {
        url::Host::Domain(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    })
}

/// `recording: {dir, retention, s3}`; `dir` defaults to `recordings` beside the SQLite file
/// (a PostgreSQL store has no such place: its brokers say where recordings go).
fn recording(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    store: Option<&StoreConfig>,
) -> Option<RecordingConfig> {
    let fields = cx.fields(item, RECORDING_KEYS)?;
    let dir_item = fields.optional("dir");
    let dir = optional(dir_item.clone(), |item| cx.path(item));
    let retention = optional(fields.optional("retention"), |item| duration(cx, item));
    let s3 = optional(fields.optional("s3"), |item| s3_recording(cx, item));
    if let (Some(item), Some(Some(_))) = (&dir_item, &s3) {
        cx.invalid(item, "recordings go to one place: `dir` or `s3`, not both");
        return None;
    }
    let (dir, s3) = (dir?, s3?);
    let dir = match dir {
        Some(dir) => dir,
        None => default_recording(cx, item, store?, s3.is_some())?.dir,
    };
    Some(RecordingConfig {
        dir,
        retention: retention?.unwrap_or(DEFAULT_RETENTION),
        s3,
    })
}

fn s3_recording(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<S3Recording> {
    let fields = cx.fields(item, S3_KEYS)?;
    let bucket = cx
        .required(&fields, "bucket")
        .and_then(|item| cx.text(&item));
    let endpoint = optional(fields.optional("endpoint"), |item| {
        let text = cx.text(item)?;
        let loopback_http = text.strip_prefix("http://").is_some_and(|rest| {
            let host = rest.split('/').next().unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if text.starts_with("https://") || loopback_http {
            Some(text)
        } else {
            cx.invalid(
                item,
                format!(
                    "expected an https:// URL (http:// only on a loopback address: recordings \
                     leave the machine encrypted), found \"{text}\""
                ),
            );
            None
        }
    });
    let region = optional(fields.optional("region"), |item| cx.text(item));
    let prefix = optional(fields.optional("prefix"), |item| cx.text(item));
    let access_key_id = cx
        .required(&fields, "access_key_id")
        .and_then(|item| credential(cx, &item));
    let secret_access_key = cx
        .required(&fields, "secret_access_key")
        .and_then(|item| credential(cx, &item));
    let kms_key_id = optional(fields.optional("kms_key_id"), |item| cx.text(item));
    let encryption_item = fields.optional("encryption");
    let encryption = optional(encryption_item.clone(), |item| {
        let text = cx.text(item)?;
        match text.as_str() {
            "aes256" => Some(S3Encryption::Aes256),
            "kms" => Some(S3Encryption::Kms(None)),
            other => {
                cx.invalid(
                    item,
                    format!("expected aes256 (SSE-S3) or kms (SSE-KMS), found \"{other}\""),
                );
                None
            }
        }
    });
    let encryption = match (encryption?, kms_key_id?) {
        (Some(S3Encryption::Kms(_)), key) => Some(S3Encryption::Kms(key)),
        (other, None) => other,
        (_, Some(_)) => {
            if let Some(item) = fields.optional("kms_key_id") {
                cx.invalid(&item, "`kms_key_id` goes with `encryption: kms`");
            }
            return None;
        }
    };
    Some(S3Recording {
        bucket: bucket?,
        endpoint: endpoint?,
        region: region?.unwrap_or_else(|| "us-east-1".into()),
        prefix: prefix?.unwrap_or_default(),
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        encryption,
    })
}

/// The recording settings when `recording` (or its `dir`) is not written: `recordings` beside
/// the SQLite file. With a PostgreSQL store, whose brokers run on several machines, the
/// operator must say where recordings go (`item` is where the error points), unless they go
/// to a bucket (`has_s3`; the directory is then unused).
fn default_recording(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    store: &StoreConfig,
    has_s3: bool,
) -> Option<RecordingConfig> {
    let (dir, location) = match store {
        StoreConfig::Sqlite(sqlite) => (
            sqlite
                .value
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
                .join("recordings"),
            sqlite.location.clone(),
        ),
        StoreConfig::Postgres(postgres) if has_s3 => {
            (PathBuf::new(), postgres.url.location.clone())
        }
        StoreConfig::Postgres(_) => {
            cx.invalid(
                item,
                "with `store.postgres`, say where recordings go: `recording.s3` (one bucket every \
                 broker reads and writes) or `recording.dir`",
            );
            return None;
        }
    };
    Some(RecordingConfig {
        dir: Located {
            value: dir,
            location,
            key: "recording.dir".into(),
        },
        retention: DEFAULT_RETENTION,
        s3: None,
    })
}

/// Reads every resource. Also returns every name written under `resources`, valid or not, so
/// rules are checked against what the operator wrote and a broken resource does not also make
/// every rule that names it fail.
fn resources(cx: &mut Cx<'_>, item: &Item<'_>) -> (Option<Vec<Resource>>, Vec<String>) {
    let Some(fields) = cx.mapping(item, "a mapping of resource names to resources") else {
        return (None, Vec::new());
    };
    let mut names = Vec::new();
    let mut resources = Some(Vec::new());
    for (name, item) in fields.all() {
        names.push(name.to_owned());
        let resource = resource(cx, name, &item);
        resources = resources.zip(resource).map(|(mut all, one)| {
            all.push(one);
            all
        });
    }
    (resources, names)
}

/// `[a-z0-9][a-z0-9-_.]{0,62}`: safe in URLs, file names and log lines without quoting.
pub(crate) fn is_resource_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(is_resource_name_char)
}

pub(crate) fn is_resource_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
}

fn resource(cx: &mut Cx<'_>, name: &str, item: &Item<'_>) -> Option<Resource> {
    let name_ok = is_resource_name(name);
    if !name_ok {
        cx.invalid(
            item,
            "invalid resource name: use 1 to 63 lowercase letters, digits, '-', '_' or '.', \
             starting with a letter or digit",
        );
    }
    let fields = cx.fields(item, RESOURCE_KEYS)?;
    let kind = cx
        .required(&fields, "kind")
        .and_then(|item| kind(cx, &item));
    let address = cx
        .required(&fields, "address")
        .and_then(|item| address(cx, &item));
    let description = optional(fields.optional("description"), |item| cx.string(item));
    let labels = optional(fields.optional("labels"), |item| labels(cx, item));
    let kind = kind?;
    let own: &[&str] = KIND_KEYS
        .iter()
        .find(|(name, _)| *name == kind.as_str())
        .map_or(&[], |(_, keys)| keys);
    let mut reported: Vec<&str> = Vec::new();
    for key in KIND_KEYS.iter().flat_map(|(_, keys)| keys.iter().copied()) {
        if own.contains(&key) || reported.contains(&key) {
            continue;
        }
        reported.push(key);
        if let Some(item) = fields.entry(key) {
            let kinds: Vec<&str> = KIND_KEYS
                .iter()
                .filter(|(_, keys)| keys.contains(&key))
                .map(|(name, _)| *name)
                .collect();
            cx.invalid(
                &item,
                format!(
                    "{key} is only for kind {} (this resource is kind {kind})",
                    kinds.join(" or ")
                ),
            );
        }
    }
    let spec = match kind {
        // `kind` reads only the names below.
        ResourceKind::Other(_) => return None,
        ResourceKind::Postgres => ResourceSpec::Postgres(postgres(cx, &fields, address)?),
        ResourceKind::Ssh => ResourceSpec::Ssh(crate::ssh_schema::resource(cx, &fields, address)?),
        ResourceKind::Kubernetes => {
            ResourceSpec::Kubernetes(crate::kube_schema::resource(cx, &fields, address)?)
        }
        ResourceKind::Http => {
            ResourceSpec::Http(crate::http_schema::resource(cx, &fields, address)?)
        }
        ResourceKind::Tcp => ResourceSpec::Tcp(TcpSpec { address: address? }),
    };
    if !name_ok {
        return None;
    }
    Some(Resource {
        name: name.to_owned(),
        description: description?,
        labels: labels?.unwrap_or_default(),
        spec,
        location: cx.location(item.pos),
    })
}

fn kind(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<ResourceKind> {
    let text = cx.text(item)?;
    match text.as_str() {
        "postgres" => Some(ResourceKind::Postgres),
        "tcp" => Some(ResourceKind::Tcp),
        "ssh" => Some(ResourceKind::Ssh),
        "kubernetes" => Some(ResourceKind::Kubernetes),
        "http" => Some(ResourceKind::Http),
        other => {
            cx.invalid(item, unknown_choice("kind", other, KINDS));
            None
        }
    }
}

/// `unknown kind "mysql"; expected one of postgres, tcp`, with a suggestion when one is close.
/// A list whose every entry `each` reads; `None` (after reporting every bad entry) when one
/// is wrong.
pub(crate) fn list_of<T>(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    expected: &str,
    mut each: impl FnMut(&mut Cx<'_>, &Item<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let items = cx.list(item, expected)?;
    let mut values = Vec::with_capacity(items.len());
    let mut ok = true;
    for entry in &items {
        match each(cx, entry) {
            Some(value) => values.push(value),
            None => ok = false,
        }
    }
    ok.then_some(values)
}

pub(crate) fn unknown_choice(what: &str, value: &str, choices: &[&str]) -> String {
    match suggest(value, choices.iter().copied()) {
        Some(close) => format!("unknown {what} \"{value}\"; did you mean \"{close}\"?"),
        None => format!(
            "unknown {what} \"{value}\"; expected one of {}",
            choices.join(", ")
        ),
    }
}

fn address(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<String> {
    let text = cx.text(item)?;
    match check_address(&text) {
        Ok(()) => Some(text),
        Err(why) => {
            cx.invalid(item, format!("invalid address \"{text}\": {why}"));
            None
        }
    }
}

/// Validates `host:port` without resolving the host: name resolution happens at connect time,
/// when DNS changes should be honoured.
fn check_address(text: &str) -> Result<(), &'static str> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected host:port, e.g. db.internal:5432");
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port != 0);
    if !port_ok {
        return Err("the port must be a number from 1 to 65535");
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(_)) => Ok(()),
            _ => Err("invalid IPv6 address between [ and ]"),
        };
    }
    if host.contains(':') {
        return Err("write IPv6 addresses in brackets, e.g. [::1]:5432");
    }
    if host.is_empty() {
        return Err("the host is missing");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("the host must be a DNS name or an IP address");
    }
    Ok(())
}

pub(crate) fn labels(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<BTreeMap<String, String>> {
    let fields = cx.mapping(item, "a mapping of label names to values, e.g. {env: prod}")?;
    let mut labels = Some(BTreeMap::new());
    for (name, item) in fields.all() {
        let value = cx.string(&item);
        labels = labels.zip(value).map(|(mut all, value)| {
            all.insert(name.to_owned(), value);
            all
        });
    }
    labels
}

fn postgres(cx: &mut Cx<'_>, fields: &Fields<'_>, address: Option<String>) -> Option<PostgresSpec> {
    let database = cx
        .required(fields, "database")
        .and_then(|item| cx.text(&item));
    let user = cx.required(fields, "user").and_then(|item| cx.text(&item));
    let password = cx
        .required(fields, "password")
        .and_then(|item| credential(cx, &item));
    let tls = optional(fields.optional("tls"), |item| target_tls(cx, item));
    let superuser_login = optional(fields.optional("superuser_login"), |item| {
        let text = cx.text(item)?;
        match text.as_str() {
            "allow" => Some(SuperuserLogin::Allow),
            "refuse-guarded" => Some(SuperuserLogin::RefuseGuarded),
            other => {
                cx.invalid(
                    item,
                    unknown_choice("superuser_login", other, SUPERUSER_LOGINS),
                );
                None
            }
        }
    });
    Some(PostgresSpec {
        address: address?,
        database: database?,
        user: user?,
        password: password?,
        tls: tls?.unwrap_or_default(),
        superuser_login: superuser_login?.unwrap_or_default(),
    })
}

/// A credential reference (`env:NAME` or `file:PATH`): a resource's password, a masking key.
pub(crate) fn credential(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
) -> Option<crate::location::Located<CredentialRef>> {
    let text = cx.text(item)?;
    match CredentialRef::parse(text.trim(), cx.base) {
        Ok(credential) => Some(cx.located(item, credential)),
        Err(why) => {
            // `why` never includes the text: it is probably the secret itself.
            cx.invalid(item, why);
            None
        }
    }
}

fn target_tls(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<TargetTls> {
    let fields = cx.fields(item, TARGET_TLS_KEYS)?;
    let mode = optional(fields.optional("mode"), |item| {
        let text = cx.text(item)?;
        match text.as_str() {
            "disable" => Some(TlsMode::Disable),
            "require" => Some(TlsMode::Require),
            "verify-full" => Some(TlsMode::VerifyFull),
            other => {
                cx.invalid(item, unknown_choice("mode", other, TLS_MODES));
                None
            }
        }
    });
    let ca_item = fields.optional("ca");
    let ca = optional(ca_item.clone(), |item| cx.path(item));
    let server_name = optional(fields.optional("server_name"), |item| cx.text(item));
    let mode = mode?.unwrap_or(TlsMode::Disable);
    match (mode, &ca_item) {
        (TlsMode::VerifyFull, None) => {
            cx.error(
                fields.item.pos,
                &crate::extract::join_key(&fields.item.key, "ca"),
                "missing required key: mode verify-full needs the CA to verify the server with",
            );
            return None;
        }
        // A CA that is never used would let the operator believe the server is verified.
        (TlsMode::Disable | TlsMode::Require, Some(item)) => {
            cx.invalid(
                item,
                format!(
                    "ca is only used with mode verify-full (mode is {}); set mode: verify-full or remove ca",
                    mode.as_str()
                ),
            );
            return None;
        }
        _ => {}
    }
    Some(TargetTls {
        mode,
        ca: ca?,
        server_name: server_name?,
    })
}

/// `client_cert` and `client_key` of a resource: both or neither.
pub(crate) fn client_cert(
    cx: &mut Cx<'_>,
    fields: &Fields<'_>,
) -> Option<Option<crate::model::ClientCert>> {
    let cert = optional(fields.optional("client_cert"), |item| credential(cx, item))?;
    let key = optional(fields.optional("client_key"), |item| credential(cx, item))?;
    match (cert, key) {
        (Some(cert), Some(key)) => Some(Some(crate::model::ClientCert { cert, key })),
        (None, None) => Some(None),
        (Some(_), None) => {
            cx.missing(
                fields,
                "client_key",
                "client_cert needs client_key (the certificate's private key, file:/env:)",
            );
            None
        }
        (None, Some(_)) => {
            cx.missing(
                fields,
                "client_cert",
                "client_key needs client_cert (the certificate, file:/env:)",
            );
            None
        }
    }
}
