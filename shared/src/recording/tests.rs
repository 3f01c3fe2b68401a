//! The envelope and the families on the wire: old lines read into the new types and write back
//! byte for byte, every family round-trips, unknown types stay readable.

use super::*;

/// Lines as version 1 brokers wrote them before events were typed per family (copied from the
/// format's documentation and the recorder's tests).
const OLD_LINES: &[&str] = &[
    r#"{"t":12,"type":"statement","seq":1,"sql":"select * from orders limit 3","protocol":"simple","decision":{"outcome":"allowed"}}"#,
    r#"{"t":15,"type":"rows","seq":1,"columns":["id","email"],"rows":[["1","a***@example.com"],["2",null]],"truncated":true}"#,
    r#"{"t":15,"type":"result","seq":1,"tag":"SELECT 3","rows":3,"duration_ms":3}"#,
    r#"{"t":40,"type":"statement","seq":2,"sql":"drop table orders","protocol":"simple","decision":{"outcome":"blocked","rule":"no-ddl","message":"DDL is not allowed"}}"#,
    r#"{"t":41,"type":"statement","seq":3,"sql":"delete from orders","protocol":"extended","decision":{"outcome":"denied","rule":"writes","reason":"timed out","request":"r-2"}}"#,
    r#"{"t":42,"type":"error","seq":3,"code":"42501","message":"denied","duration_ms":1}"#,
    r#"{"t":43,"type":"error","code":"08006","message":"gone"}"#,
    r#"{"t":50,"type":"note","message":"3 events dropped"}"#,
    r#"{"t":9001,"type":"end","reason":"client closed","bytes_up":310,"bytes_down":2048,"statements":2}"#,
];

fn parse(line: &str) -> Event {
    serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"))
}

