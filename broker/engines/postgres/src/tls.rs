//! TLS toward the target: client configurations for the three [`TargetTls`] modes, and the
//! `tls-server-end-point` channel binding data SCRAM-SHA-256-PLUS needs.
//!
//! The crypto provider is named explicitly (aws-lc-rs) instead of relying on a process-wide
//! default, so the engine works whatever other crates in the binary install.

use crate::upstream::TargetTls;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Builds the client configuration for `mode`, or `None` for [`TargetTls::Disable`].
pub(crate) fn client_config(mode: &TargetTls) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match mode {
        TargetTls::Disable => return Ok(None),
        TargetTls::VerifyFull { roots, .. } => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        TargetTls::Require { roots: None } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck { provider }))
            .with_no_client_auth(),
        TargetTls::Require { roots: Some(roots) } => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .map_err(|e| TlsError::General(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                .with_no_client_auth()
        }
    };
    Ok(Some(Arc::new(config)))
}

/// The name to present (SNI) and, for `VerifyFull`, to verify.
pub(crate) fn server_name(mode: &TargetTls, address: &str) -> Result<ServerName<'static>, String> {
    match mode {
        TargetTls::VerifyFull { server_name, .. } => ServerName::try_from(server_name.clone())
            .map_err(|_| format!("invalid TLS server name {server_name:?}")),
        // Not verified, so the name only goes into SNI: the host part of the address.
        _ => {
            let host = host_of(address);
            ServerName::try_from(host.to_owned())
                .map_err(|_| format!("the target address has no valid host name ({host:?})"))
        }
    }
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// `TargetTls::Require` without roots: encrypt, but accept any certificate.
///
/// This is PostgreSQL's `sslmode=require`, used only when an operator configured it
/// explicitly for a target. It protects against passive eavesdropping only. Handshake
/// signatures are still checked, so the peer holds the key of the certificate it showed and
/// SCRAM channel binding to that certificate keeps its meaning.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `TargetTls::Require` with roots: the chain must lead to one of them, the host name is not
/// checked (libpq's `sslmode=require` with a root file behaves as `verify-ca`).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The hash RFC 5929 prescribes for `tls-server-end-point`: the certificate's signature hash,
/// with MD5 and SHA-1 upgraded to SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndPointHash {
    Sha256,
    Sha384,
}

/// `tls-server-end-point` channel binding data for the server's certificate (DER), or `None`
/// when its signature algorithm is one this code does not map (RSA-PSS, EdDSA, SHA-512). The
/// caller then runs SCRAM without channel binding, as libpq does when it cannot bind.
pub(crate) fn end_point_binding(cert_der: &[u8]) -> Option<Vec<u8>> {
    let hash = match signature_algorithm_oid(cert_der)? {
        // sha256WithRSAEncryption, sha1WithRSAEncryption, md5WithRSAEncryption
        [
            0x2a,
            0x86,
            0x48,
            0x86,
            0xf7,
            0x0d,
            0x01,
            0x01,
            0x0b | 0x05 | 0x04,
        ] => EndPointHash::Sha256,
        // sha384WithRSAEncryption
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c] => EndPointHash::Sha384,
        // ecdsa-with-SHA256, ecdsa-with-SHA1
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => EndPointHash::Sha256,
        // ecdsa-with-SHA384
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => EndPointHash::Sha384,
        _ => return None,
    };
    // rustls exposes its hash implementations through the TLS 1.3 suites that use them,
    // which saves a separate SHA-2 dependency.
    let suite = match hash {
        EndPointHash::Sha256 => aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        EndPointHash::Sha384 => aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
    };
    Some(
        suite
            .tls13()?
            .common
            .hash_provider
            .hash(cert_der)
            .as_ref()
            .to_vec(),
    )
}

/// The OID bytes of `Certificate.signatureAlgorithm.algorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, BIT STRING }`.
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (tag, cert, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _tbs, rest) = der_element(cert)?;
    let (tag, alg, _) = der_element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(alg)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: `(tag, content, rest)`. Definite lengths only, as DER requires.
fn der_element(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cert(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn binding_hash_follows_the_signature_algorithm() {
        let p256 = cert(&rcgen::PKCS_ECDSA_P256_SHA256);
        let binding = end_point_binding(&p256).unwrap();
        assert_eq!(binding.len(), 32);
        let p384 = cert(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(end_point_binding(&p384).unwrap().len(), 48);
        let ed = cert(&rcgen::PKCS_ED25519);
        assert_eq!(end_point_binding(&ed), None);
    }

    #[test]
    fn sha256_binding_matches_a_known_digest() {
        // SHA-256 of "abc" through the same path, to prove the suite's hash is SHA-256.
        let suite = aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
        let digest = suite.tls13().unwrap().common.hash_provider.hash(b"abc");
        assert_eq!(digest.as_ref()[..4], [0xba, 0x78, 0x16, 0xbf],);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for g in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x02\x01\x00",
            b"\x04\x00",
        ] {
            assert_eq!(end_point_binding(g), None);
        }
    }

    #[test]
    fn hosts_are_split_from_ports() {
        assert_eq!(host_of("db.example:5432"), "db.example");
        assert_eq!(host_of("[::1]:5432"), "::1");
        assert_eq!(host_of("127.0.0.1:5432"), "127.0.0.1");
        assert_eq!(host_of("bare"), "bare");
    }
}
