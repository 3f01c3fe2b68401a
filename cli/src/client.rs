//! The typed client for the broker: JSON API calls over HTTPS and tunnel upgrades.
//!
//! One rustls configuration serves both: it trusts exactly the CA given with `--ca` (or the
//! profile), otherwise the platform's roots. Verification is never turned off.

use crate::exit::{CliError, CliResult, Exit};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::de::DeserializeOwned;
use sluice_shared::grants::{GRANT_HEADER, MAX_WAIT_SECS};
use sluice_shared::{ApiError, ErrorCode, Secret, tunnel};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long connecting to the broker (TCP + TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response head accepted from the broker on a tunnel upgrade.
const MAX_HEAD: usize = 16 * 1024;
/// How long an ordinary API call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// What a long-poll may take beyond the wait it asked for: the broker answers when the wait
/// runs out, so only a broker that stopped answering hits this.
const LONG_POLL_SLACK: Duration = Duration::from_secs(20);

/// A broker endpoint with its TLS trust.
#[derive(Debug, Clone)]
pub struct Broker {
    base: reqwest::Url,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
}

impl Broker {
    /// Validates the URL and loads the CA. Only `https://` URLs are accepted.
    pub fn new(url: &str, ca: Option<&Path>) -> CliResult<Self> {
        let base = reqwest::Url::parse(url).map_err(|e| {
            CliError::new(
                Exit::Usage,
                format!("'{url}' is not a valid broker URL: {e}"),
            )
            .hint("use the form https://HOST:PORT")
        })?;
        if base.scheme() != "https" {
            return Err(CliError::new(
                Exit::Usage,
                format!("the broker URL must use https, not {}", base.scheme()),
            )
            .hint("TLS to the broker is always on: use https://HOST:PORT"));
        }
        let host = base
            .host_str()
            .ok_or_else(|| CliError::new(Exit::Usage, format!("'{url}' has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = base.port_or_known_default().unwrap_or(443);
        let tls = Arc::new(tls_config(ca)?);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| {
                CliError::new(Exit::Failure, format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            base,
            host,
            port,
            tls,
            http,
        })
    }

    /// `host:port` for the `Host` header (IPv6 literals in brackets).
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The broker URL as given.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET path` with the bearer token; the body decoded as `T`, or the broker's error.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&Secret<String>>,
    ) -> CliResult<T> {
        decode(&self.send(self.request(Method::GET, path, token)?).await?)
    }

    /// A long-poll: `GET path` where `path` carries `wait=wait_secs`. The broker holds the
    /// request until something changes or the wait runs out, so this request's timeout is the
    /// wait (at most [`MAX_WAIT_SECS`]) plus [`LONG_POLL_SLACK`], not the usual one.
    pub async fn long_poll<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret<String>,
        wait_secs: u64,
    ) -> CliResult<T> {
        let req = self
            .request(Method::GET, path, Some(token))?
            .timeout(long_poll_timeout(wait_secs));
        decode(&self.send(req).await?)
    }

    /// `POST path` with the bearer token and a JSON body; the answer decoded as `T`, or the
    /// broker's error.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret<String>,
        body: &B,
    ) -> CliResult<T> {
        let req = self.request(Method::POST, path, Some(token))?.json(body);
        decode(&self.send(req).await?)
    }

    /// `POST path` with a JSON body and no token; the answer decoded as `T`, or the broker's
    /// error.
    pub async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<T> {
        let req = self.request(Method::POST, path, None)?.json(body);
        decode(&self.send(req).await?)
    }

    /// `POST path` with the bearer token and no body; success is any 2xx.
    pub async fn post_empty(&self, path: &str, token: &Secret<String>) -> CliResult<()> {
        let req = self.request(Method::POST, path, Some(token))?;
        self.send(req).await.map(drop)
    }

    /// The start of every API request: the URL, and the bearer token if there is one.
    fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret<String>>,
    ) -> CliResult<reqwest::RequestBuilder> {
        let mut req = self.http.request(method, self.url_for(path)?);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        Ok(req)
    }

    fn url_for(&self, path: &str) -> CliResult<reqwest::Url> {
        self.base
            .join(path)
            .map_err(|e| CliError::new(Exit::Failure, format!("bad API path {path}: {e}")))
    }

    /// Sends a request; a 2xx answer's body, or the broker's error.
    async fn send(&self, req: reqwest::RequestBuilder) -> CliResult<bytes::Bytes> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status.as_u16(), &body).into())
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let chain = error_chain(e);
        if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            CliError::new(
                Exit::BrokerUnreachable,
                format!(
                    "the broker at {} presented a certificate this CLI does not trust ({chain})",
                    self.url()
                ),
            )
            .hint("pass --ca with the broker's CA certificate (sluiced init wrote tls/ca.crt)")
        } else {
            CliError::new(
                Exit::BrokerUnreachable,
                format!("cannot reach the broker at {}: {chain}", self.url()),
            )
            .hint("check that sluiced is running and --broker is right")
        }
    }

    /// Opens one tunnel: TCP, TLS, `Upgrade`, naming the grant it uses. Returns the stream after
    /// `101` and any bytes the broker sent after the response head.
    pub async fn open_tunnel(
        &self,
        resource: &str,
        token: &Secret<String>,
        grant: &str,
        secret: Option<&Secret<String>>,
        client_addr: &str,
    ) -> CliResult<(TlsStream<TcpStream>, Vec<u8>)> {
        let unreachable = |reason: String| {
            CliError::new(
                Exit::BrokerUnreachable,
                format!("cannot reach the broker at {}: {reason}", self.url()),
            )
            .hint("check that sluiced is running")
        };
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            crate::tunnel::tune(&tcp).map_err(|e| unreachable(e.to_string()))?;
            let name = ServerName::try_from(self.host.clone())
                .map_err(|e| CliError::new(Exit::Usage, format!("bad broker host: {e}")))?;
            TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    if e.to_string().contains("certificate") {
                        CliError::new(
                            Exit::BrokerUnreachable,
                            format!("the broker at {} presented a certificate this CLI does not trust ({e})", self.url()),
                        )
                        .hint("pass --ca with the broker's CA certificate")
                    } else {
                        unreachable(e.to_string())
                    }
                })
        };
        let mut tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| unreachable("no answer within 10s".into()))??;

        let mut head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: {}\r\nAuthorization: Bearer {}\r\n{}: {}\r\n{}: {}\r\n{}: {}\r\n",
            tunnel::PATH,
            self.authority(),
            tunnel::PROTOCOL,
            token.expose(),
            tunnel::RESOURCE_HEADER,
            resource,
            tunnel::CLIENT_ADDR_HEADER,
            client_addr,
            GRANT_HEADER,
            grant,
        );
        if let Some(s) = secret {
            head.push_str(&format!("{}: {}\r\n", tunnel::SECRET_HEADER, s.expose()));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| unreachable(e.to_string()))?;

        let mut buf = Vec::with_capacity(1024);
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = tls
                .read(&mut chunk)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            if n == 0 {
                return Err(unreachable(
                    "the broker closed the connection during the tunnel handshake".into(),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err(CliError::new(
                    Exit::Failure,
                    "the broker sent an oversized response",
                ));
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let rest = buf[end..].to_vec();
        if status == 101 {
            return Ok((tls, rest));
        }
        // A refusal: read the JSON body (Content-Length bytes).
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0)
            .min(MAX_HEAD);
        let mut body = rest;
        while body.len() < length {
            let mut chunk = [0u8; 1024];
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        Err(api_error(status, &body).into())
    }
}

/// The timeout of a long-poll that asks the broker to wait `wait_secs`: always longer than the
/// wait the broker will honour.
fn long_poll_timeout(wait_secs: u64) -> Duration {
    Duration::from_secs(wait_secs.min(MAX_WAIT_SECS)) + LONG_POLL_SLACK
}

/// A successful answer decoded as `T`.
fn decode<T: DeserializeOwned>(body: &[u8]) -> CliResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("the broker sent an unexpected answer: {e}"),
        )
        .hint("the CLI and broker versions may not match")
    })
}

/// The broker's error body, or a generic one when the body is not an [`ApiError`].
fn api_error(status: u16, body: &[u8]) -> ApiError {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        ApiError::new(
            ErrorCode::Unknown,
            format!("the broker answered HTTP {status} without an explanation"),
        )
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

pub(crate) fn tls_config(ca: Option<&Path>) -> CliResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::new(Exit::Failure, format!("TLS set-up failed: {e}")))?;
    let mut config = match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    CliError::new(
                        Exit::Usage,
                        format!("cannot read the CA file {}: {e}", path.display()),
                    )
                    .hint("pass --ca with a PEM certificate file")
                })?;
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots.add(c).map_err(|e| {
                    CliError::new(
                        Exit::Usage,
                        format!("{} holds an unusable certificate: {e}", path.display()),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("{} holds no certificate", path.display()),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| {
                    CliError::new(
                        Exit::Failure,
                        format!("cannot load the system's CA roots: {e}"),
                    )
                })?
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_outlast_the_wait_the_broker_honours() {
        assert!(long_poll_timeout(25) > Duration::from_secs(25));
        assert!(long_poll_timeout(MAX_WAIT_SECS) > Duration::from_secs(MAX_WAIT_SECS));
        // A wait beyond the cap is cut by the broker, so the timeout need not grow with it.
        assert_eq!(long_poll_timeout(3600), long_poll_timeout(MAX_WAIT_SECS));
    }
}