fn write(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

#[test]
fn old_lines_read_into_the_families_and_write_back_unchanged() {
    let events: Vec<Event> = OLD_LINES.iter().map(|line| parse(line)).collect();
    assert_eq!(
        events[0],
        Event {
            t: 12,
            n: None,
            body: Body::Sql(SqlEvent::Statement {
                seq: 1,
                sql: "select * from orders limit 3".into(),
                protocol: "simple".into(),
                decision: Decision::Allowed,
            }),
        }
    );
    assert!(matches!(
        &events[1].body,
        Body::Sql(SqlEvent::Rows { rows, truncated: true, .. }) if rows[1] == [Some("2".into()), None]
    ));
    assert!(matches!(
        events[6].body,
        Body::Sql(SqlEvent::Error {
            seq: None,
            duration_ms: None,
            ..
        })
    ));
    assert!(matches!(
        events[7].body,
        Body::Session(SessionEvent::Note { .. })
    ));
    assert_eq!(
        events[8].body,
        Body::Session(SessionEvent::End {
            reason: "client closed".into(),
            bytes_up: 310,
            bytes_down: 2048,
            statements: 2,
        })
    );
    for (line, event) in OLD_LINES.iter().zip(&events) {
        assert_eq!(
            &write(event),
            line,
            "an unnumbered event writes as it was read"
        );
    }
}

#[test]
fn the_envelope_number_is_written_when_present() {
    let event = Event {
        t: 12,
        n: Some(7),
        body: SqlEvent::Result {
            seq: 1,
            tag: "BEGIN".into(),
            rows: None,
            duration_ms: 0,
        }
        .into(),
    };
    let line = write(&event);
    assert_eq!(
        line,
        r#"{"t":12,"n":7,"type":"result","seq":1,"tag":"BEGIN","duration_ms":0}"#
    );
    assert_eq!(parse(&line), event);
}

#[test]
fn every_family_round_trips() {
    let bodies: Vec<Body> = vec![
        SessionEvent::Note {
            message: "hi".into(),
        }
        .into(),
        SqlEvent::Statement {
            seq: 1,
            sql: "update t set a = 1 -- \"quoted\"\n".into(),
            protocol: "extended".into(),
            decision: Decision::Approved {
                rule: "writes".into(),
                by: "bob".into(),
                request: "r-1".into(),
            },
        }
        .into(),
        TerminalEvent::Output {
            data: b"\x1b[1mhello\r\n\xff\xfe".to_vec(),
        }
        .into(),
        TerminalEvent::Input {
            data: b"ls\r".to_vec(),
        }
        .into(),
        TerminalEvent::Resize {
            cols: 120,
            rows: 40,
        }
        .into(),
        HttpEvent::HttpRequest {
            seq: 1,
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods".into(),
            query: "limit=500".into(),
            decision: Decision::Allowed,
        }
        .into(),
        HttpEvent::HttpRequest {
            seq: 2,
            method: "DELETE".into(),
            path: "/api/v1/namespaces/default/pods/web-0".into(),
            query: String::new(),
            decision: Decision::Blocked {
                rule: "read-only".into(),
                message: "writes are not allowed".into(),
            },
        }
        .into(),
        HttpEvent::HttpResponse {
            seq: 1,
            status: 200,
            bytes: 5120,
            duration_ms: 12,
            body: None,
            body_truncated: false,
        }
        .into(),
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        let event = Event {
            t: n as u64 * 10,
            n: Some(n as u64 + 1),
            body,
        };
        let line = write(&event);
        assert_eq!(parse(&line), event, "{line}");
    }
}

#[test]
fn terminal_bytes_are_base64_and_need_not_be_utf8() {
    let event = Event {
        t: 5,
        n: None,
        body: TerminalEvent::Output {
            data: vec![b'h', b'i', 0xc3],
        }
        .into(),
    };
    assert_eq!(write(&event), r#"{"t":5,"type":"output","data":"aGnD"}"#);
    assert_eq!(parse(r#"{"t":5,"type":"output","data":"aGnD"}"#), event);
    assert_eq!(
        write(&Event {
            t: 6,
            n: None,
            body: TerminalEvent::Resize { cols: 80, rows: 24 }.into(),
        }),
        r#"{"t":6,"type":"resize","cols":80,"rows":24}"#
    );
}

#[test]
fn http_shape() {
    let event = Event {
        t: 3,
        n: Some(1),
        body: HttpEvent::HttpRequest {
            seq: 1,
            method: "GET".into(),
            path: "/healthz".into(),
            query: String::new(),
            decision: Decision::Allowed,
        }
        .into(),
    };
    assert_eq!(
        write(&event),
        r#"{"t":3,"n":1,"type":"http_request","seq":1,"method":"GET","path":"/healthz","decision":{"outcome":"allowed"}}"#
    );
}

#[test]
fn unknown_types_read_as_unknown_and_damaged_known_types_do_not() {
    for line in [
        r#"{"t":5,"type":"hologram","x":1}"#,
        r#"{"t":5,"n":9,"type":"unknown"}"#,
    ] {
        assert_eq!(parse(line).body, Body::Unknown, "{line}");
    }
    assert_eq!(
        write(&Event {
            t: 1,
            n: None,
            body: Body::Unknown
        }),
        r#"{"t":1,"type":"unknown"}"#
    );
    for damaged in [
        r#"{"t":5,"type":"statement","seq":1}"#,
        r#"{"t":5,"type":"output","data":"not base64!"}"#,
        r#"{"t":5,"type":7}"#,
        r#"{"t":5}"#,
        r#"{"type":"end","reason":"x","bytes_up":1,"bytes_down":2,"statements":0}"#,
    ] {
        assert!(
            serde_json::from_str::<Event>(damaged).is_err(),
            "{damaged} should not parse"
        );
    }
}

#[test]
fn type_names_belong_to_one_family_only() {
    let families = [
        SessionEvent::TYPES,
        SqlEvent::TYPES,
        TerminalEvent::TYPES,
        HttpEvent::TYPES,
    ];
    let mut all: Vec<&str> = families.concat();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a type name is in two families");
    assert!(!all.contains(&"header") && !all.contains(&"unknown"));
}

#[test]
fn terminal_events_map_to_asciicast_lines_lossily() {
    let at = |t, body: TerminalEvent| Event {
        t,
        n: None,
        body: body.into(),
    };
    assert_eq!(
        asciicast_event(&at(
            1500,
            TerminalEvent::Output {
                data: b"\x1b[1mhi\xff\r\n".to_vec()
            }
        ))
        .as_deref(),
        Some(r#"[1.5,"o","\u001b[1mhi�\r\n"]"#)
    );
    assert_eq!(
        asciicast_event(&at(0, TerminalEvent::Resize { cols: 80, rows: 24 })).as_deref(),
        Some(r#"[0.0,"r","80x24"]"#)
    );
    assert_eq!(
        asciicast_event(&at(
            12,
            TerminalEvent::Input {
                data: b"ls\r".to_vec()
            }
        ))
        .as_deref(),
        Some(r#"[0.012,"i","ls\r"]"#)
    );
    assert_eq!(asciicast_event(&parse(OLD_LINES[0])), None);
}

#[test]
fn decisions_describe_themselves() {
    assert_eq!(Decision::Allowed.describe(), "allowed");
    assert_eq!(
        Decision::Denied {
            rule: "r".into(),
            reason: "timed out".into(),
            request: String::new(),
        }
        .describe(),
        "denied: timed out"
    );
}

#[test]
fn an_outcome_from_a_newer_broker_reads_as_unknown() {
    let line = r#"{"t":5,"type":"statement","seq":1,"sql":"select 1","protocol":"simple","decision":{"outcome":"rewritten","by":"x"}}"#;
    let event: Event = serde_json::from_str(line).expect("reads");
    let Body::Sql(SqlEvent::Statement { decision, .. }) = event.body else {
        panic!("not a statement: {event:?}");
    };
    assert_eq!(decision, Decision::Unknown);
    assert_eq!(
        decision.describe(),
        "decided in a way this build does not know"
    );
}
