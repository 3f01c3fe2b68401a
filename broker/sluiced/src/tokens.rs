//! Broker session tokens: short-lived EdDSA (Ed25519) JWTs that the broker signs and verifies.
//!
//! Every API call and tunnel presents one. `sluiced token issue` mints them for the operator
//! bootstrap path; later, OIDC and workload logins end in the same kind of token. The broker is
//! the only party that verifies them, so issuer and audience are fixed strings and there is no
//! clock-skew leeway: the signer and the verifier share one clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sluice_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `iss` of every session token.
const ISSUER: &str = "sluiced";
/// `aud` of every session token: only the broker accepts them.
const AUDIENCE: &str = "sluice-broker";

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The subject: a user or workload name.
    pub sub: String,
    /// Groups, used by policy.
    pub groups: Vec<String>,
    /// How the subject proved who they are (`operator` for `sluiced token issue`).
    pub amr: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Token id, for revocation and audit.
    pub jti: String,
    /// The identity provider or workload rule that vouched for the subject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// CI claims of a workload (repository, workflow, ...), shown to approvers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, String>,
    /// How sessions under this token come: `mcp` for an agent token (`POST /v1/auth/agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The token an agent token was derived from: revoking (logging out) that one refuses this
    /// one too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// What an exchange adds to a token beyond subject and groups.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// See [`Claims::idp`].
    pub idp: Option<String>,
    /// See [`Claims::ci`].
    pub ci: BTreeMap<String, String>,
    /// The token may not outlive this (the exchanged token's own expiry), seconds since epoch.
    pub not_after: Option<u64>,
    /// See [`Claims::via`].
    pub via: Option<String>,
    /// See [`Claims::parent`].
    pub parent: Option<String>,
}

/// Who an identity assertion speaks for.
#[derive(Debug, Clone, Copy)]
pub struct Assertion<'a> {
    /// The resource called (the audience is `sluice:RESOURCE`).
    pub resource: &'a str,
    /// The Sluice subject.
    pub subject: &'a str,
    /// The subject's groups.
    pub groups: &'a [String],
    /// The grant the call is made under.
    pub grant: &'a str,
    /// The grant's role.
    pub role: &'a str,
    /// The session (tunnel) id.
    pub session: &'a str,
}

/// Why a token was refused. Messages are safe to show the caller: they never echo the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token's `exp` has passed.
    #[error("the session token expired")]
    Expired,
    /// Not a JWT, wrong algorithm, bad signature, wrong issuer or audience.
    #[error("the session token is not valid: {0}")]
    Invalid(&'static str),
}

/// Why the signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 PEM key.
    #[error("the signing key {path} is not an Ed25519 PKCS#8 PEM private key")]
    Format {
        /// The file.
        path: String,
    },
}

/// Signs and verifies session tokens with one Ed25519 key.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The raw Ed25519 public key, published in the JWK Set.
    public: Vec<u8>,
    /// Its key id: base64url of the first 12 bytes of its SHA-256.
    kid: String,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenService { keys: [redacted] }")
    }
}

impl TokenService {
    /// Loads the Ed25519 PKCS#8 PEM key at `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem).ok_or_else(|| KeyError::Format {
            path: path.display().to_string(),
        })
    }

    /// Builds the service from a PEM string; `None` if it is not an Ed25519 PKCS#8 key.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let pair = rcgen::KeyPair::from_pem(pem).ok()?;
        if pair.algorithm() != &rcgen::PKCS_ED25519 {
            return None;
        }
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).ok()?;
        let public = pair.public_key_raw().to_vec();
        let decoding = DecodingKey::from_ed_der(&public);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let kid = {
            use base64::Engine as _;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
        };
        Some(Self {
            encoding,
            decoding,
            validation,
            public,
            kid,
        })
    }

    /// The public key as a JWK Set (`GET /.well-known/jwks.json`): what a service verifies
    /// identity assertions with.
    pub fn jwks(&self) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public),
            }]
        })
    }

    /// Signs an identity assertion: who is calling a service through the broker, under which
    /// grant. Its audience is the resource's (`sluice:RESOURCE`), never a session token's, so a
    /// service that checks `aud` accepts neither a session token nor another service's
    /// assertion.
    pub fn assert_identity(
        &self,
        assertion: &Assertion<'_>,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "aud": format!("sluice:{}", assertion.resource),
            "sub": assertion.subject,
            "groups": assertion.groups,
            "grant": assertion.grant,
            "role": assertion.role,
            "session": assertion.session,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs().max(1),
            "jti": random_id(),
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Signs a token for `subject` valid for `ttl`.
    pub fn issue(
        &self,
        subject: &str,
        groups: &[String],
        auth_method: &str,
        ttl: Duration,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.issue_with(subject, groups, auth_method, ttl, Provenance::default())
    }

    /// Signs a token valid for `ttl`, or until `provenance.not_after` if that is sooner.
    pub fn issue_with(
        &self,
        subject: &str,
        groups: &[String],
        auth_method: &str,
        ttl: Duration,
        provenance: Provenance,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now = now_secs();
        let mut exp = now + ttl.as_secs().max(1);
        if let Some(limit) = provenance.not_after {
            exp = exp.min(limit);
        }
        let claims = Claims {
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            sub: subject.to_string(),
            groups: groups.to_vec(),
            amr: auth_method.to_string(),
            iat: now,
            exp,
            jti: random_id(),
            idp: provenance.idp,
            ci: provenance.ci,
            via: provenance.via,
            parent: provenance.parent,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Invalid("the signature does not verify"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::Invalid("it is not signed with the broker's algorithm")
                }
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    TokenError::Invalid("it was not issued by this broker")
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    TokenError::Invalid("a required claim is missing")
                }
                _ => TokenError::Invalid("it is malformed"),
            }),
        }
    }
}

