//! The starter configuration is valid as written and once its examples are uncommented.

use std::path::PathBuf;
use std::time::Duration;

use super::{FILE, parse_ok};
use crate::{
    DetectorKind, GuardAction, GuardBase, GuardrailsRef, IdentityConfig, MaskStyle, ResourceSpec,
    StarterOptions, TlsMode, WorkloadPreset, starter_config,
};

fn options() -> StarterOptions {
    StarterOptions {
        listen: "127.0.0.1:8443".parse().expect("address"),
        tls_cert: "tls/server.crt".into(),
        tls_key: "tls/server.key".into(),
        tls_ca: "tls/ca.crt".into(),
        signing_key: "keys/session-signing.pem".into(),
        sqlite: "sluice.db".into(),
    }
}

#[test]
fn starter_config_parses_with_the_given_values() {
    let config = parse_ok(&starter_config(&options()));
    assert_eq!(config.listen, options().listen);
    assert_eq!(
        config.tls.cert.value,
        PathBuf::from("/etc/sluice/tls/server.crt")
    );
    assert_eq!(
        config.tls.key.value,
        PathBuf::from("/etc/sluice/tls/server.key")
    );
    assert_eq!(
        config.tls.ca.map(|ca| ca.value),
        Some(PathBuf::from("/etc/sluice/tls/ca.crt"))
    );
    assert_eq!(
        config.tokens.signing_key.value,
        PathBuf::from("/etc/sluice/keys/session-signing.pem")
    );
    assert_eq!(
        config
            .store
            .sqlite()
            .map(|s| s.value.clone())
            .unwrap_or_default(),
        PathBuf::from("/etc/sluice/sluice.db")
    );
    assert!(config.resources.is_empty());
    assert!(config.policy.rules.is_empty());
    // The roles are live: read is granted at once, write only after a DBA lead approves.
    let read = config
        .policy
        .role("read")
        .expect("the starter defines read");
    assert_eq!(read.approval, None);
    assert_eq!(read.max_ttl, Duration::from_secs(8 * 3600));
    let write = config
        .policy
        .role("write")
        .expect("the starter defines write");
    let approval = write.approval.as_ref().expect("write needs approval");
    assert_eq!(approval.groups, ["dba-leads"]);
    assert_eq!((approval.count, approval.self_approve), (1, false));
    // Profiles are examples only: nothing is guarded or masked until the operator opts in.
    assert_eq!((&read.sql.guardrails, &read.sql.masking), (&None, &None));
    assert!(config.policy.guardrails.is_empty() && config.policy.masking.is_empty());
    assert_eq!(config.identity, IdentityConfig::default());
}

#[test]
fn starter_config_quotes_values_that_need_it() {
    let opts = StarterOptions {
        listen: "[::1]:8443".parse().expect("address"),
        tls_cert: r"C:\sluice\tls\server.crt".into(),
        tls_key: "tls/my key #1.pem".into(),
        tls_ca: "tls/\"ca\": x.crt".into(),
        signing_key: "null".into(),
        sqlite: "/var/lib/sluice/db:".into(),
    };
    let config = parse_ok(&starter_config(&opts));
    assert_eq!(config.listen, opts.listen);
    let relative = |text: &str| std::path::Path::new(FILE).with_file_name(text);
    assert_eq!(config.tls.key.value, relative("tls/my key #1.pem"));
    assert_eq!(
        config.tls.ca.map(|ca| ca.value),
        Some(relative("tls/\"ca\": x.crt"))
    );
    assert_eq!(config.tokens.signing_key.value, relative("null"));
    assert_eq!(
        config
            .store
            .sqlite()
            .map(|s| s.value.clone())
            .unwrap_or_default(),
        PathBuf::from("/var/lib/sluice/db:")
    );
    assert!(
        config
            .tls
            .cert
            .value
            .to_string_lossy()
            .ends_with(r"C:\sluice\tls\server.crt"),
        "{:?}",
        config.tls.cert.value
    );
}

#[test]
fn starter_examples_parse_once_uncommented() {
    let starter = starter_config(&options());
    // Example lines are indented comments holding a key, plus the top-level `# identity:`;
    // prose comments hold none.
    let uncommented: String = starter
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            match line.trim_start().strip_prefix("# ") {
                Some(rest)
                    if (indent > 0 && (rest.contains(": ") || rest.ends_with(':')))
                        || line == "# identity:" =>
                {
                    format!("{}{rest}\n", &line[..indent])
                }
                _ => format!("{line}\n"),
            }
        })
        .collect();
    let config = parse_ok(&uncommented);
    let names: Vec<&str> = config.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["pg-main", "cache"]);
    match &config.resources[0].spec {
        ResourceSpec::Postgres(spec) => {
            assert_eq!(spec.tls.mode, TlsMode::VerifyFull);
            assert_eq!(spec.password.value.to_string(), "env:PG_APP_PASSWORD");
        }
        _ => panic!("pg-main should be postgres"),
    }
    let rules: Vec<(&str, &[String])> = config
        .policy
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.roles.as_slice()))
        .collect();
    assert_eq!(
        rules,
        [
            ("engineers-read", &["read".to_owned()][..]),
            ("dba-write", &["read".to_owned(), "write".to_owned()][..]),
            ("ci-migrate", &["write".to_owned()][..]),
        ]
    );
    assert_eq!(
        config.policy.rules[2].approval,
        Some(crate::ApprovalOverride::None)
    );
    let read = config
        .policy
        .role("read")
        .expect("the starter defines read");
    assert_eq!(
        read.sql.guardrails,
        Some(GuardrailsRef::Profile("analyst".into()))
    );
    assert_eq!(read.sql.masking.as_deref(), Some("pii"));
    let analyst = config
        .policy
        .guardrail_profile("analyst")
        .expect("the example profile");
    assert_eq!(analyst.base, GuardBase::ReadOnly);
    let rules: Vec<(&str, GuardAction)> = analyst
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.action))
        .collect();
    assert_eq!(
        rules,
        [
            ("no-payroll", GuardAction::Block),
            ("hold-drops", GuardAction::Approve)
        ]
    );
    assert_eq!(analyst.rules[1].commands, ["DROP TABLE", "TRUNCATE"]);
    assert_eq!(
        analyst.rules[0].message.as_deref(),
        Some("Payroll is off limits here; ask the DBA team")
    );
    let pii = config
        .policy
        .masking_profile("pii")
        .expect("the example profile");
    assert_eq!(
        pii.key.as_ref().map(|key| key.value.to_string()),
        Some("env:SLUICE_MASK_KEY".to_owned())
    );
    assert_eq!(pii.columns[0].style, MaskStyle::Hash);
    assert_eq!(pii.detectors[0].detector, DetectorKind::Card);
    let identity = &config.identity;
    assert_eq!(identity.oidc.len(), 1);
    assert_eq!(identity.oidc[0].name, "corp");
    assert_eq!(identity.oidc[0].group_mapping["idp-dba"], ["dba"]);
    assert_eq!(identity.workload.len(), 1);
    assert_eq!(identity.workload[0].preset, Some(WorkloadPreset::Github));
    assert_eq!(
        identity.workload[0].subject.as_deref(),
        Some("github:{repository}:{workflow}")
    );
    assert_eq!(identity.workload[0].claims.len(), 2);
}
