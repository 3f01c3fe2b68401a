//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, with the
//! keys derived from the password remembered per (password, salt, iteration count).
//!
//! Deriving them is PBKDF2 with the role's iteration count (4,096 by default): about a
//! millisecond of CPU, the largest part of what a new tunnel cost the broker. PostgreSQL keeps
//! one salt per role, so every login of the same resource derives the same keys; they are
//! computed once and kept (bounded, in memory only, where the password already is). The keys
//! are password-equivalent for this server, no more than the password the broker holds.
//! Each login still uses fresh nonces and verifies the server's signature.

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{LazyLock, Mutex};

/// PostgreSQL's own cap in libpq: a server asking for more is refused rather than obeyed.
const MAX_ITERATIONS: u32 = 100_000;

/// Derived keys kept at most; the cache is emptied when it is full (one entry per role and
/// password, so a broker rarely holds more than a few).
const MAX_CACHED: usize = 256;

/// How the client binds the exchange to the TLS channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `n`: the client cannot bind (no TLS).
    Unsupported,
    /// `y`: the client could bind, the server did not offer -PLUS (lets a server that does
    /// offer it detect a downgrade).
    Unrequested,
    /// `p=tls-server-end-point` with the hash of the server's certificate.
    EndPoint(Vec<u8>),
}

impl Binding {
    fn gs2_header(&self) -> &'static str {
        match self {
            Self::Unsupported => "n,,",
            Self::Unrequested => "y,,",
            Self::EndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Self::EndPoint(data) => data,
            Self::Unsupported | Self::Unrequested => &[],
        }
    }
}

/// One exchange, from the client-first message to the client-final one.
#[derive(Debug)]
pub(crate) struct Scram {
    password: Vec<u8>,
    binding: Binding,
    nonce: String,
    first_bare: String,
}

/// What verifies the server's final message.
#[derive(Debug)]
pub(crate) struct Pending {
    server_key: [u8; 32],
    auth_message: String,
}

impl Scram {
    /// A new exchange with a fresh nonce. PostgreSQL takes the user from the startup packet,
    /// so the SCRAM user name is empty, as libpq sends it.
    pub(crate) fn new(password: &[u8], binding: Binding) -> Self {
        use rand::Rng as _;
        let mut rng = rand::rng();
        let nonce = (0..24)
            .map(|_| match rng.random_range(0x21u8..0x7e) {
                b',' => '~',
                c => char::from(c),
            })
            .collect();
        Self::with(password, binding, "", nonce)
    }

    fn with(password: &[u8], binding: Binding, user: &str, nonce: String) -> Self {
        Self {
            password: normalize(password),
            first_bare: format!("n={user},r={nonce}"),
            binding,
            nonce,
        }
    }

    /// The client-first message.
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.binding.gs2_header(), self.first_bare).into_bytes()
    }

    /// The client-final message answering `server_first`, and what checks the server's reply.
    pub(crate) fn client_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Pending), String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first message is not UTF-8".to_owned())?;
        let (nonce, salt, iterations) = parse_server_first(server_first)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| "the salt is not base64".to_owned())?;
        let keys = keys(&self.password, &salt, iterations)?;

        let mut binding = self.binding.gs2_header().as_bytes().to_vec();
        binding.extend_from_slice(self.binding.data());
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&binding));
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let stored_key = digest::digest(&digest::SHA256, &keys.client);
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let mut proof = keys.client;
        for (p, s) in proof.iter_mut().zip(signature.as_ref()) {
            *p ^= s;
        }
        let message = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((
            message.into_bytes(),
            Pending {
                server_key: keys.server,
                auth_message,
            },
        ))
    }
}

impl Pending {
    /// Checks the server-final message: the server proves it knows the password's verifier.
    pub(crate) fn verify(self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "the server-final message is not UTF-8".to_owned())?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server says: {error}"));
        }
        let verifier = text
            .strip_prefix("v=")
            .map(|v| v.split(',').next().unwrap_or(v))
            .ok_or_else(|| "the server-final message has no verifier".to_owned())?;
        let verifier = STANDARD
            .decode(verifier)
            .map_err(|_| "the verifier is not base64".to_owned())?;
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.server_key),
            self.auth_message.as_bytes(),
        );
        constant_time::verify_slices_are_equal(expected.as_ref(), &verifier)
            .map_err(|_| "the server's signature does not verify".to_owned())
    }
}