/// Session tokens revoked before their expiry (logout).
///
/// The store is the record and this map its copy in memory: the gate asks [`Self::is_revoked`]
/// on every request without a database round trip. [`Self::load`] fills the map from the store
/// at start, and [`Self::revoke`] writes to the store before the map, so a token is only
/// reported revoked once a restart cannot undo it. An entry is needed only until the token's own
/// expiry, after which the token is refused as expired anyway; [`Self::prune`] drops those.
#[derive(Debug)]
pub struct Revocations {
    /// Where revocations persist across restarts.
    store: Store,
    /// Revoked token id → the token's expiry (seconds since the epoch).
    revoked: Mutex<HashMap<String, u64>>,
}

impl Revocations {
    /// Prunes the revocations of tokens expired by `now` from the store, then loads the rest.
    pub async fn load(store: Store, now: u64) -> Result<Self, StoreError> {
        store.prune_revoked_tokens(now).await?;
        let revoked = store.revoked_tokens(now).await?.into_iter().collect();
        Ok(Self {
            store,
            revoked: Mutex::new(revoked),
        })
    }

    /// Revokes token `jti` of `subject` until its expiry `exp`: in the store first, then here.
    ///
    /// When the store fails, nothing changes and the error is returned: the caller must not
    /// report a logout that a restart would undo, and the token stays usable so the logout can
    /// be retried with it.
    pub async fn revoke(&self, jti: &str, subject: &str, exp: u64) -> Result<(), StoreError> {
        let now = now_secs();
        self.store.revoke_token(jti, subject, exp, now).await?;
        let mut map = self.lock();
        map.retain(|_, until| *until >= now);
        map.insert(jti.to_string(), exp);
        Ok(())
    }

    /// Reads the revocations again (another broker sharing the store may have added some):
    /// every one still valid at `now` is kept here, none is dropped that the store still has.
    pub async fn refresh(&self, now: u64) -> Result<(), StoreError> {
        let stored = self.store.revoked_tokens(now).await?;
        let mut map = self.lock();
        map.retain(|_, until| *until >= now);
        map.extend(stored);
        Ok(())
    }

