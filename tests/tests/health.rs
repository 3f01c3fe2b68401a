//! `GET /v1/health` checks what a tunnel needs (the store answers, the recordings can be
//! written) and answers 503, naming what fails, when one does.

use sluice_tests::BrokerBuilder;

fn health(broker: &sluice_tests::Broker) -> (u16, serde_json::Value) {
    let (code, body) = broker.get("/v1/health", None);
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code, body)
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
