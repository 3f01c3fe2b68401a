//! `GET /v1/health` checks what a tunnel needs (the store answers, the recordings can be
//! written) and answers 503, naming what fails, when one does.

use sluice_tests::BrokerBuilder;
use std::process::Command;

fn health(broker: &sluice_tests::Broker) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args([
            "-q",
            "-s",
            "--noproxy",
            "*",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(broker.ca())
        .arg(format!("{}/v1/health", broker.url()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code.trim().parse().unwrap_or(0), body)
}

#[test]
fn health_fails_with_the_reason_while_the_recordings_directory_is_unusable() {
    let broker = BrokerBuilder::new().start();
    let (code, body) = health(&broker);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["recordings"], "ok");

    let recordings = broker.dir().join("recordings");
    std::fs::create_dir_all(&recordings).expect("recordings dir");
    let moved = broker.dir().join("recordings.moved");
    std::fs::rename(&recordings, &moved).expect("move the recordings away");
    std::fs::write(&recordings, "not a directory").expect("a file in its place");
    let (code, body) = health(&broker);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "failing");
    assert_eq!(body["checks"]["store"], "ok");
    let why = body["checks"]["recordings"].as_str().unwrap_or_default();
    assert!(why.contains("recordings"), "{body}");

    std::fs::remove_file(&recordings).expect("remove the file");
    std::fs::rename(&moved, &recordings).expect("put them back");
    let (code, body) = health(&broker);
    assert_eq!(code, 200, "{body}");
}
