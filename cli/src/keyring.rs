//! The OS keyring, through `keyring-core`: on Linux the kernel's keyutils store (pure Rust, no
//! D-Bus), which needs no desktop session and so also works over SSH.
//!
//! Entries are named after the state directory, so two profiles (or two tests) never share one.
//! The kernel keyring is memory only: a reboot empties it and the next command says to log in.

use std::path::Path;
use std::sync::OnceLock;

/// The keyring service every entry is filed under.
const SERVICE: &str = "sluice";

/// Installs the platform store once; the error says why there is no keyring.
fn ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            #[cfg(target_os = "linux")]
            {
                let store =
                    linux_keyutils_keyring_store::Store::new().map_err(|e| e.to_string())?;
                keyring_core::set_default_store(store);
                Ok(())
            }
            #[cfg(not(target_os = "linux"))]
            {
                Err("this build has no OS keyring support on this platform".to_string())
            }
        })
        .clone()
}

fn entry(dir: &Path, name: &str) -> Result<keyring_core::Entry, String> {
    ready()?;
    keyring_core::Entry::new(SERVICE, &format!("{name}:{}", dir.display()))
        .map_err(|e| e.to_string())
}

/// Writes, reads back and deletes a throwaway entry: does the keyring work here?
pub fn probe(dir: &Path) -> Result<(), String> {
    let value = "sluice keyring probe";
    let written = set(dir, "probe", value);
    let back = written.and_then(|()| get(dir, "probe"));
    let _ = delete(dir, "probe");
    match back? {
        Some(v) if v == value => Ok(()),
        _ => Err("the keyring did not return what was stored".to_string()),
    }
}

/// The secret called `name`, if stored.
pub fn get(dir: &Path, name: &str) -> Result<Option<String>, String> {
    match entry(dir, name)?.get_password() {
        Ok(v) => Ok(Some(v)),
        Err(keyring_core::Error::NoEntry) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Stores (or replaces) the secret called `name`.
pub fn set(dir: &Path, name: &str, value: &str) -> Result<(), String> {
    entry(dir, name)?
        .set_password(value)
        .map_err(|e| e.to_string())
}

/// Removes the secret called `name`; `true` if there was one.
pub fn delete(dir: &Path, name: &str) -> Result<bool, String> {
    match entry(dir, name)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
