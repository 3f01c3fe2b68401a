//! A small but real HTTP/1.1 upstream for testing the broker's HTTP engine: the broker proxies
//! to it, and tests assert on what reached it ([`FakeHttp::requests`]) and on what came back.
//! Plain HTTP or HTTPS with its own CA (rcgen; certificate for `localhost` and `127.0.0.1`),
//! hyper 1 on its own thread and tokio runtime, keep-alive, every request logged.
//!
//! Served:
//! - `/whoami` (any method): JSON `{"method", "path", "headers"}` with every header received,
//!   names lowercased, repeated headers joined with `", "`.
//! - `GET /customers`: [`CUSTOMERS_JSON`] with Content-Length. Its personal data is listed in
//!   [`PLANTED`] so tests can assert none of it leaks past masking.
//! - `GET /customers/chunked`: the same bytes chunked, in four chunks 50 ms apart, cut inside a
//!   name, an SSN and an email so no cut falls on a convenient boundary.
//! - `GET /customers/gzip`: the same, gzip-compressed with `Content-Encoding: gzip`, always,
//!   whatever `Accept-Encoding` says (a server that ignores the client's preference).
//! - `GET /events?n=N&gap_ms=G`: `text/event-stream`, N events (default 3) G ms apart (default
//!   300), each flushed as its own chunk: `id: i\nevent: customer\ndata:
//!   {"n":i,"email":"user{i}@example.com"}\n\n` for i = 1..=N, then the response ends.
//! - `GET /ws`: WebSocket (RFC 6455) echo: text and binary messages come back (fragments
//!   reassembled into one frame), ping gets pong, close gets close with the same code. 400
//!   without the upgrade headers.
//! - `POST|PUT|PATCH /items/{id}`: JSON `{"method", "id", "body_len", "body"}`, `body` being the
//!   request body parsed as JSON, or `null`. `DELETE /items/{id}`: `{"deleted": id}`.
//! - `GET /small`: `{"ok":true}`, for benchmarks.
//! - `GET /big?mb=N`: N MiB (default 1) of `application/octet-stream` with Content-Length, in
//!   64 KiB chunks; byte `i` is [`big_byte`]`(i)`, so a client can check every byte.
//! - `GET /big.json?mb=N`: about N MiB of valid JSON
//!   `{"rows":[{"id":0,"email":"u0@example.com","note":"..."},...]}`, chunked, no length.
//! - Anything else: 404 `{"error":"not found","path":...}`. Bad query numbers: 400; request
//!   bodies over 8 MiB: 413.
//!
//! Not served: HTTP/2 (TLS offers only `http/1.1` in ALPN), HEAD (404; it is routed like any
//! other method), content negotiation of any kind, ranges, conditional requests, cookies,
//! authentication, WebSocket extensions and subprotocols, request timeouts or connection limits
//! (this is test scaffolding: it trusts its clients).
//!
//! Layout: `server` (log, routes, answers), `body` (streamed and generated bodies), `echo` +
//! `ws` (WebSocket session and its pure codec).

mod body;
mod echo;
mod server;
pub mod ws;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

pub use crate::body::big_byte;
use crate::server::Shared;

/// The body of `/customers` (and, encoded differently, `/customers/chunked` and
/// `/customers/gzip`).
pub const CUSTOMERS_JSON: &str = r#"{"customers":[{"id":1,"name":"Ada Lovelace","email":"ada@example.com","card":"4111 1111 1111 1111","ssn":"078-05-1120"},{"id":2,"name":"Alan Turing","email":"alan@example.com","card":"5500 0000 0000 0004","ssn":"219-09-9999"}],"next":null}"#;

