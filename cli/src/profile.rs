//! Where the CLI keeps its state: the broker URL, the CA to trust, and the session token.
//!
//! The directory is `$SLUICE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sluice`, else
//! `~/.config/sluice`. The token lives in `session-token`, mode 0600 (the OS keyring arrives
//! with device-flow login). `SLUICE_TOKEN` overrides the stored token, for CI steps.

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
    let path = token_path()?;
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim().to_string())),
        Ok(_) => Err(not_logged_in()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_logged_in()),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// Stores the session token with mode 0600.
pub fn store_token(token: &Secret<String>) -> CliResult<PathBuf> {
    let path = token_path()?;
    write_private(&path, token.expose().as_bytes())?;
    Ok(path)
}

/// Removes the stored token; `true` if there was one.
pub fn remove_token() -> CliResult<bool> {
    let path = token_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(&path, e)),
    }
}

fn not_logged_in() -> CliError {
    CliError::new(Exit::NotAuthenticated, "not logged in")
        .hint("run `sluice login --token-stdin` with a token from your administrator")
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
