//! `sluiced init`: a starter configuration, a development CA, a server certificate and a token
//! signing key, so a first broker runs with TLS on and nothing to fetch.

use crate::tokens::generate_signing_key;
use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What `init` wrote.
#[derive(Debug)]
pub struct InitOutput {
    /// The config file.
    pub config: PathBuf,
    /// The CA certificate the CLI must trust (`sluice login --ca`).
    pub ca_cert: PathBuf,
}

/// Writes the starter files into `dir`. Refuses to overwrite an existing config unless `force`.
pub fn run(
    dir: &Path,
    listen: SocketAddr,
    hostnames: &[String],
    force: bool,
) -> Result<InitOutput> {
    let config_path = dir.join("sluice.yaml");
    if config_path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it (its CA and keys are replaced too)",
            config_path.display()
        );
    }
    std::fs::create_dir_all(dir.join("tls"))
        .with_context(|| format!("cannot create {}", dir.join("tls").display()))?;
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("cannot create {}", dir.join("keys").display()))?;

    let (ca_pem, server_pem, server_key_pem) = dev_pki(listen, hostnames)?;
    write(&dir.join("tls/ca.crt"), &ca_pem, 0o644)?;
    write(&dir.join("tls/server.crt"), &server_pem, 0o644)?;
    write(&dir.join("tls/server.key"), &server_key_pem, 0o600)?;
    let signing = generate_signing_key().context("cannot generate the token signing key")?;
    write(&dir.join("keys/session-signing.pem"), &signing, 0o600)?;

    let starter = sluice_config::starter_config(&sluice_config::StarterOptions {
        listen,
        tls_cert: "tls/server.crt".into(),
        tls_key: "tls/server.key".into(),
        tls_ca: "tls/ca.crt".into(),
        signing_key: "keys/session-signing.pem".into(),
        sqlite: "sluice.db".into(),
    });
    write(&config_path, &starter, 0o644)?;
    Ok(InitOutput {
        config: config_path,
        ca_cert: dir.join("tls/ca.crt"),
    })
}

/// A development CA and a server certificate for `localhost`, the listen IP and `hostnames`.
fn dev_pki(listen: SocketAddr, hostnames: &[String]) -> Result<(String, String, String)> {
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Sluice development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).context("cannot sign the CA")?;
    let issuer = Issuer::new(ca, ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ip = listen.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    for h in hostnames {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let server_key = KeyPair::generate().context("cannot generate the server key")?;
    let mut server = CertificateParams::new(names)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "sluiced");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .context("cannot sign the server certificate")?;
    Ok((ca_cert.pem(), server_cert.pem(), server_key.serialize_pem()))
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
