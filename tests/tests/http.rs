//! `kind: http` end to end: real curl through `sluice connect`'s local tunnel, the broker's
//! HTTP engine, and the test crate's HTTP service (which logs every request it receives, so a
//! refused call is proven never to have arrived).

use sluice_fake_http::{FakeHttp, PLANTED};
use sluice_tests::{Broker, BrokerBuilder, Cli};
use std::process::Output;

const UPSTREAM_TOKEN: &str = "upstream-bearer-7f3a9c1e";
const API_KEY: &str = "api-key-51c0ffee";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Setup {
    fake: FakeHttp,
    _ca_dir: tempfile::TempDir,
    broker: Broker,
    cli: Cli,
}

fn setup(fake: FakeHttp) -> Setup {
    setup_with(fake, BrokerBuilder::new())
}

/// [`setup`] on `builder` (e.g. with the store pinned to SQLite).
fn setup_with(fake: FakeHttp, builder: BrokerBuilder) -> Setup {
    let ca_dir = tempfile::tempdir().expect("ca dir");
    let body = match fake.ca_pem() {
        Some(_) => format!(
            "    address: {}\n    ca: {}\n    server_name: localhost\n",
            fake.address(),
            fake.write_ca(ca_dir.path()).display()
        ),
        None => format!("    address: {}\n    plaintext: true\n", fake.address()),
    };
    let body = format!(
        "{body}    inject:\n      bearer: env:API_TOKEN\n      headers: {{X-Api-Key: env:API_KEY}}\n    identity: {{header: Sluice-Identity, ttl: 2m}}\n"
    );
    let broker = builder
        .http(
            "api",
            &body,
            &[("API_TOKEN", UPSTREAM_TOKEN), ("API_KEY", API_KEY)],
        )
        .role("ops", "      max_ttl: 1h\n")
        .role(
            "reader",
            "      max_ttl: 1h\n      http: {profile: http-read-only}\n",
        )
        .role(
            "operator",
            "      max_ttl: 1h\n      http:\n        block: [{name: no-admin, paths: [/admin, /admin/*]}]\n        approve: [{name: deletes, methods: [DELETE], paths: [/items/*]}]\n        approvers: [leads]\n",
        )
        .role(
            "masked",
            "      max_ttl: 1h\n      http: {masking: pii, mask: [\"$.customers[*].email\"], record_bodies: true}\n",
        )
        .policy_extra(
            "  masking:\n    pii:\n      detectors:\n        - {name: cards, detector: card, style: redact}\n        - {name: ssns, detector: ssn, style: redact}\n        - {name: mails, detector: email, style: redact}\n",
        )
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["api"],
            &["ops", "reader", "operator", "masked"],
            "",
        )
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    Setup {
        fake,
        _ca_dir: ca_dir,
        broker,
        cli,
    }
}

impl Setup {
    /// `sluice connect api --role ROLE --exec sh -c SCRIPT`; the script sees `$SLUICE_URL` and
    /// `$SLUICE_HTTP_HEADER`.
    fn run(&self, role: &str, script: &str) -> Output {
        self.cli.run(&[
            "connect", "api", "--role", role, "--exec", "sh", "-c", script,
        ])
    }

    /// `curl -s ARGS $SLUICE_URL/PATH` through a tunnel of `role`: (status, body).
    fn curl(&self, role: &str, args: &str, path: &str) -> (u16, String) {
        let out = self.run(
            role,
            &format!(
                "curl -q -s --noproxy '*' -o /dev/stdout -w '\\n%{{http_code}}' -H \"$SLUICE_HTTP_HEADER\" {args} \"$SLUICE_URL{path}\""
            ),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let all = text(&out.stdout);
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

#[test]
fn the_broker_injects_its_credential_and_a_verifiable_assertion_and_drops_forgeries() {
    let s = setup(FakeHttp::start_tls());
    let (code, body) = s.curl(
        "ops",
        "-H 'Sluice-Identity: forged' -H 'X-Api-Key: mine'",
        "/whoami",
    );
    assert_eq!(code, 200, "{body}");
    // The service received the broker's credential, not the client's values...
    let logged = s.fake.requests();
    let whoami = logged.iter().find(|r| r.path == "/whoami").expect("logged");
    assert_eq!(
        whoami.header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
    );
    assert_eq!(whoami.header("x-api-key"), Some(API_KEY));
    assert_eq!(whoami.header("host"), Some("localhost"));
    let assertion = whoami
        .header("sluice-identity")
        .expect("an assertion")
        .to_owned();
    assert_ne!(assertion, "forged");
    let assertion = assertion.as_str();
    // ...and its echo reaches the client with the credentials replaced.
    let seen: serde_json::Value = serde_json::from_str(&body).expect("json");
    let headers = &seen["headers"];
    assert_eq!(
        headers["authorization"],
        format!("Bearer {}", "*".repeat(UPSTREAM_TOKEN.len()))
    );
    assert_eq!(headers["x-api-key"], "*".repeat(API_KEY.len()));
    assert!(
        !body.contains(UPSTREAM_TOKEN) && !body.contains(API_KEY),
        "{body}"
    );

    // The assertion verifies with the key the broker publishes, for this resource only.
    let jwks = std::process::Command::new("curl")
        .args(["-q", "-s", "--noproxy", "*", "--cacert"])
        .arg(s.broker.ca())
        .arg(format!("{}/.well-known/jwks.json", s.broker.url()))
        .output()
        .expect("curl jwks");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&jwks.stdout)));
    let header = jsonwebtoken::decode_header(assertion).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["sluice:api"]);
    validation.set_issuer(&["sluiced"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
        .expect("the assertion verifies")
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["groups"], serde_json::json!(["eng"]));
    assert_eq!(claims["role"], "ops");
    assert!(claims["grant"].as_str().is_some_and(|g| !g.is_empty()));
    validation.set_audience(&["sluice:other"]);
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation).is_err(),
        "another resource's audience is refused"
    );

    // A client without the tunnel's token gets 401 and the service hears nothing.
    let before = s.fake.requests().len();
    let out = s.run(
        "ops",
        "curl -q -s --noproxy '*' -w '%{http_code}' -o /dev/null -H 'Authorization: Bearer not-the-token' \"$SLUICE_URL/whoami\"",
    );
    assert_eq!(text(&out.stdout).trim(), "401", "{}", text(&out.stderr));
    assert_eq!(s.fake.requests().len(), before);

    // Neither credential reaches the broker's recordings or log.
    let written = sluice_tests::files_text(s.broker.dir());
    for secret in [UPSTREAM_TOKEN, API_KEY] {
        assert!(
            !written.contains(secret),
            "{secret} was written by the broker"
        );
    }
}

