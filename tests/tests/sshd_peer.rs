//! The SSH test peer itself: a real OpenSSH `sshd` that the SSH engine's tests stand on. It
//! accepts only the client key, pins its host key, and runs commands with their exit codes.

use sluice_tests::Sshd;

#[test]
fn the_test_sshd_runs_commands_for_the_client_key_only() {
    let sshd = Sshd::start();
    let out = sshd.ssh_direct(&["echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", sshd.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));

    // Another key is refused, and so is a mismatched host key.
    let other = sshd.dir().join("other_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let refused = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.known_hosts().display()
        ))
        .arg("-i")
        .arg(&other)
        .args(["-p", &sshd.port.to_string()])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .arg("true")
        .output()
        .expect("ssh");
    assert_eq!(refused.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