/// The personal data planted in [`CUSTOMERS_JSON`]: emails, card numbers and SSNs, exactly as
/// they appear there.
pub const PLANTED: &[&str] = &[
    "ada@example.com",
    "alan@example.com",
    "4111 1111 1111 1111",
    "5500 0000 0000 0004",
    "078-05-1120",
    "219-09-9999",
];

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `POST`...
    pub method: String,
    /// URL path, still percent-encoded.
    pub path: String,
    /// Raw (still encoded) query string, empty when none.
    pub query: String,
    /// Every header: lowercased name, value as received (lossily decoded if not UTF-8). Names
    /// in order of first appearance; repeated headers are adjacent, in their order.
    pub headers: Vec<(String, String)>,
    /// Length of the request body (0 until it has been read).
    pub body_len: usize,
    /// The response status (101 for WebSocket upgrades; 200 for streamed responses as soon as
    /// their head is ready); 0 while still being answered.
    pub status: u16,
    /// Which connection the request came on, numbered from 1 in accept order: requests that
    /// share a number shared a connection (keep-alive).
    pub connection: u64,
}

impl Logged {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake upstream. Dropping it stops the server and ends every open connection.
#[derive(Debug)]
pub struct FakeHttp {
    /// The request log, shared with the server.
    shared: Arc<Shared>,
    /// `127.0.0.1:PORT`.
    address: String,
    /// PEM of the CA that signed the server certificate (TLS mode only).
    ca_pem: Option<String>,
    /// Tells the accept loop to stop.
    shutdown: Option<oneshot::Sender<()>>,
    /// The runtime thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl FakeHttp {
    /// Starts plain HTTP on `127.0.0.1` with a free port. Panics if it cannot (this is test
    /// scaffolding).
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts HTTPS on `127.0.0.1` with a free port, a fresh CA and a certificate for
    /// `localhost` and `127.0.0.1`. Panics if it cannot.
    pub fn start_tls() -> Self {
        let (config, ca_pem) = tls_config().expect("TLS set-up for the fake HTTP server");
        Self::launch(Some((config, ca_pem)))
    }

    fn launch(tls: Option<(Arc<rustls::ServerConfig>, String)>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("listener address").to_string();
        let shared = Arc::new(Shared::default());
        let (config, ca_pem) = tls.unzip();
        let (shutdown, stop) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-http".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-http-worker")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fake HTTP server");
                rt.block_on(serve(listener, config, serving, stop));
            })
            .expect("spawning the fake HTTP server thread");
        FakeHttp {
            shared,
            address,
            ca_pem,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.address)
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// PEM of the CA that signed the server certificate; `None` in plain mode.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns its path. Panics in plain mode.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let pem = self
            .ca_pem
            .as_ref()
            .expect("write_ca needs a server started with FakeHttp::start_tls");
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).expect("writing the fake's CA certificate");
        path
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections until told to stop; each is (TLS, then) HTTP/1.1 with upgrades. When it
/// returns, the runtime is dropped and every connection task with it.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let connection = connections.fetch_add(1, Ordering::Relaxed) + 1;
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(tcp, shared, connection).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve_connection(stream, shared, connection).await;
                    }
                }
            }
        });
    }
}

/// HTTP/1.1 on one connection, keep-alive and upgrades included.
async fn serve_connection<S>(io: S, shared: Arc<Shared>, connection: u64)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = service_fn(move |req| server::handle(shared.clone(), connection, req));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// A CA, a server certificate for `localhost` and `127.0.0.1` signed by it, and the rustls
/// config.
fn tls_config() -> Result<(Arc<rustls::ServerConfig>, String), Box<dyn std::error::Error>> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice-fake-http-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    // rcgen makes "127.0.0.1" an IP address SAN and "localhost" a DNS name SAN.
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice-fake-http");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let chain = vec![cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    // HTTP/1.1 only: the WebSocket upgrade needs it, and this fake serves nothing else.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_json_holds_every_planted_value() {
        let v: serde_json::Value = serde_json::from_str(CUSTOMERS_JSON).expect("valid JSON");
        assert_eq!(v["customers"].as_array().map(Vec::len), Some(2));
        assert!(v["next"].is_null());
        for p in PLANTED {
            assert!(CUSTOMERS_JSON.contains(p), "{p} not in CUSTOMERS_JSON");
        }
    }
}