#[test]
fn rules_block_and_hold_by_method_and_path_and_evasions_never_arrive() {
    let s = setup(FakeHttp::start());
    let (code, _) = s.curl("reader", "", "/customers");
    assert_eq!(code, 200);
    let (code, body) = s.curl("reader", "-X DELETE", "/items/1");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http:not-allowed"), "{body}");

    for path in [
        "/admin",
        "/admin/users",
        "/%61dmin/users",
        "/items/../admin/x",
        "/admin;a=b",
        "/items%2f..%2fadmin",
        "/admin.",
        "/admin%20",
        "//admin",
    ] {
        let (code, body) = s.curl("operator", "--path-as-is", path);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(
            body.contains("no-admin") || body.contains("http:suspicious-path"),
            "{path}: {body}"
        );
    }
    let (code, body) = s.curl(
        "operator",
        "-X POST -H 'X-HTTP-Method-Override: DELETE'",
        "/items/3",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http:method-override"), "{body}");
    let (code, body) = s.curl("operator", "-H 'X-Original-URL: /admin/users'", "/items");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http:method-override"), "{body}");
    let (code, body) = s.curl("operator", "-X TRACE", "/whoami");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http:method"), "{body}");
    assert!(
        !s.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("admin") || r.method == "TRACE" || r.path == "/items/3"),
        "{:#?}",
        s.fake.requests()
    );

    // A held DELETE waits for an approver: denied, it never arrives; approved, it runs.
    let bob = Cli::new(&s.broker);
    bob.login(&s.broker.token("bob", &["leads"], "1h"));
    let spawn = || {
        s.cli
            .cmd()
            .args([
                "connect",
                "api",
                "--role",
                "operator",
                "--exec",
                "sh",
                "-c",
                "curl -q -s --noproxy '*' -w '\\n%{http_code}' -X DELETE -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/items/7\"",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sluice connect")
    };
    let waiting = spawn();
    let hold = bob.first_hold();
    assert_eq!(hold["kind"], "http", "{hold}");
    let what = hold["what"]
        .as_str()
        .or(hold["sql"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(what.contains("DELETE /items/7"), "{hold}");
    let id = hold["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["deny", &id, "--reason", "change freeze"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("curl");
    let printed = text(&out.stdout);
    assert!(printed.ends_with("403"), "{printed}");
    assert!(printed.contains("change freeze"), "{printed}");
    assert!(!s.fake.requests().iter().any(|r| r.method == "DELETE"));

    let waiting = spawn();
    let id = bob.first_hold()["id"].as_str().expect("id").to_owned();
    let out = bob.run(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = waiting.wait_with_output().expect("curl");
    let printed = text(&out.stdout);
    assert!(printed.ends_with("200"), "{printed}");
    assert!(printed.contains("\"deleted\":\"7\""), "{printed}");
}

#[test]
fn masking_covers_json_whole_chunked_and_gzip_and_event_streams_line_by_line() {
    let s = setup(FakeHttp::start());
    for path in ["/customers", "/customers/chunked", "/customers/gzip"] {
        let (code, body) = s.curl("masked", "--compressed", path);
        assert_eq!(code, 200, "{path}: {body}");
        let value: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(value["customers"][0]["name"], "Ada Lovelace", "{body}");
        assert_eq!(value["customers"][0]["email"], "****", "{body}");
        for planted in PLANTED {
            assert!(!body.contains(planted), "{path}: {planted} in {body}");
        }
    }
    // The same service without masking: the values are there (the test can fail).
    let (_, body) = s.curl("ops", "--compressed", "/customers/gzip");
    assert!(body.contains(PLANTED[0]), "{body}");

    // The recording keeps each answer as the client got it: masked for the masking role.
    let sessions = s.cli.ended_sessions(4);
    let masked_bodies: Vec<String> = sessions
        .iter()
        .filter(|session| session["role"] == "masked")
        .flat_map(|session| {
            let id = session["id"].as_str().expect("id");
            let shown = s.cli.run(&["sessions", "show", id, "--output", "json"]);
            let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
            shown["events"].as_array().cloned().unwrap_or_default()
        })
        .filter(|e| e["type"] == "http_response")
        .filter_map(|e| e["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(masked_bodies.len(), 3, "{masked_bodies:#?}");
    for body in &masked_bodies {
        assert!(body.contains("Ada Lovelace"), "{body}");
        for planted in PLANTED {
            assert!(!body.contains(planted), "{planted} recorded in {body}");
        }
    }

    // Server-sent events are masked and forwarded as they happen, not when the stream ends.
    let mut child = s
        .cli
        .cmd()
        .args([
            "connect",
            "api",
            "--role",
            "masked",
            "--exec",
            "sh",
            "-c",
            "curl -q -s -N --noproxy '*' -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/events?n=3&gap_ms=1500\"",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice connect");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    loop {
        first.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut first).expect("read");
        assert!(n > 0, "the stream ended before any event");
        if first.starts_with("data:") {
            break;
        }
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the first event arrived only when the stream was over"
    );
    assert!(first.contains("\"n\":1"), "{first}");
    assert!(!first.contains("@example.com"), "{first}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("rest");
    let _ = child.wait();
    assert_eq!(rest.matches("data:").count(), 2, "{rest}");
    assert!(!rest.contains("@example.com"), "{rest}");

    // A stream the broker cannot mask is not opened for a masking role.
    let (code, body) = s.curl(
        "masked",
        "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='",
        "/ws",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http:masking"), "{body}");
}

#[test]
fn a_websocket_is_relayed_for_a_role_that_does_not_mask() {
    use std::io::{Read, Write};
    let s = setup(FakeHttp::start());
    let connect = s.cli.connect_with("api", &["--role", "ops"]);
    let header = connect.details["header"]
        .as_str()
        .expect("header")
        .to_owned();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", connect.port())).expect("tcp");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        tcp,
        "GET /ws HTTP/1.1\r\nHost: x\r\n{header}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = text(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // One masked text frame, "hello".
    let mask = [1u8, 2, 3, 4];
    let payload: Vec<u8> = b"hello"
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(&payload);
    tcp.write_all(&frame).expect("frame");
    let mut echo = [0u8; 7];
    tcp.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo[..2], &[0x81, 5]);
    assert_eq!(&echo[2..], b"hello");
}

#[test]
fn a_client_that_hangs_up_while_its_tunnel_opens_leaves_no_open_session() {
    // The hang-up must land while the session's record is being opened: a window whose width
    // depends on the store's latency, provoked reliably with SQLite's.
    let s = setup_with(FakeHttp::start(), BrokerBuilder::new().sqlite_store());
    let out = s.cli.run(&[
        "grant", "request", "api", "--role", "ops", "--reason", "test", "--output", "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let granted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let grant = granted["grant"]["id"]
        .as_str()
        .or(granted["id"].as_str())
        .unwrap_or_else(|| panic!("a grant id in {granted}"))
        .to_owned();
    let token = s.broker.token("alice", &["eng"], "10m");
    // Tunnel requests whose client hangs up as soon as the request is sent (openssl s_client
    // closes at the end of its input): hyper drops the request's future on the hang-up, often
    // while the broker still prepares the session, whose record is already open.
    let addr = s.broker.url().trim_start_matches("https://").to_owned();
    let request = format!(
        "GET /v1/tunnel HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: sluice-tunnel/1\r\n\
         Authorization: Bearer {token}\r\nsluice-resource: api\r\nsluice-grant: {grant}\r\n\
         sluice-tunnel-secret: {}\r\n\r\n",
        "s".repeat(43)
    );
    let attempts = 12;
    for _ in 0..attempts {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-CAfile"])
            .arg(s.broker.ca())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_client");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(request.as_bytes()).expect("request");
        drop(stdin);
        assert!(child.wait().expect("s_client").success());
    }
    // Every session the broker started has ended (those the upgrade reached when s_client
    // went; the others when the task that prepared them dropped them). A request through a
    // whole tunnel afterwards gives late preparations time to land in the list first.
    let (code, _) = s.curl("ops", "", "/small");
    assert_eq!(code, 200);
    let sessions = s.cli.ended_sessions(2);
    assert!(sessions.len() <= attempts + 1);
    // Without the fix, hung-up tunnels were dropped while their record was being opened and
    // never reached the list; each one now is, with an end that says what happened.
    assert!(
        sessions
            .iter()
            .any(|s| s["end"] == "closed: the tunnel ended before the session was served"),
        "{}",
        serde_json::Value::Array(sessions)
    );
}