    /// Whether `jti` was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.lock().contains_key(jti)
    }

    /// Forgets the revocations of tokens expired by `now`, here and in the store. Returns how
    /// many rows the store deleted.
    pub async fn prune(&self, now: u64) -> Result<u64, StoreError> {
        // A token is still accepted during its `exp` second (no leeway, `exp < now` is
        // expired), so its entry stays until then.
        self.lock().retain(|_, until| *until >= now);
        self.store.prune_revoked_tokens(now).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 128 random bits as hex: token ids, session ids.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Generates a fresh Ed25519 signing key as PKCS#8 PEM.
pub fn generate_signing_key() -> Result<String, rcgen::Error> {
    Ok(rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn service() -> TokenService {
        TokenService::from_pem(&generate_signing_key().unwrap()).unwrap()
    }

    #[test]
    fn an_identity_assertion_verifies_with_the_published_key_and_is_no_session_token() {
        let svc = service();
        let groups = vec!["eng".to_owned()];
        let assertion = svc
            .assert_identity(
                &Assertion {
                    resource: "billing",
                    subject: "alice",
                    groups: &groups,
                    grant: "g1",
                    role: "reader",
                    session: "s1",
                },
                Duration::from_secs(60),
            )
            .expect("an assertion");
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(svc.jwks()).expect("a JWK Set");
        let header = jsonwebtoken::decode_header(&assertion).expect("a JWT header");
        let jwk = jwks
            .find(header.kid.as_deref().expect("a kid"))
            .expect("the kid is published");
        let key = DecodingKey::from_jwk(jwk).expect("an Ed25519 key");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["sluice:billing"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &validation)
            .expect("the assertion verifies")
            .claims;
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["grant"], "g1");
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            60
        );
        // The broker never takes an assertion for a session token.
        assert!(svc.verify(&assertion).is_err());
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_claims() {
        let svc = service();
        let (token, claims) = svc
            .issue(
                "alice",
                &["dba".into()],
                "operator",
                Duration::from_secs(3600),
            )
            .unwrap();
        let verified = svc.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.sub, "alice");
        assert_eq!(verified.groups, vec!["dba".to_string()]);
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let (token, _) = service()
            .issue("alice", &[], "operator", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            service().verify(&token),
            Err(TokenError::Invalid("the signature does not verify"))
        );
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let svc = service();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "alice".into(),
            groups: vec![],
            amr: "operator".into(),
            iat: now_secs() - 120,
            exp: now_secs() - 60,
            jti: random_id(),
            idp: None,
            ci: BTreeMap::new(),
            via: None,
            parent: None,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &svc.encoding).unwrap();
        assert_eq!(svc.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_and_tampered_payloads_are_refused() {
        let svc = service();
        let (token, _) = svc
            .issue("alice", &[], "operator", Duration::from_secs(60))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(payload.replace("alice", "admin"));
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(svc.verify(&tampered), Err(TokenError::Invalid(_))));

        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(matches!(svc.verify(&unsigned), Err(TokenError::Invalid(_))));

        assert!(matches!(
            svc.verify("not-a-token"),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(svc.verify(""), Err(TokenError::Invalid(_))));
    }

    #[tokio::test]
    async fn revocations_are_written_through_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let now = now_secs();
        let store = Store::open(&path).await.unwrap();
        // What an earlier run left: one still valid, one long expired.
        store
            .revoke_token("old", "alice", now - 60, now - 120)
            .await
            .unwrap();
        store
            .revoke_token("earlier", "alice", now + 600, now - 10)
            .await
            .unwrap();

        let revocations = Revocations::load(store.clone(), now).await.unwrap();
        assert!(revocations.is_revoked("earlier"));
        assert!(!revocations.is_revoked("old"));
        assert_eq!(
            store.revoked_tokens(0).await.unwrap(),
            [("earlier".to_string(), now + 600)],
            "loading prunes expired rows"
        );

        revocations.revoke("t1", "bob", now + 600).await.unwrap();
        assert!(revocations.is_revoked("t1"));
        assert!(!revocations.is_revoked("t2"));
        store.close().await;

        // A restart: a fresh broker process over the same file.
        let store = Store::open(&path).await.unwrap();
        let again = Revocations::load(store, now).await.unwrap();
        assert!(again.is_revoked("t1"));
        assert!(again.is_revoked("earlier"));
    }

    #[tokio::test]
    async fn a_revocation_the_store_cannot_record_is_not_made() {
        let store = Store::open_in_memory().await.unwrap();
        let revocations = Revocations::load(store.clone(), now_secs()).await.unwrap();
        store.close().await;
        assert!(
            revocations
                .revoke("t1", "alice", now_secs() + 600)
                .await
                .is_err()
        );
        // Not revoked in memory either: the caller answers 503 and the token still works for
        // a retry, rather than a logout that a restart would silently undo.
        assert!(!revocations.is_revoked("t1"));
    }

    #[tokio::test]
    async fn pruning_forgets_expired_tokens_only() {
        let store = Store::open_in_memory().await.unwrap();
        let now = now_secs();
        let revocations = Revocations::load(store.clone(), now).await.unwrap();
        revocations
            .revoke("short", "alice", now + 10)
            .await
            .unwrap();
        revocations
            .revoke("long", "alice", now + 600)
            .await
            .unwrap();
        // Still valid during its `exp` second: kept.
        assert_eq!(revocations.prune(now + 10).await.unwrap(), 0);
        assert!(revocations.is_revoked("short"));
        assert_eq!(revocations.prune(now + 11).await.unwrap(), 1);
        assert!(!revocations.is_revoked("short"));
        assert!(revocations.is_revoked("long"));
        assert_eq!(
            store.revoked_tokens(0).await.unwrap(),
            [("long".to_string(), now + 600)]
        );
    }

    #[test]
    fn a_non_ed25519_key_is_refused() {
        let ecdsa = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert!(TokenService::from_pem(&ecdsa).is_none());
        assert!(TokenService::from_pem("garbage").is_none());
    }
}
