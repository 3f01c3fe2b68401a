//! The deep checks of `sluiced check-config`: does the machine match the configuration?
//!
//! Parsing only proves the file is well-formed. These checks look at the files and environment
//! variables it references, so an operator learns about an unreadable key or an unset password
//! before the broker needs them, each reported at the key that referenced it. Credentials are
//! resolved and dropped at once; no message carries their value.

use std::path::{Path, PathBuf};

use crate::location::{ConfigError, Located};
use crate::model::{Config, JwksSource, ResourceSpec, StoreConfig};

impl Config {
    /// Checks every referenced file and environment variable; empty when all is in place.
    ///
    /// Checked: the TLS certificate, key and CA, the token signing key, each target's CA and
    /// `file:` credential (readable), each `env:` credential (set, non-empty), each masking
    /// profile's `key` (like a credential), the directory of the SQLite database (exists), and
    /// each identity issuer's `jwks_file` (readable).
    pub fn check_environment(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let check_file = |errors: &mut Vec<ConfigError>, path: &Located<PathBuf>| {
            if let Err(message) = readable_file(&path.value) {
                errors.push(path.error(message));
            }
        };
        check_file(&mut errors, &self.tls.cert);
        check_file(&mut errors, &self.tls.key);
        if let Some(ca) = &self.tls.ca {
            check_file(&mut errors, ca);
        }
        check_file(&mut errors, &self.tokens.signing_key);
        for resource in &self.resources {
            if let ResourceSpec::Ssh(spec) = &resource.spec
                && let Err(error) = spec.credential.value.secret().resolve()
            {
                errors.push(spec.credential.error(error.to_string()));
            }
            if let ResourceSpec::Kubernetes(spec) = &resource.spec {
                check_file(&mut errors, &spec.ca);
                if let Some(token) = &spec.token
                    && let Err(error) = token.value.resolve()
                {
                    errors.push(token.error(error.to_string()));
                }
                check_client_cert(&mut errors, spec.client_cert.as_ref());
            }
            if let ResourceSpec::Http(spec) = &resource.spec {
                if let Some(ca) = &spec.ca {
                    check_file(&mut errors, ca);
                }
                check_client_cert(&mut errors, spec.client_cert.as_ref());
                if let Some(authorization) = &spec.inject.authorization {
                    let secret = match &authorization.value {
                        crate::model::HttpAuthorization::Bearer(secret)
                        | crate::model::HttpAuthorization::Basic {
                            password: secret, ..
                        } => secret,
                    };
                    if let Err(error) = secret.resolve() {
                        errors.push(authorization.error(error.to_string()));
                    }
                }
                for (_, secret) in &spec.inject.headers {
                    if let Err(error) = secret.value.resolve() {
                        errors.push(secret.error(error.to_string()));
                    }
                }
            }
            if let ResourceSpec::Postgres(spec) = &resource.spec {
                if let Some(ca) = &spec.tls.ca {
                    check_file(&mut errors, ca);
                }
                // Resolving is the only complete check (set, readable, non-empty, UTF-8); the
                // value is dropped here and the error names only the variable or path.
                if let Err(error) = spec.password.value.resolve() {
                    errors.push(spec.password.error(error.to_string()));
                }
            }
        }
        if let Some(s3) = &self.recording.s3 {
            for key in [&s3.access_key_id, &s3.secret_access_key] {
                if let Err(error) = key.value.resolve() {
                    errors.push(key.error(error.to_string()));
                }
            }
        }
        if let Some(metrics) = &self.metrics
            && let Err(error) = metrics.token.value.resolve()
        {
            errors.push(metrics.token.error(error.to_string()));
        }
        for key in self
            .policy
            .masking
            .iter()
            .filter_map(|profile| profile.key.as_ref())
        {
            if let Err(error) = key.value.resolve() {
                errors.push(key.error(error.to_string()));
            }
        }
        let jwks_sources = self
            .identity
            .oidc
            .iter()
            .map(|issuer| &issuer.jwks)
            .chain(self.identity.workload.iter().map(|issuer| &issuer.jwks));
        for jwks in jwks_sources {
            if let JwksSource::File(path) = jwks {
                check_file(&mut errors, path);
            }
        }
        match &self.store {
            StoreConfig::Sqlite(sqlite) => {
                if let Err(message) = sqlite_location(&sqlite.value) {
                    errors.push(sqlite.error(message));
                }
            }
            StoreConfig::Postgres(postgres) => {
                if let Some(ca) = &postgres.ca {
                    check_file(&mut errors, ca);
                }
                if let Some(password) = &postgres.password
                    && let Err(error) = password.value.resolve()
                {
                    errors.push(password.error(error.to_string()));
                }
            }
        }
        errors.sort_by_key(|error| (error.location.line, error.location.column));
        errors
    }
}

fn readable_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    if metadata.is_dir() {
        return Err(format!("{shown} is a directory, expected a file"));
    }
    // Opening is what fails on permissions; metadata alone succeeds on unreadable files.
    std::fs::File::open(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    Ok(())
}

/// The database file may not exist yet (the broker creates it) but its directory must.
fn sqlite_location(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a directory, expected a database file",
            path.display()
        ));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if parent.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "directory {} does not exist; create it or point sqlite elsewhere",
            parent.display()
        ))
    }
}

/// A client certificate and key that resolve and read as PEM.
fn check_client_cert(errors: &mut Vec<ConfigError>, pair: Option<&crate::model::ClientCert>) {
    let Some(pair) = pair else {
        return;
    };
    match pair.cert.value.resolve() {
        Ok(cert) if !cert.expose().contains("-----BEGIN CERTIFICATE-----") => {
            errors.push(
                pair.cert
                    .error("not a PEM certificate (-----BEGIN CERTIFICATE-----)"),
            );
        }
        Ok(_) => {}
        Err(error) => errors.push(pair.cert.error(error.to_string())),
    }
    match pair.key.value.resolve() {
        Ok(key) if !key.expose().contains("PRIVATE KEY-----") => {
            errors.push(pair.key.error("not a PEM private key"));
        }
        Ok(_) => {}
        Err(error) => errors.push(pair.key.error(error.to_string())),
    }
}
