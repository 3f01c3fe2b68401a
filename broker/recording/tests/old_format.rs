//! Recordings written before events were typed per family (format version 1, no event
//! numbers) still read: every line lands in its family, nothing is reported as damage, and a
//! line of a type this build does not know is skipped and reported, as before.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sluice_recording::{Body, Decision, FORMAT_VERSION, SessionEvent, SqlEvent, parse};

/// A recording as a version 1 broker wrote it before the families existed: the documented
/// example, line for line, plus an event type from a newer broker.
const OLD_RECORDING: &str = concat!(
    r#"{"type":"header","v":1,"session":"s-01","started_at_ms":1767225600000,"subject":"alice@example.com","auth":"oidc","ci":{},"resource":"orders-db","kind":"postgres","role":"read","grant":"g-7","client":"10.0.0.5:51324"}"#,
    "\n",
    r#"{"t":12,"type":"statement","seq":1,"sql":"select * from orders limit 3","protocol":"simple","decision":{"outcome":"allowed"}}"#,
    "\n",
    r#"{"t":15,"type":"rows","seq":1,"columns":["id","email"],"rows":[["1","a***@example.com"]],"truncated":true}"#,
    "\n",
    r#"{"t":15,"type":"result","seq":1,"tag":"SELECT 3","rows":3,"duration_ms":3}"#,
    "\n",
    r#"{"t":20,"type":"hologram","x":1}"#,
    "\n",
    r#"{"t":40,"type":"statement","seq":2,"sql":"drop table orders","protocol":"simple","decision":{"outcome":"blocked","rule":"no-ddl","message":"DDL is not allowed"}}"#,
    "\n",
    r#"{"t":9001,"type":"end","reason":"client closed","bytes_up":310,"bytes_down":2048,"statements":2}"#,
    "\n",
);

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).expect("compresses");
    encoder.finish().expect("compresses")
}

#[test]
fn a_recording_in_the_old_format_reads_into_the_families() {
    let recording = parse(&gzip(OLD_RECORDING));
    let header = recording.header.expect("header");
    assert_eq!(header.v, FORMAT_VERSION);
    assert_eq!(header.kind, "postgres");
    assert_eq!(
        recording.damage,
        ["line 5 skipped: an event type this build does not know"]
    );
    assert_eq!(recording.truncated, None);

    let times: Vec<u64> = recording.events.iter().map(|event| event.t).collect();
    assert_eq!(times, [12, 15, 15, 40, 9001]);
    assert!(recording.events.iter().all(|event| event.n.is_none()));
    let bodies: Vec<&Body> = recording.events.iter().map(|event| &event.body).collect();
    assert_eq!(
        bodies[0],
        &Body::Sql(SqlEvent::Statement {
            seq: 1,
            sql: "select * from orders limit 3".into(),
            protocol: "simple".into(),
            decision: Decision::Allowed,
        })
    );
    assert!(matches!(
        bodies[1],
        Body::Sql(SqlEvent::Rows { seq: 1, rows, truncated: true, .. })
            if rows == &[vec![Some("1".to_owned()), Some("a***@example.com".to_owned())]]
    ));
    assert!(matches!(
        bodies[2],
        Body::Sql(SqlEvent::Result {
            rows: Some(3),
            duration_ms: 3,
            ..
        })
    ));
    assert!(matches!(
        bodies[3],
        Body::Sql(SqlEvent::Statement {
            decision: Decision::Blocked { rule, .. },
            ..
        }) if rule == "no-ddl"
    ));
    assert_eq!(
        bodies[4],
        &Body::Session(SessionEvent::End {
            reason: "client closed".into(),
            bytes_up: 310,
            bytes_down: 2048,
            statements: 2,
        })
    );
}
