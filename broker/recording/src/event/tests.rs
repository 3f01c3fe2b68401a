//! The wire shape of headers and events: exact JSON for the documented examples, and every
//! variant surviving a round trip.

use std::collections::BTreeMap;

use super::{
    Body, Decision, Event, FORMAT_VERSION, Header, HttpEvent, SessionEvent, SqlEvent,
    TerminalEvent, write_line,
};

fn header() -> Header {
    Header {
        v: FORMAT_VERSION,
        session: "s-01".into(),
        started_at_ms: 1_767_225_600_000,
        subject: "alice@example.com".into(),
        auth: "oidc".into(),
        ci: BTreeMap::from([("repository".into(), "acme/shop".into())]),
        resource: "orders-db".into(),
        kind: "postgres".into(),
        role: "read".into(),
        grant: "g-7".into(),
        client: "10.0.0.5:51324".into(),
    }
}

fn line<T: serde::Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    write_line(&mut out, value).expect("serializes");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn header_is_tagged_and_round_trips() {
    let text = line(&header());
    assert_eq!(
        text,
        concat!(
            r#"{"type":"header","v":1,"session":"s-01","started_at_ms":1767225600000,"#,
            r#""subject":"alice@example.com","auth":"oidc","ci":{"repository":"acme/shop"},"#,
            r#""resource":"orders-db","kind":"postgres","role":"read","grant":"g-7","#,
            r#""client":"10.0.0.5:51324"}"#,
            "\n"
        )
    );
    let back: Header = serde_json::from_str(text.trim_end()).expect("parses");
    assert_eq!(back, header());
}

#[test]
fn header_is_not_an_event_and_an_event_is_not_a_header() {
    let header_line = line(&header());
    assert!(serde_json::from_str::<Event>(&header_line).is_err());
    let event_line = line(&Event {
        t: 1,
        n: Some(1),
        body: SessionEvent::Note {
            message: "hi".into(),
        }
        .into(),
    });
    assert!(serde_json::from_str::<Header>(&event_line).is_err());
}

#[test]
fn header_ignores_unknown_fields_and_defaults_ci() {
    let text = r#"{"type":"header","v":1,"session":"s","started_at_ms":0,"subject":"x","auth":"oidc","resource":"r","kind":"tcp","role":"a","grant":"g","client":"c","future":true}"#;
    let header: Header = serde_json::from_str(text).expect("parses");
    assert!(header.ci.is_empty());
    assert_eq!(header.kind, "tcp");
}

#[test]
fn statement_shape() {
    let event = Event {
        t: 12,
        n: Some(1),
        body: SqlEvent::Statement {
            seq: 1,
            sql: "select 1".into(),
            protocol: "simple".into(),
            decision: Decision::Allowed,
        }
        .into(),
    };
    assert_eq!(
        line(&event),
        "{\"t\":12,\"n\":1,\"type\":\"statement\",\"seq\":1,\"sql\":\"select 1\",\"protocol\":\"simple\",\"decision\":{\"outcome\":\"allowed\"}}\n"
    );
    let blocked = Decision::Blocked {
        rule: "no-ddl".into(),
        message: "DDL is not allowed".into(),
    };
    assert_eq!(
        serde_json::to_string(&blocked).expect("serializes"),
        r#"{"outcome":"blocked","rule":"no-ddl","message":"DDL is not allowed"}"#
    );
}

#[test]
fn every_variant_round_trips() {
    let bodies: Vec<Body> = vec![
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
        SqlEvent::Statement {
            seq: 2,
            sql: "drop table t".into(),
            protocol: "simple".into(),
            decision: Decision::Denied {
                rule: "ddl".into(),
                reason: "timed out".into(),
                request: "r-2".into(),
            },
        }
        .into(),
        SqlEvent::Result {
            seq: 1,
            tag: "UPDATE 1".into(),
            rows: Some(1),
            duration_ms: 3,
        }
        .into(),
        SqlEvent::Result {
            seq: 3,
            tag: "BEGIN".into(),
            rows: None,
            duration_ms: 0,
        }
        .into(),
        SqlEvent::Error {
            seq: None,
            code: "08006".into(),
            message: "connection lost".into(),
            duration_ms: None,
        }
        .into(),
        SqlEvent::Error {
            seq: Some(2),
            code: "42P01".into(),
            message: "relation \"t\" does not exist".into(),
            duration_ms: Some(1),
        }
        .into(),
        SqlEvent::Rows {
            seq: 4,
            columns: vec!["id".into(), "note".into()],
            rows: vec![
                vec![Some("1".into()), None],
                vec![Some("2".into()), Some("é\u{0}".into())],
            ],
            truncated: true,
        }
        .into(),
        TerminalEvent::Output {
            data: b"\x1b[1mhello\r\n\xe2\x82".to_vec(),
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
            path: "/api/v1/pods".into(),
            query: "labelSelector=app%3Dweb".into(),
            decision: Decision::Allowed,
        }
        .into(),
        HttpEvent::HttpResponse {
            seq: 1,
            status: 403,
            bytes: 0,
            duration_ms: 4,
            body: Some("{\"kind\":\"Status\"}".into()),
            body_truncated: false,
        }
        .into(),
        SessionEvent::Note {
            message: "3 events dropped".into(),
        }
        .into(),
        SessionEvent::End {
            reason: "client closed".into(),
            bytes_up: 10,
            bytes_down: u64::MAX,
            statements: 4,
        }
        .into(),
    ];
    for (t, body) in bodies.into_iter().enumerate() {
        let event = Event {
            t: t as u64 * 1000,
            n: (t % 2 == 0).then_some(t as u64 + 1),
            body,
        };
        let text = line(&event);
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        let back: Event = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, event);
    }
}

#[test]
fn absent_optional_fields_are_left_out() {
    let event = Event {
        t: 1,
        n: None,
        body: SqlEvent::Error {
            seq: None,
            code: "08006".into(),
            message: "gone".into(),
            duration_ms: None,
        }
        .into(),
    };
    assert_eq!(
        line(&event),
        "{\"t\":1,\"type\":\"error\",\"code\":\"08006\",\"message\":\"gone\"}\n"
    );
    let with_nulls = r#"{"t":1,"type":"result","seq":2,"tag":"BEGIN","rows":null,"duration_ms":0}"#;
    let back: Event = serde_json::from_str(with_nulls).expect("parses");
    assert!(matches!(
        back.body,
        Body::Sql(SqlEvent::Result { rows: None, .. })
    ));
}

#[test]
fn unknown_event_type_parses_as_unknown_not_a_panic() {
    let event = serde_json::from_str::<Event>(r#"{"t":1,"n":4,"type":"marker","label":"x"}"#);
    assert!(matches!(
        event,
        Ok(Event {
            n: Some(4),
            body: Body::Unknown,
            ..
        })
    ));
}
