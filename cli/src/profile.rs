//! Where the CLI keeps its state: the broker URL, the CA to trust, and the session token.
//!
//! The directory is `$SLUICE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sluice`, else
//! `~/.config/sluice`. The token lives in `session-token`, mode 0600. After a device-flow
//! login, `oidc-login.json` (which provider, when the session token expires) and
//! `refresh-token` (the provider's refresh token) sit next to it, both 0600, so the session can
//! be renewed without asking the person again. With `SLUICE_TOKEN_STORE=keyring` a device-flow
//! login keeps both tokens in the OS keyring instead ([`crate::keyring`]); `profile.json`
//! records which ([`TokenStore`]). `SLUICE_TOKEN` overrides the stored token, for CI steps.

use crate::exit::{CliError, CliResult, Exit};
use serde::{Deserialize, Serialize};
use sluice_shared::Secret;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What `sluice login` remembers besides the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Broker base URL, e.g. `https://sluice.internal:8443`.
    pub broker: Option<String>,
    /// PEM file with the CA that signed the broker's certificate, if not a public CA.
    pub ca: Option<PathBuf>,
    /// Where the session and refresh tokens are kept.
    #[serde(default)]
    pub token_store: TokenStore,
}

/// Where the secrets are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStore {
    /// Files in the state directory, mode 0600.
    #[default]
    File,
    /// The OS keyring (Linux: the kernel's keyutils session keyring).
    Keyring,
}

impl TokenStore {
    /// The store `login` should use: the 0600 file, or the OS keyring with
    /// `SLUICE_TOKEN_STORE=keyring` (checked with a write and read-back before the login starts).
    /// Not the keyring by default: where keyutils refuses access (containers, some CI) a failed
    /// probe leaves an entry behind, and a file that works beats a keyring that might not.
    pub fn choose() -> CliResult<Self> {
        match std::env::var("SLUICE_TOKEN_STORE").as_deref() {
            Ok("keyring") => match crate::keyring::probe(&dir()?) {
                Ok(()) => Ok(Self::Keyring),
                Err(e) => Err(CliError::new(
                    Exit::Failure,
                    format!(
                        "SLUICE_TOKEN_STORE=keyring, but the OS keyring does not work here: {e}"
                    ),
                )
                .hint("unset SLUICE_TOKEN_STORE to keep the tokens in 0600 files")),
            },
            Ok("file" | "") | Err(_) => Ok(Self::File),
            Ok(other) => Err(CliError::new(
                Exit::Usage,
                format!("SLUICE_TOKEN_STORE must be file or keyring, not '{other}'"),
            )),
        }
    }

    /// How to say where a secret went.
    pub fn describe(self, path: &Path) -> String {
        match self {
            Self::File => format!("{} (file, mode 0600)", path.display()),
            Self::Keyring => "the OS keyring (kernel keyutils)".to_string(),
        }
    }
}

/// The CLI's state directory.
pub fn dir() -> CliResult<PathBuf> {
    if let Some(d) = std::env::var_os("SLUICE_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("sluice"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config/sluice")),
        None => Err(
            CliError::new(Exit::Failure, "cannot find a place for the CLI's state")
                .hint("set SLUICE_CONFIG_DIR or HOME"),
        ),
    }
}

fn profile_path() -> CliResult<PathBuf> {
    Ok(dir()?.join("profile.json"))
}

/// The file holding the session token.
pub fn token_path() -> CliResult<PathBuf> {
    Ok(dir()?.join("session-token"))
}

/// Loads the profile; a missing file is an empty profile.
pub fn load() -> CliResult<Profile> {
    let path = profile_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::new(Exit::Failure, format!("{} is corrupt: {e}", path.display()))
                .hint("delete it and run `sluice login` again")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profile::default()),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// Saves the profile.
pub fn save(profile: &Profile) -> CliResult<()> {
    let path = profile_path()?;
    let json = serde_json::to_vec_pretty(profile)
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    write_private(&path, &json)
}

/// The session token: `SLUICE_TOKEN` if set, else the stored one.
pub fn token() -> CliResult<Secret<String>> {
    if let Ok(t) = std::env::var("SLUICE_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Secret::new(t.trim().to_string()));
    }
    read_secret(load()?.token_store, SESSION_TOKEN)?.ok_or_else(not_logged_in)
}

/// Stores the session token from `login --token-stdin`: always a 0600 file.
pub fn store_token(token: &Secret<String>) -> CliResult<PathBuf> {
    set_token_store(TokenStore::File)?;
    let path = token_path()?;
    write_private(&path, token.expose().as_bytes())?;
    Ok(path)
}

const SESSION_TOKEN: &str = "session-token";

