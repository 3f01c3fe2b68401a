//! The checked-in completions under `completions/` must match what the CLI generates.
//! Regenerate with `SLUICE_UPDATE_COMPLETIONS=1 cargo test -p sluice-cli --test completions`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn checked_in_completions_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../completions");
    let update = std::env::var_os("SLUICE_UPDATE_COMPLETIONS").is_some();
    let mut stale = Vec::new();
    for (shell, file) in [
        ("bash", "sluice.bash"),
        ("zsh", "_sluice"),
        ("fish", "sluice.fish"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["completions", shell])
            .output()
            .expect("run sluice completions");
        assert!(out.status.success(), "sluice completions {shell} failed");
        assert!(
            !out.stdout.is_empty(),
            "sluice completions {shell} printed nothing"
        );
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &out.stdout).expect("write completions");
        } else if std::fs::read(&path).ok().as_deref() != Some(out.stdout.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale completions: {stale:?}; run `SLUICE_UPDATE_COMPLETIONS=1 cargo test -p sluice-cli --test completions` and commit"
    );
}
