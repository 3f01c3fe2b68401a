//! How the broker logs in to a host: its own key, a password, or — better than a standing
//! key — a user certificate it signs for each login with a CA the host trusts
//! (`TrustedUserCAKeys`): a fresh key, principals = the login, valid for minutes, key id naming
//! the person and the grant. Nothing of it ever reaches the client.

use russh::keys::ssh_key::PrivateKey;
use russh::keys::ssh_key::certificate::{Builder, CertType, Certificate};
use russh::keys::ssh_key::private::Ed25519Keypair;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Certificates are valid from this long before they are made (clocks differ).
const SKEW: Duration = Duration::from_secs(60);

/// The broker's credential for a host.
#[derive(Clone)]
pub enum Credential {
    /// A key the host's `authorized_keys` lists.
    Key(Arc<PrivateKey>),
    /// A password.
    Password(Arc<str>),
    /// A user CA: a certificate is signed for each login.
    Ca {
        /// The CA's private key.
        ca: Arc<PrivateKey>,
        /// How long each certificate is valid.
        ttl: Duration,
        /// Written into each certificate's key id: who, under which grant.
        key_id: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str(match self {
            Self::Key(_) => "Key",
            Self::Password(_) => "Password",
            Self::Ca { .. } => "Ca",
        })
    }
}

/// A fresh key and a certificate for it, signed by `ca`, for `login`, valid from a minute ago
/// until `ttl` from now, with the extensions an interactive session and forwards need.
pub fn user_certificate(
    ca: &PrivateKey,
    login: &str,
    key_id: &str,
    ttl: Duration,
) -> Result<(PrivateKey, Certificate), String> {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let failed = |e: russh::keys::ssh_key::Error| format!("cannot sign a user certificate: {e}");
    let mut builder = Builder::new(
        rand::random::<[u8; 32]>().to_vec(),
        key.public_key().key_data().clone(),
        now.saturating_sub(SKEW).as_secs(),
        (now + ttl).as_secs(),
    )
    .map_err(failed)?;
    builder
        .cert_type(CertType::User)
        .map_err(failed)?
        .key_id(key_id)
        .map_err(failed)?
        .valid_principal(login)
        .map_err(failed)?;
    // What the broker itself decides stays with the broker: the host is told only what an
    // interactive session and the relayed forwards need (no agent, no X11, no user rc).
    for extension in ["permit-pty", "permit-port-forwarding"] {
        builder.extension(extension, "").map_err(failed)?;
    }
    let certificate = builder.sign(ca).map_err(failed)?;
    Ok((key, certificate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_the_login_and_expires_within_its_ttl() {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let ttl = Duration::from_secs(300);
        let (key, cert) = user_certificate(&ca, "deploy", "sluice:alice:g_1", ttl).expect("cert");
        assert_eq!(cert.valid_principals(), ["deploy".to_owned()]);
        assert_eq!(cert.key_id(), "sluice:alice:g_1");
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.public_key(), key.public_key().key_data());
        assert_eq!(
            cert.valid_before() - cert.valid_after(),
            (ttl + SKEW).as_secs()
        );
        assert!(cert.extensions().contains_key("permit-pty"));
        assert!(!cert.extensions().contains_key("permit-agent-forwarding"));
        let fingerprint = ca.public_key().fingerprint(Default::default());
        cert.validate_at(cert.valid_after() + 1, [&fingerprint])
            .expect("signed by the CA");
        assert!(
            cert.validate_at(cert.valid_before() + 1, [&fingerprint])
                .is_err(),
            "expired after its ttl"
        );
    }
}
