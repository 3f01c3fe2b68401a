//! The commented starter configuration that `sluiced init` writes.
//!
//! It is the first documentation most operators read, so every key is explained where it is set,
//! and the resource, rule and profile examples sit commented out in place, ready to be
//! uncommented. Two roles (`read`, granted at once, and `write`, after approval) are written
//! live: a role grants nothing until a rule names it. The template must always load with
//! [`crate::parse`], as written and with its examples uncommented; tests hold it to both.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// The values `sluiced init` has chosen or generated; paths are written as given, so they should
/// be relative to the configuration file's directory (or absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterOptions {
    /// The listen address.
    pub listen: SocketAddr,
    /// The broker certificate chain `init` wrote.
    pub tls_cert: String,
    /// The broker private key `init` wrote.
    pub tls_key: String,
    /// The CA `init` generated, which clients must trust.
    pub tls_ca: String,
    /// The session-token signing key `init` generated.
    pub signing_key: String,
    /// The SQLite database path.
    pub sqlite: String,
}

/// Renders the starter YAML.
pub fn starter_config(opts: &StarterOptions) -> String {
    let listen = scalar(&opts.listen.to_string());
    let cert = scalar(&opts.tls_cert);
    let key = scalar(&opts.tls_key);
    let ca = scalar(&opts.tls_ca);
    let signing_key = scalar(&opts.signing_key);
    let sqlite = scalar(&opts.sqlite);
    format!(
        r#"# sluiced configuration.
#
# Relative paths are resolved against the directory of this file. Run `sluiced check-config`
# after editing: every problem is reported with its line, and referenced files and
# environment variables are checked too.

# The address the broker listens on (IP:PORT), for both its HTTPS API and tunnels.
listen: {listen}

# The broker's own TLS identity. TLS is always on: session tokens travel over it.
tls:
  # PEM certificate chain, leaf first.
  cert: {cert}
  # PEM private key of that certificate.
  key: {key}
  # The CA clients should trust; only used in messages telling you what to give to `sluice`.
  ca: {ca}

# Broker session tokens, which `sluice` presents on every request.
tokens:
  # Ed25519 private key (PKCS#8 PEM) that signs tokens. Anyone holding it can mint tokens.
  signing_key: {signing_key}
  # Lifetime of a token when the client does not ask for one (e.g. 30m, 1h, 8h).
  default_ttl: 1h
  # The longest lifetime a token may have; must be at least default_ttl.
  max_ttl: 12h

# The broker's own embedded database (grants, audit trail). Its directory must exist.
store:
  sqlite: {sqlite}

# How people and workloads log in. Without this section only operator tokens are accepted.
# Uncomment and adapt; names are unique across oidc and workload.
# identity:
  # leeway: 60s                        # clock skew allowed on token times
  # jwks_refresh_interval: 5m          # at most one key refresh per issuer per interval
  # jwks_max_stale: 24h                # keep using cached keys this long if the IdP is down
  # oidc:                              # people, through `sluice login` (device flow)
  #   - name: corp
  #     issuer: https://idp.example.com/realms/acme
  #     client_id: sluice-cli          # the public client the CLI uses
  #     audience: sluice-cli           # optional; defaults to client_id
  #     scopes: [openid, profile, email, groups, offline_access]   # must include openid
  #     username_claim: preferred_username
  #     groups_claim: groups
  #     group_mapping:                 # optional; when set, only mapped groups are kept
  #       idp-dba: [dba]
  #     # jwks_uri or jwks_file override discovery of the signing keys
  # workload:                          # CI jobs and agents presenting their own tokens
  #   - name: github-deploy
  #     preset: github                 # github, gitlab or kubernetes (which needs issuer)
  #     audience: https://sluice.example.com   # the aud the CI token must carry
  #     subject: "github:{{repository}}:{{workflow}}"   # optional with a preset
  #     claims:                        # all must match; exact values or globs with * and ?
  #       repository: acme/*
  #       ref: refs/heads/main
  #     groups: [ci-deployers]

# Targets the broker opens tunnels to, by name. Names use lowercase letters, digits,
# '-', '_' and '.', at most 63 characters. Uncomment and adapt the examples below.
resources:
  # A PostgreSQL server. The broker logs in with its own credential, which users never see.
  # pg-main:
  #   kind: postgres
  #   address: 127.0.0.1:5432          # host:port of the server
  #   database: app                    # the database the broker connects to
  #   user: app                        # the role the broker logs in as
  #   password: env:PG_APP_PASSWORD    # env:NAME or file:PATH; never the password itself
  #   tls:                             # optional; TLS from the broker to the server
  #     mode: verify-full              # disable (default), require or verify-full
  #     ca: tls/pg-ca.crt              # required with verify-full
  #     server_name: db.internal       # optional; defaults to the host of address
  #   labels: {{env: prod}}              # optional; free-form labels shown in listings
  #   description: Main app database   # optional; shown in listings
  #
  # Any other TCP service, relayed byte for byte.
  # cache:
  #   kind: tcp
  #   address: 127.0.0.1:6379

# Who may do what (docs/policy.md). Roles say how long a grant lasts and whether someone must
# approve it first; rules say who may request which roles on which resources. Nothing is
# allowed unless a rule allows it, and the first rule that matches wins. Try a request with
# `sluiced policy explain --config FILE --subject alice --groups dba --resource pg-main`.
policy:
  roles:
    read:
      description: Read-only queries
      max_ttl: 8h                      # longer requests are capped to this
      default_ttl: 1h                  # when a request names no TTL; at most max_ttl
      # guardrails: analyst            # a profile below, or read-only, guarded-write, admin
      # masking: pii                   # a masking profile below
      # without approval, granted at once
    write:
      description: Changes, once a DBA lead agrees
      max_ttl: 1h
      approval:                        # remove to grant at once
        groups: [dba-leads]            # members of any of these may approve or deny
        count: 1                       # distinct approvers needed
        self_approve: false            # requesters never approve themselves unless true
        timeout: 15m                   # an undecided request expires after this
  rules:
    # - name: engineers-read           # unique; recorded in the audit trail
    #   groups: [engineering]          # a rule needs subjects, groups or both
    #   resources: ["*"]               # resource names, or globs using * and ?
    #   roles: [read]                  # roles defined above; the first is the default
    # - name: dba-write
    #   subjects: [alice]              # user or workload subjects; globs using * and ?
    #   groups: [dba]
    #   labels: {{env: prod}}            # only resources with all these labels
    #   roles: [read, write]
    # - name: ci-migrate
    #   subjects: ["github:acme/api:refs/heads/main:*"]   # a GitHub workflow, only on main
    #   resources: [pg-main]
    #   roles: [write]
    #   approval: none                 # replaces the role's approval: a CI job cannot wait
  # What a session may run (docs/guardrails.md). A role's guardrails names a built-in
  # (read-only, guarded-write or admin) or one of these profiles, which extend a built-in
  # with rules checked first, in order; the first rule that matches a statement wins.
  # guardrails:
  #   analyst:
  #     base: read-only                # read-only, guarded-write or admin
  #     approvers: [dba-leads]         # who may release held statements; default the role's
  #     approval_timeout: 5m           # a held statement nobody decides in time is denied
  #     rules:
  #       - name: no-payroll           # unique in the profile; named in the audit trail
  #         action: block              # block, or approve to hold until an approver decides
  #         tables: ["payroll.*"]      # also classes, schemas, functions, commands, pattern
  #         message: Payroll is off limits here; ask the DBA team
  #       - name: hold-drops
  #         action: approve
  #         commands: [DROP TABLE, TRUNCATE]
  # Which values a session sees (docs/masking.md). A role's masking names one of these.
  # masking:
  #   pii:
  #     key: env:SLUICE_MASK_KEY       # keys the hash style; env:NAME or file:PATH
  #     columns:                       # whole columns, by name
  #       - name: emails               # unique in the profile; audit counts name it
  #         column: "*.email"          # column, table.column, schema.table.column or re:REGEX
  #         style: hash                # redact, last4 or hash (equal values stay equal)
  #     detectors:                     # values found anywhere, whatever the column
  #       - name: cards
  #         detector: card             # card, email, ssn, iban, phone or secret
  #         style: last4
"#
    )
}

/// Writes `text` as a YAML scalar: plain when that reads back unchanged, double-quoted otherwise
/// (IPv6 listen addresses start with `[`, Windows paths hold `\`, paths may hold `#` or `: `).
fn scalar(text: &str) -> String {
    let plain_safe = !text.is_empty()
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.')
        && !text.ends_with(':')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':'));
    if plain_safe && !matches!(text, "null" | "Null" | "NULL" | "~") {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                // Infallible: writing to a String cannot fail.
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