/// `r=NONCE,s=SALT,i=ITERATIONS`, in that order; a mandatory extension (`m=`) is refused.
fn parse_server_first(text: &str) -> Result<(&str, &str, u32), String> {
    let mut parts = text.split(',');
    let mut field = |name: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .ok_or_else(|| format!("the server-first message has no `{name}` where expected"))
    };
    let nonce = field("r=")?;
    let salt = field("s=")?;
    let iterations = field("i=")?
        .parse::<u32>()
        .map_err(|_| "the iteration count is not a number".to_owned())?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!(
            "the server asks for {iterations} iterations (at most {MAX_ITERATIONS})"
        ));
    }
    Ok((nonce, salt, iterations))
}

/// SASLprep where the password is valid UTF-8 and preparable, the bytes as they are
/// otherwise (PostgreSQL's own rule, as libpq applies it).
fn normalize(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(text) => match stringprep::saslprep(text) {
            Ok(prepared) => prepared.into_owned().into_bytes(),
            Err(_) => password.to_vec(),
        },
        Err(_) => password.to_vec(),
    }
}

/// ClientKey and ServerKey of a password, salt and iteration count.
#[derive(Clone, Copy)]
struct Keys {
    client: [u8; 32],
    server: [u8; 32],
}

static CACHE: LazyLock<Mutex<HashMap<[u8; 32], Keys>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn keys(password: &[u8], salt: &[u8], iterations: u32) -> Result<Keys, String> {
    let mut id = digest::Context::new(&digest::SHA256);
    id.update(&(password.len() as u64).to_be_bytes());
    id.update(password);
    id.update(&iterations.to_be_bytes());
    id.update(salt);
    let mut key = [0u8; 32];
    key.copy_from_slice(id.finish().as_ref());
    if let Some(keys) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(*keys);
    }
    let rounds = NonZeroU32::new(iterations).ok_or("zero iterations")?;
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password,
        &mut salted,
    );
    let salted = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let derive = |label: &[u8]| {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&salted, label).as_ref());
        out
    };
    let keys = Keys {
        client: derive(b"Client Key"),
        server: derive(b"Server Key"),
    };
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(key, keys);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // RFC 7677, section 3.
    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc() -> Scram {
        Scram::with(b"pencil", Binding::Unsupported, "user", NONCE.into())
    }

    #[test]
    fn the_rfc_7677_exchange_computes_the_same_messages_twice() {
        // The second run takes the keys from the cache and must agree byte for byte.
        for _ in 0..2 {
            let scram = rfc();
            assert_eq!(
                scram.client_first(),
                format!("n,,n=user,r={NONCE}").into_bytes()
            );
            let (message, pending) = scram.client_final(SERVER_FIRST.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(message).unwrap(), CLIENT_FINAL);
            pending.verify(SERVER_FINAL.as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_server_that_does_not_know_the_password_fails_verification() {
        let (_, pending) = rfc().client_final(SERVER_FIRST.as_bytes()).unwrap();
        let err = pending
            .verify(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        let (_, pending) = rfc().client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert!(
            pending
                .verify(b"e=invalid-proof")
                .unwrap_err()
                .contains("invalid-proof")
        );
        let (_, pending) = rfc().client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert!(pending.verify(b"x=1").is_err());
    }

    #[test]
    fn a_different_password_or_salt_is_not_served_from_the_cache() {
        let (_, _) = rfc().client_final(SERVER_FIRST.as_bytes()).unwrap();
        let other = Scram::with(b"pencil2", Binding::Unsupported, "user", NONCE.into());
        let (message, _) = other.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_ne!(String::from_utf8(message).unwrap(), CLIENT_FINAL);
        let salted = SERVER_FIRST.replace("W22ZaJ0SNY7soEsUEjb6gQ==", "W22ZaJ0SNY7soEsUEjb6gA==");
        let (message, _) = rfc().client_final(salted.as_bytes()).unwrap();
        assert_ne!(String::from_utf8(message).unwrap(), CLIENT_FINAL);
    }

    #[test]
    fn malformed_or_hostile_server_first_messages_are_refused() {
        for bad in [
            "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100001",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
        ] {
            assert!(rfc().client_final(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_binding_goes_into_the_proof() {
        let bound = Scram::with(
            b"pencil",
            Binding::EndPoint(vec![1, 2, 3]),
            "user",
            NONCE.into(),
        );
        assert!(
            bound
                .client_first()
                .starts_with(b"p=tls-server-end-point,,n=user")
        );
        let (message, _) = bound.client_final(SERVER_FIRST.as_bytes()).unwrap();
        let expected = STANDARD.encode(b"p=tls-server-end-point,,\x01\x02\x03");
        assert!(
            String::from_utf8(message)
                .unwrap()
                .starts_with(&format!("c={expected},")),
        );
    }
}
