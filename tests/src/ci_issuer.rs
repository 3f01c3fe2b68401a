//! A stand-in CI platform on 127.0.0.1: the OpenID discovery document and JWKS that GitHub
//! Actions or GitLab CI publish, and tokens signed the way their jobs receive them.
//!
//! Plain HTTP on loopback (the broker allows `http://` only for `127.0.0.1`/`localhost`). It
//! publishes an RS256 key ([`RSA_KID`]) and an ES256 key ([`EC_KID`]); [`CiIssuer::mint`] signs
//! with one of them, [`CiIssuer::mint_unpublished`] with a key it never publishes (for unknown
//! `kid`s and for a published `kid` on a forged signature). [`CiIssuer::github_claims`] and
//! [`CiIssuer::gitlab_claims`] give the claim sets those platforms really send, to be edited per
//! test. The server stops on [`CiIssuer::stop`] or drop: after that, connections are refused.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{KeyPair, SignatureAlgorithm};
use serde_json::{Value, json};

/// The published RS256 key's `kid` (GitHub and GitLab both sign with RSA).
pub const RSA_KID: &str = "ci-rsa-1";
/// The published ES256 key's `kid`.
pub const EC_KID: &str = "ci-ec-1";

/// A private key with the algorithm it signs with.
#[derive(Debug)]
struct Signer {
    alg: Algorithm,
    encoding: EncodingKey,
}

impl Signer {
    fn generate(alg: Algorithm, rcgen_alg: &'static SignatureAlgorithm) -> Self {
        let pair = KeyPair::generate_for(rcgen_alg).expect("key generation");
        let pem = pair.serialize_pem();
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        Self { alg, encoding }
    }

    /// The public JWK with `kid`, `use: sig` and `alg`, as IdPs publish them.
    fn jwk(&self, kid: &str) -> Value {
        let mut jwk = serde_json::to_value(
            Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK"),
        )
        .expect("json");
        let object = jwk.as_object_mut().expect("jwk object");
        object.insert("kid".into(), Value::from(kid));
        object.insert("use".into(), Value::from("sig"));
        jwk
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({ "alg": format!("{:?}", self.alg), "typ": "JWT", "kid": kid });
        let message = format!("{}.{}", b64_json(&header), b64_json(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signing works");
        format!("{message}.{signature}")
    }
}

/// A running stand-in CI issuer; stopped on drop.
#[derive(Debug)]
pub struct CiIssuer {
    issuer: String,
    rsa: Signer,
    ec: Signer,
    rogue: Signer,
    jwks_hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CiIssuer {
    /// Generates the keys and starts serving on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let rsa = Signer::generate(Algorithm::RS256, &rcgen::PKCS_RSA_SHA256);
        let ec = Signer::generate(Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256);
        let rogue = Signer::generate(Algorithm::RS256, &rcgen::PKCS_RSA_SHA256);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let issuer = format!("http://127.0.0.1:{port}");
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks"),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                "repository", "repository_id", "repository_owner", "run_id", "workflow",
                "event_name", "environment", "job_workflow_ref", "project_path", "pipeline_id"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid"],
        })
        .to_string();
        let jwks = json!({ "keys": [rsa.jwk(RSA_KID), ec.jwk(EC_KID)] }).to_string();

        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            let hits = jwks_hits.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &discovery, &jwks, &hits),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                // The listener drops here: later connections are refused.
            })
        };
        Self {
            issuer,
            rsa,
            ec,
            rogue,
            jwks_hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`: the `iss` of its tokens and the base of its discovery document.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// How many times `/jwks` was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Stops serving and closes the port (idempotent).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// `claims` signed with the published key `kid` ([`RSA_KID`] or [`EC_KID`]), that `kid` in
    /// the header.
    pub fn mint(&self, claims: &Value, kid: &str) -> String {
        let signer = match kid {
            RSA_KID => &self.rsa,
            EC_KID => &self.ec,
            other => panic!("no published key {other:?}; use mint_unpublished"),
        };
        signer.sign(kid, claims)
    }

    /// `claims` signed with an RSA key this issuer never publishes, `kid` in the header: an
    /// unknown `kid`, or a forgery when `kid` is a published one.
    pub fn mint_unpublished(&self, claims: &Value, kid: &str) -> String {
        self.rogue.sign(kid, claims)
    }

    /// The claims of a GitHub Actions job token for `acme/api` on `refs/heads/main`, workflow
    /// `deploy`, environment `production`, issued now and valid for five minutes.
    pub fn github_claims(&self, audience: &str) -> Value {
        let now = now();
        json!({
            "jti": format!("gh-{}", rand::random::<u64>()),
            "iss": self.issuer,
            "aud": audience,
            "sub": "repo:acme/api:ref:refs/heads/main",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "ref_protected": "true",
            "sha": "8f2c1e4b9a7d3c5e6f10234567890abcdef12345",
            "repository": "acme/api",
            "repository_id": "734198211",
            "repository_owner": "acme",
            "repository_owner_id": "91736502",
            "repository_visibility": "private",
            "actor": "octocat",
            "actor_id": "583231",
            "run_id": "9876543210",
            "run_number": "42",
            "run_attempt": "1",
            "workflow": "deploy",
            "workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
            "workflow_sha": "8f2c1e4b9a7d3c5e6f10234567890abcdef12345",
            "job_workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
            "job_workflow_sha": "8f2c1e4b9a7d3c5e6f10234567890abcdef12345",
            "event_name": "push",
            "environment": "production",
            "head_ref": "",
            "base_ref": "",
            "runner_environment": "github-hosted",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        })
    }

    /// The claims of a GitLab CI `id_tokens` token for project `acme/api` on branch `main`,
    /// environment `production`, issued now and valid for five minutes.
    pub fn gitlab_claims(&self, audience: &str) -> Value {
        let now = now();
        json!({
            "jti": format!("gl-{}", rand::random::<u64>()),
            "iss": self.issuer,
            "aud": audience,
            "sub": "project_path:acme/api:ref_type:branch:ref:main",
            "namespace_id": "1207",
            "namespace_path": "acme",
            "project_id": "4242",
            "project_path": "acme/api",
            "project_visibility": "private",
            "user_id": "31",
            "user_login": "alice",
            "user_email": "alice@acme.example",
            "user_access_level": "maintainer",
            "pipeline_id": "1234567",
            "pipeline_source": "push",
            "job_id": "7654321",
            "ref": "main",
            "ref_type": "branch",
            "ref_path": "refs/heads/main",
            "ref_protected": "true",
            "environment": "production",
            "environment_protected": "true",
            "deployment_tier": "production",
            "runner_id": 12270837,
            "runner_environment": "gitlab-hosted",
            "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "ci_config_ref_uri": "gitlab.com/acme/api//.gitlab-ci.yml@refs/heads/main",
            "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        })
    }
}

impl Drop for CiIssuer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// Answers one HTTP/1.1 request and closes the connection.
fn serve(mut stream: TcpStream, discovery: &str, jwks: &str, jwks_hits: &AtomicUsize) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut words = text.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/.well-known/openid-configuration") => ("200 OK", discovery),
        ("GET", "/jwks") => {
            jwks_hits.fetch_add(1, Ordering::SeqCst);
            ("200 OK", jwks)
        }
        _ => ("404 Not Found", r#"{"error":"not_found"}"#),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// Unpadded base64url.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
