//! The broker's configuration: `sluice.yaml` in, a validated [`Config`] or every problem out.
//!
//! Data flows in one direction: [`load`] reads the file, [`parse`] turns text into a tree of
//! positioned YAML nodes (`tree.rs`, built from yaml-rust2's marked events rather than serde so
//! that every value keeps its line and column), the schema (`schema.rs`) walks that tree with
//! error-collecting readers (`extract.rs`) and builds the model (`model.rs`, `policy.rs`,
//! `credential.rs`, `profiles.rs`); the `identity` and `policy` sections have their readers in
//! `identity.rs` and `policy_schema.rs`, the guardrail and masking profiles in
//! `profile_schema.rs`. Every problem is reported at once, as `file:line:col: key.path: message`.
//! [`Policy::decide`], [`may_decide`] and [`tally`] then evaluate requests and votes against the
//! loaded policy, purely.
//!
//! The crate is pure apart from reading the configuration file and, on request, the files and
//! environment variables it references ([`Config::check_environment`],
//! [`CredentialRef::resolve`]). Secrets never live in the configuration: passwords are
//! references, resolved into a [`sluice_shared::Secret`] only when needed.

mod credential;
mod enforceable;
mod environment;
mod extract;
mod http_schema;
mod identity;
mod kube_schema;
mod location;
mod model;
mod policy;
mod policy_schema;
mod profile_schema;
mod profiles;
mod schema;
mod ssh_schema;
mod starter;
mod tree;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use credential::{CredentialError, CredentialRef};
pub use location::{ConfigError, ConfigErrors, Located, Location};
pub use model::{
    ClientCert, Config, HttpAuthorization, HttpInject, HttpSpec, IdentityAssertion, IdentityConfig,
    JwksSource, KubeSpec, LimitsConfig, MetricsConfig, OidcIssuer, PostgresSpec, PostgresStore,
    RecordingConfig, Resource, ResourceSpec, S3Encryption, S3Recording, SshCredential, SshSpec,
    StoreConfig, SuperuserLogin, TargetTls, TcpSpec, TlsConfig, TlsMode, TokensConfig,
    WorkloadIssuer, WorkloadPreset,
};
pub use policy::{
    AgentWrites, Approval, ApprovalOverride, Auditors, Decision, ExecRuleSpec, Grantable, HttpRole,
    HttpRuleSpec, KubeRole, KubeRuleSpec, Need, Policy, Principal, RecordMode, Refusal,
    RefusalKind, Role, Rule, SqlRole, SshExec, SshFiles, SshRole, Tally, glob_match, may_decide,
    subject_match, tally,
};
pub use profiles::{
    ColumnMaskSpec, DetectorKind, DetectorSpec, GuardAction, GuardBase, GuardRuleSpec,
    GuardrailProfile, GuardrailsRef, MaskStyle, MaskingProfile,
};
pub use starter::{StarterOptions, starter_config};

/// Reads and parses the configuration file at `path`.
///
/// A file that cannot be read yields a single error located at line 0 (the whole file).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(error) => Err(ConfigErrors(vec![ConfigError {
            location: Location::whole_file(path),
            key: String::new(),
            message: format!("cannot read the configuration file: {error}"),
        }])),
    }
}

/// Parses configuration text. `path` names the file in messages, and relative paths in the
/// configuration are resolved against its directory.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let base = path.parent().unwrap_or(Path::new(""));
    let mut cx = extract::Cx::new(path, base);
    let document = match tree::read(text) {
        Ok(document) => document,
        Err(problem) => {
            // After a syntax error the parser cannot find the next node, so this is the only
            // error that can be reported reliably.
            cx.problem(problem);
            return Err(ConfigErrors(cx.into_errors()));
        }
    };
    for problem in document.problems {
        cx.problem(problem);
    }
    let config = schema::config(&mut cx, path, document.root.as_ref());
    match config {
        Some(config) if !cx.has_errors() => Ok(config),
        _ => {
            let mut errors = cx.into_errors();
            if errors.is_empty() {
                // Every reader reports before returning None; this guards that invariant
                // rather than ever returning an empty error list.
                errors.push(ConfigError {
                    location: Location::whole_file(path),
                    key: String::new(),
                    message: "invalid configuration".to_owned(),
                });
            }
            Err(ConfigErrors::sorted(errors))
        }
    }
}
