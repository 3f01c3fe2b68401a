//! The fake checked against real curl (`$CURL`, default `/usr/bin/curl`: 7.88 here). Every run
//! ignores `~/.curlrc` (`-q`) and proxy variables (`--noproxy '*'`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_fake_http::{CUSTOMERS_JSON, FakeHttp, PLANTED, big_byte};

fn curl(args: &[&str]) -> Command {
    let bin = std::env::var("CURL").unwrap_or_else(|_| "/usr/bin/curl".into());
    let mut c = Command::new(bin);
    c.args(["-q", "--noproxy", "*", "-sS", "--max-time", "60"])
        .args(args);
    c
}

fn run(args: &[&str]) -> Output {
    let out = curl(args)
        .output()
        .expect("curl runs (set CURL to its path)");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn customers() -> Value {
    json(CUSTOMERS_JSON.as_bytes())
}

/// `curl -H 'X-Probe: 1' URL/whoami`: the header is echoed and logged.
fn whoami_echoes(http: &FakeHttp, extra: &[&str]) {
    let url = format!("{}/whoami?q=1", http.url());
    let mut args = extra.to_vec();
    args.extend([
        "-H",
        "X-Probe: 1",
        "-H",
        "X-Twice: a",
        "-H",
        "X-Twice: b",
        &url,
    ]);
    let v = json(&run(&args).stdout);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/whoami");
    assert_eq!(v["headers"]["x-probe"], "1", "{v}");
    assert_eq!(v["headers"]["x-twice"], "a, b", "{v}");
    assert_eq!(v["headers"]["host"], http.address());
    assert!(
        v["headers"]["user-agent"]
            .as_str()
            .is_some_and(|u| u.starts_with("curl/"))
    );
    let log = http.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    let r = &log[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_str()),
        ("GET", "/whoami", "q=1")
    );
    assert_eq!((r.status, r.body_len), (200, 0));
    assert_eq!(r.header("X-Probe"), Some("1"));
    let twice: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "x-twice")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(twice, ["a", "b"]);
}

#[test]
fn whoami_plain() {
    let http = FakeHttp::start();
    assert!(http.url().starts_with("http://127.0.0.1:"));
    assert!(http.ca_pem().is_none());
    whoami_echoes(&http, &[]);
}

