//! `store`: SQLite or a shared PostgreSQL, and what a shared store requires.

use super::errors::assert_errors;
use super::{parse_err, parse_ok};
use crate::StoreConfig;
use std::path::PathBuf;

/// A config whose `store` (and anything after it) is `tail`; `store:` is on line 4.
fn with_store(tail: &str) -> String {
    format!(
        "listen: 127.0.0.1:8443\ntls: {{cert: c.pem, key: k.pem}}\ntokens: {{signing_key: s.pem}}\n{tail}"
    )
}

#[test]
fn a_postgres_store_with_a_bucket_reads_url_password_and_ca() {
    let config = parse_ok(&with_store(
        "store:\n  postgres:\n    url: postgres://sluice@db.internal:5432/sluice\n    password: env:SLUICE_DB_PASSWORD\n    ca: tls/db-ca.pem\nrecording:\n  s3: {bucket: recs, access_key_id: env:K, secret_access_key: env:S}\n",
    ));
    let StoreConfig::Postgres(postgres) = &config.store else {
        panic!("{:?}", config.store);
    };
    assert_eq!(
        postgres.url.value,
        "postgres://sluice@db.internal:5432/sluice"
    );
    assert_eq!(
        postgres.ca.as_ref().map(|ca| ca.value.clone()),
        Some(PathBuf::from("/etc/sluice/tls/db-ca.pem"))
    );
    assert!(postgres.password.is_some());
    assert!(config.store.sqlite().is_none());
}

#[test]
fn a_loopback_postgres_needs_no_ca() {
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let config = parse_ok(&with_store(&format!(
            "store: {{postgres: {{url: 'postgres://sluice@{host}:5432/sluice'}}}}\nrecording: {{dir: recs}}\n"
        )));
        assert!(matches!(config.store, StoreConfig::Postgres(_)), "{host}");
    }
}

#[test]
fn bad_postgres_stores_are_refused_with_what_to_do() {
    let cases = [
        (
            "store: {postgres: {url: 'postgres://sluice:hunter2@127.0.0.1/sluice'}}\nrecording: {dir: r}\n",
            (
                4,
                20,
                "store.postgres.url",
                "the URL holds a password: move it to `password: env:NAME`",
            ),
        ),
        (
            "store: {postgres: {url: 'postgres://sluice@db.internal/sluice'}}\nrecording: {dir: r}\n",
            (
                4,
                9,
                "store.postgres",
                "a store off this machine is reached over TLS: add `ca: PATH`",
            ),
        ),
        (
            "store: {postgres: {url: 'mysql://sluice@127.0.0.1/sluice'}}\nrecording: {dir: r}\n",
            (4, 20, "store.postgres.url", "expected a postgres:// URL"),
        ),
        (
            "store: {postgres: {url: 'postgres://sluice@127.0.0.1/sluice?sslmode=disable'}}\nrecording: {dir: r}\n",
            (4, 20, "store.postgres.url", "the URL takes no parameters"),
        ),
        (
            "store: {postgres: {url: 'postgres://127.0.0.1/sluice'}}\nrecording: {dir: r}\n",
            (4, 20, "store.postgres.url", "the URL names no user"),
        ),
        (
            "store: {postgres: {url: 'postgres://sluice@127.0.0.1/'}}\nrecording: {dir: r}\n",
            (4, 20, "store.postgres.url", "the URL names no database"),
        ),
        (
            "store: {sqlite: s.db, postgres: {url: 'postgres://sluice@127.0.0.1/sluice'}}\n",
            (4, 23, "store.postgres", "the store is one database"),
        ),
        ("store: {}\n", (4, 1, "store", "say where the store is")),
        (
            "store: {postgres: {url: 'postgres://sluice@127.0.0.1/sluice'}}\n",
            (
                4,
                1,
                "store",
                "with `store.postgres`, say where recordings go",
            ),
        ),
    ];
    for (tail, expected) in cases {
        let errors = parse_err(&with_store(tail));
        assert!(
            errors
                .iter()
                .all(|(_, _, _, message)| !message.contains("hunter2")),
            "{errors:?}"
        );
        assert_errors(&errors, &[expected]);
    }
}

#[test]
fn recording_encryption_is_aes256_or_kms_with_an_optional_key() {
    let bucket = "recording:\n  s3:\n    bucket: recs\n    access_key_id: env:K\n    secret_access_key: env:S\n";
    let config = parse_ok(&with_store(&format!(
        "store: {{sqlite: s.db}}\n{bucket}    encryption: kms\n    kms_key_id: alias/sluice\n"
    )));
    let s3 = config.recording.s3.expect("s3");
    assert_eq!(
        s3.encryption,
        Some(crate::S3Encryption::Kms(Some("alias/sluice".into())))
    );
    let config = parse_ok(&with_store(&format!(
        "store: {{sqlite: s.db}}\n{bucket}    encryption: aes256\n"
    )));
    assert_eq!(
        config.recording.s3.expect("s3").encryption,
        Some(crate::S3Encryption::Aes256)
    );
    for (tail, key, message) in [
        (
            "    encryption: rot13\n",
            "recording.s3.encryption",
            "expected aes256 (SSE-S3) or kms",
        ),
        (
            "    kms_key_id: alias/x\n",
            "recording.s3.kms_key_id",
            "`kms_key_id` goes with `encryption: kms`",
        ),
    ] {
        let errors = parse_err(&with_store(&format!(
            "store: {{sqlite: s.db}}\n{bucket}{tail}"
        )));
        assert!(
            errors
                .iter()
                .any(|(_, _, k, m)| k == key && m.starts_with(message)),
            "{errors:?}"
        );
    }
}