fn set_token_store(store: TokenStore) -> CliResult<()> {
    let mut profile = load()?;
    if profile.token_store != store {
        profile.token_store = store;
        save(&profile)?;
    }
    Ok(())
}

fn read_secret(store: TokenStore, name: &str) -> CliResult<Option<Secret<String>>> {
    let text = match store {
        TokenStore::Keyring => crate::keyring::get(&dir()?, name).map_err(|e| {
            CliError::new(
                Exit::NotAuthenticated,
                format!("cannot read the {name} from the OS keyring: {e}"),
            )
            .hint("run `sluice login` again (the kernel keyring is emptied on reboot)")
        })?,
        TokenStore::File => {
            let path = dir()?.join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&path, e)),
            }
        }
    };
    Ok(text
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(Secret::new))
}

fn write_secret(store: TokenStore, name: &str, secret: &Secret<String>) -> CliResult<()> {
    match store {
        TokenStore::Keyring => crate::keyring::set(&dir()?, name, secret.expose()).map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("cannot store the {name} in the OS keyring: {e}"),
            )
            .hint("set SLUICE_TOKEN_STORE=file to keep it in a 0600 file instead")
        }),
        TokenStore::File => write_private(&dir()?.join(name), secret.expose().as_bytes()),
    }
}

fn remove_secret(name: &str) -> CliResult<bool> {
    let dir = dir()?;
    // Both places: the profile may have been switched since the secret was written.
    let in_keyring = crate::keyring::delete(&dir, name).unwrap_or(false);
    Ok(remove(&dir.join(name))? || in_keyring)
}

/// Removes the stored token and any device-login state; `true` if there was a token.
pub fn remove_token() -> CliResult<bool> {
    remove(&dir()?.join(OIDC_LOGIN))?;
    remove_secret(REFRESH_TOKEN)?;
    remove_secret(SESSION_TOKEN)
}

fn remove(path: &Path) -> CliResult<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

const OIDC_LOGIN: &str = "oidc-login.json";
const REFRESH_TOKEN: &str = "refresh-token";

/// What a device-flow login leaves behind so the session can be renewed silently. Holds no
/// secret: the refresh token is stored apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcLogin {
    /// The broker's name for the provider.
    pub provider: String,
    /// The provider's issuer URL.
    pub issuer: String,
    /// The public client used for the device flow and refreshes.
    pub client_id: String,
    /// The scopes the login asked for.
    pub scopes: Vec<String>,
    /// When the stored session token expires, seconds since the epoch.
    pub expires_at: u64,
}

/// The device-login state, if the stored token came from a device-flow login.
pub fn oidc_login() -> CliResult<Option<OidcLogin>> {
    let path = dir()?.join(OIDC_LOGIN);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// Stores the session token from a device-flow login with what renewing it needs, in `store`.
/// Without a refresh token, any old one is removed: it belongs to an earlier login. Returns a
/// description of where the tokens went.
pub fn store_oidc_session(
    store: TokenStore,
    token: &Secret<String>,
    login: &OidcLogin,
    refresh_token: Option<&Secret<String>>,
) -> CliResult<String> {
    let dir = dir()?;
    if store != load()?.token_store {
        // Switching stores: leave no copy in the other one.
        remove_secret(SESSION_TOKEN)?;
        remove_secret(REFRESH_TOKEN)?;
    }
    match refresh_token {
        Some(r) => write_secret(store, REFRESH_TOKEN, r)?,
        None => {
            remove_secret(REFRESH_TOKEN)?;
        }
    }
    write_secret(store, SESSION_TOKEN, token)?;
    let json = serde_json::to_vec_pretty(login)
        .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    write_private(&dir.join(OIDC_LOGIN), &json)?;
    set_token_store(store)?;
    Ok(store.describe(&dir.join(SESSION_TOKEN)))
}

/// Forgets device-login state (before `login --token-stdin`, which has no refresh token).
pub fn forget_oidc_session() -> CliResult<()> {
    remove(&dir()?.join(OIDC_LOGIN))?;
    remove_secret(REFRESH_TOKEN)?;
    if load()?.token_store == TokenStore::Keyring {
        remove_secret(SESSION_TOKEN)?;
    }
    Ok(())
}

/// The stored refresh token, if any.
pub fn refresh_token() -> CliResult<Option<Secret<String>>> {
    read_secret(load()?.token_store, REFRESH_TOKEN)
}

fn not_logged_in() -> CliError {
    CliError::new(Exit::NotAuthenticated, "not logged in").hint("run `sluice login`")
}

/// Writes a file readable only by the owner, creating the directory (0700) if needed.
fn write_private(path: &Path, bytes: &[u8]) -> CliResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io_error(parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_error(&tmp, e))?;
    f.sync_all().map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::new(Exit::Failure, format!("cannot use {}: {e}", path.display()))
}