#[test]
fn whoami_tls_with_the_fakes_ca() {
    let http = FakeHttp::start_tls();
    assert_eq!(http.url(), format!("https://{}", http.address()));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = http.write_ca(dir.path());
    assert_eq!(std::fs::read_to_string(&ca).ok(), http.ca_pem());
    let ca = ca.to_str().expect("UTF-8 temp path");
    // Without the CA, curl refuses the certificate: the TLS really is the fake's own.
    let refused = curl(&[&format!("{}/whoami", http.url())])
        .output()
        .expect("curl runs");
    assert!(!refused.status.success());
    assert_eq!(
        refused.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // The handshake failed before any request was sent.
    assert!(http.requests().is_empty());
    whoami_echoes(&http, &["--cacert", ca]);
    // The certificate also names localhost.
    let port = http
        .address()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let out = run(&["--cacert", ca, &format!("https://localhost:{port}/small")]);
    assert_eq!(json(&out.stdout), serde_json::json!({"ok": true}));
}

#[test]
fn customers_plain_chunked_and_gzip() {
    let http = FakeHttp::start();
    let url = http.url();
    let plain = run(&["-D", "-", &format!("{url}/customers")]);
    let text = String::from_utf8_lossy(&plain.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers then body");
    assert!(
        head.contains(&format!("content-length: {}", CUSTOMERS_JSON.len())),
        "{head}"
    );
    assert_eq!(body, CUSTOMERS_JSON);

    let chunked = run(&[
        "-D",
        "-",
        "--compressed",
        &format!("{url}/customers/chunked"),
    ]);
    let text = String::from_utf8_lossy(&chunked.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers then body");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(json(body.as_bytes()), customers());

    let gz = run(&["-D", "-", "--compressed", &format!("{url}/customers/gzip")]);
    let text = String::from_utf8_lossy(&gz.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers then body");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(json(body.as_bytes()), customers());

    // Without --compressed curl asks for nothing and decodes nothing: the bytes are gzip.
    let raw = run(&[&format!("{url}/customers/gzip")]).stdout;
    assert_eq!(raw.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");
    assert!(serde_json::from_slice::<Value>(&raw).is_err());
    let raw_text = String::from_utf8_lossy(&raw);
    for p in PLANTED {
        assert!(!raw_text.contains(p), "{p} visible in the compressed body");
    }
    let gz_req = http.requests().pop().expect("logged");
    assert_eq!(gz_req.header("accept-encoding"), None);
    assert_eq!(gz_req.status, 200);
}

#[test]
fn events_arrive_one_by_one() {
    let http = FakeHttp::start();
    let mut child = curl(&["-N", &format!("{}/events?n=3&gap_ms=700", http.url())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("reading curl") > 0,
            "EOF before an event"
        );
        first.push_str(&line);
    }
    assert_eq!(line, "data: {\"n\":1,\"email\":\"user1@example.com\"}\n");
    // The first event is here while the response is still going: nothing of the last event
    // has been read along with it, and curl is still waiting for it.
    assert!(!String::from_utf8_lossy(out.buffer()).contains("id: 3"));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "curl already exited after the first event"
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("reading curl");
    let status = child.wait().expect("curl exits");
    assert!(status.success(), "curl failed");
    let all = first + &rest;
    let expected: String = (1..=3)
        .map(|i| format!("id: {i}\nevent: customer\ndata: {{\"n\":{i},\"email\":\"user{i}@example.com\"}}\n\n"))
        .collect();
    assert_eq!(all, expected);
    let r = http.requests().pop().expect("logged");
    assert_eq!(
        (r.path.as_str(), r.query.as_str(), r.status),
        ("/events", "n=3&gap_ms=700", 200)
    );
}

/// Reads one unmasked server frame: (fin, opcode, payload).
fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).expect("frame head");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).expect("length");
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).expect("length");
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).expect("length fits")];
    s.read_exact(&mut payload).expect("payload");
    (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
}

fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
fn websocket_echo_over_raw_tcp() {
    let http = FakeHttp::start();
    let mut s = TcpStream::connect(http.address()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The key and accept value of RFC 6455's own example.
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        http.address()
    )
    .expect("handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");

    s.write_all(&masked_frame(true, 0x1, b"hello, fake"))
        .expect("text");
    assert_eq!(read_frame(&mut s), (true, 0x1, b"hello, fake".to_vec()));
    // A fragmented binary message comes back whole, in one frame.
    let long: Vec<u8> = (0..300u16).map(|i| (i % 256) as u8).collect();
    s.write_all(&masked_frame(false, 0x2, &long[..100]))
        .expect("first fragment");
    s.write_all(&masked_frame(true, 0x0, &long[100..]))
        .expect("last fragment");
    assert_eq!(read_frame(&mut s), (true, 0x2, long));
    s.write_all(&masked_frame(true, 0x9, b"are you there"))
        .expect("ping");
    assert_eq!(read_frame(&mut s), (true, 0xA, b"are you there".to_vec()));
    s.write_all(&masked_frame(true, 0x8, &1000u16.to_be_bytes()))
        .expect("close");
    assert_eq!(
        read_frame(&mut s),
        (true, 0x8, 1000u16.to_be_bytes().to_vec())
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("server closes");
    assert!(rest.is_empty(), "{rest:?}");
    let r = http.requests().pop().expect("logged");
    assert_eq!((r.path.as_str(), r.status), ("/ws", 101));

    // A plain GET of /ws is refused.
    let out = run(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/ws", http.url()),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
}

#[test]
fn items_and_not_found() {
    let http = FakeHttp::start();
    let url = http.url();
    for method in ["POST", "PUT", "PATCH"] {
        let v = json(
            &run(&[
                "-X",
                method,
                "-H",
                "content-type: application/json",
                "--data-binary",
                r#"{"name":"x","tags":[1,2]}"#,
                &format!("{url}/items/42"),
            ])
            .stdout,
        );
        assert_eq!(
            v,
            serde_json::json!({"method": method, "id": "42", "body_len": 25, "body": {"name": "x", "tags": [1, 2]}})
        );
    }
    let v = json(
        &run(&[
            "-X",
            "POST",
            "--data-binary",
            "not json",
            &format!("{url}/items/a"),
        ])
        .stdout,
    );
    assert_eq!(
        v,
        serde_json::json!({"method": "POST", "id": "a", "body_len": 8, "body": null})
    );
    let v = json(&run(&["-X", "DELETE", &format!("{url}/items/42")]).stdout);
    assert_eq!(v, serde_json::json!({"deleted": "42"}));
    let log = http.requests();
    assert_eq!(
        log.iter().map(|r| r.body_len).collect::<Vec<_>>(),
        [25, 25, 25, 8, 0]
    );

    for path in ["/nope", "/items/", "/items/1/2", "/customers/x"] {
        let out = run(&["-w", "\n%{http_code}", &format!("{url}{path}")]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("body and code");
        assert_eq!(code, "404", "{path}");
        assert_eq!(
            json(body.as_bytes()),
            serde_json::json!({"error": "not found", "path": path})
        );
    }
    // GET on an item and POST on a GET route are not served either.
    let out = run(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}/items/42"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let out = run(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-d",
        "x",
        &format!("{url}/small"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let out = run(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}/events?n=x"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
}

#[test]
fn keep_alive_across_chunked_responses() {
    let http = FakeHttp::start();
    let url = http.url();
    let out = run(&[
        "-v",
        &format!("{url}/customers/chunked"),
        &format!("{url}/small"),
        &format!("{url}/events?n=2&gap_ms=10"),
        &format!("{url}/nope"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // curl 7.88: "* Re-using existing connection #0 with host 127.0.0.1"; newer curls drop
    // the number.
    assert_eq!(
        stderr.matches("Re-using existing connection").count(),
        3,
        "{stderr}"
    );
    let log = http.requests();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log.iter().all(|r| r.connection == log[0].connection),
        "{log:?}"
    );
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 404]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(CUSTOMERS_JSON), "{stdout}");
    assert!(
        stdout.ends_with(r#"{"error":"not found","path":"/nope"}"#),
        "{stdout}"
    );

    // Two separate curl runs are two connections.
    run(&[&format!("{url}/small")]);
    let log = http.requests();
    assert_ne!(log[4].connection, log[0].connection);
}

#[test]
fn big_bodies() {
    let http = FakeHttp::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("big");
    let file_arg = file.to_str().expect("UTF-8 temp path");
    let out = run(&[
        "-D",
        "-",
        "-o",
        file_arg,
        &format!("{}/big?mb=2", http.url()),
    ]);
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("content-length: 2097152\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream\r\n"),
        "{head}"
    );
    let bytes = std::fs::read(&file).expect("downloaded file");
    assert_eq!(bytes.len(), 2 << 20);
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, b)| *b == big_byte(i as u64))
    );

    let out = run(&[
        "-D",
        "-",
        "-o",
        file_arg,
        &format!("{}/big.json", http.url()),
    ]);
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    let bytes = std::fs::read(&file).expect("downloaded file");
    assert!(
        bytes.len() >= 1 << 20 && bytes.len() < (1 << 20) + 200,
        "{}",
        bytes.len()
    );
    let v = json(&bytes);
    let rows = v["rows"].as_array().expect("rows");
    assert!(rows.len() > 5000, "{}", rows.len());
    assert_eq!(rows[7]["email"], "u7@example.com");
}

#[test]
fn dropping_the_fake_stops_it() {
    let http = FakeHttp::start();
    let address = http.address();
    run(&[&format!("{}/small", http.url())]);
    drop(http);
    assert!(TcpStream::connect(address).is_err());
}
