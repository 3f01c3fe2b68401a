//! The SSH parts of the configuration: `kind: ssh` resources (address, login, the broker's
//! key, the pinned host key) and a role's `ssh:` section (shell, exec rules).
//!
//! ```yaml
//! resources:
//!   web:
//!     kind: ssh
//!     address: web.internal:22
//!     user: deploy
//!     key: file:/etc/sluice/keys/web
//!     host_key: "ssh-ed25519 AAAAC3Nza…"      # or SHA256:…
//! policy:
//!   roles:
//!     ops:
//!       max_ttl: 1h
//!       ssh:
//!         shell: true
//!         exec:
//!           allow: [{name: listing, commands: ["ls", "ls *"]}]
//!           block: [{name: no-rm, commands: ["rm *"]}]
//!           approve: [{name: restarts, commands: ["systemctl restart *"]}]
//!           approvers: [sre]              # else the role's approval groups
//!         files:                          # SFTP, scp, rsync, git; none without this
//!           read_only: false
//!           allow: [/srv/app, /tmp]
//!           deny: ["/srv/app/secrets", "**/.ssh"]
//!         forward: ["127.0.0.1:5432"]     # ssh -L may reach these from the host
//!         logins: [app]                   # ssh app@web, besides the resource's user
//!         record_input: false             # keystrokes (passwords at prompts) not recorded
//!         remote_forward: false           # ssh -R
//!         agent: false                    # ssh -A
//! ```

use crate::extract::{Cx, Fields, Item};
use crate::location::Located;
use crate::model::{SshCredential, SshSpec};
use crate::policy::{ExecRuleSpec, SshExec, SshFiles, SshRole};
use crate::schema::{credential, optional};

const ROLE_SSH_KEYS: &[&str] = &[
    "shell",
    "exec",
    "files",
    "forward",
    "logins",
    "record_input",
    "remote_forward",
    "agent",
];
const FILES_KEYS: &[&str] = &["read_only", "allow", "deny"];
const EXEC_KEYS: &[&str] = &["allow", "block", "approve", "approvers"];
const EXEC_RULE_KEYS: &[&str] = &["name", "commands"];

/// The SSH settings of a `kind: ssh` resource.
pub(crate) fn resource(
    cx: &mut Cx<'_>,
    fields: &Fields<'_>,
    address: Option<String>,
) -> Option<SshSpec> {
    let user = cx.required(fields, "user").and_then(|item| cx.text(&item));
    let credential = login(cx, fields);
    let host_key = cx.required(fields, "host_key").and_then(|item| {
        let text = cx.text(&item)?;
        let text = text.trim().to_owned();
        if !is_host_key(&text) {
            cx.invalid(
                &item,
                "expected the host's public key as known_hosts writes it (\"ssh-ed25519 \
                 AAAA…\") or its fingerprint (\"SHA256:…\", from `ssh-keygen -lf`)",
            );
            return None;
        }
        Some(cx.located(&item, text))
    });
    Some(SshSpec {
        address: address?,
        user: user?,
        credential: credential?,
        host_key: host_key?,
    })
}

/// Exactly one of `key`, `password` and `ca` (with its `certificate_ttl`).
fn login(cx: &mut Cx<'_>, fields: &Fields<'_>) -> Option<Located<SshCredential>> {
    let written: Vec<Item<'_>> = ["key", "password", "ca"]
        .into_iter()
        .filter_map(|key| fields.optional(key))
        .collect();
    let ttl = fields.optional("certificate_ttl");
    let [item] = written.as_slice() else {
        let message = "write one of `key` (file:/env: of a private key), `password` (file:/env:) \
                       or `ca` (file:/env: of a user CA key the host trusts)";
        match written.get(1) {
            Some(second) => cx.invalid(second, format!("only one login credential: {message}")),
            None => cx.missing(fields, "key", message),
        }
        return None;
    };
    let secret = credential(cx, item)?;
    let ttl = match (&ttl, item.key.rsplit('.').next()) {
        (Some(ttl), Some("ca")) => {
            let ttl_value = crate::schema::duration(cx, ttl)?;
            if ttl_value < std::time::Duration::from_secs(60)
                || ttl_value > std::time::Duration::from_secs(24 * 3600)
            {
                cx.invalid(ttl, "a certificate lifetime between 1m and 24h, e.g. 5m");
                return None;
            }
            ttl_value
        }
        (Some(ttl), _) => {
            cx.invalid(ttl, "certificate_ttl only applies with `ca`");
            return None;
        }
        (None, _) => DEFAULT_CERTIFICATE_TTL,
    };
    let value = match item.key.rsplit('.').next() {
        Some("password") => SshCredential::Password(secret.value),
        Some("ca") => SshCredential::Ca {
            key: secret.value,
            ttl,
        },
        _ => SshCredential::Key(secret.value),
    };
    Some(cx.located(item, value))
}

/// How long a broker-signed user certificate is valid when `certificate_ttl` is not written.
const DEFAULT_CERTIFICATE_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// `algorithm base64` (a key) or `SHA256:base64` (a fingerprint).
fn is_host_key(text: &str) -> bool {
    let base64 = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    };
    if let Some(fingerprint) = text.strip_prefix("SHA256:") {
        return base64(fingerprint);
    }
    let mut parts = text.split_whitespace();
    let (Some(algorithm), Some(key)) = (parts.next(), parts.next()) else {
        return false;
    };
    (algorithm.starts_with("ssh-")
        || algorithm.starts_with("ecdsa-")
        || algorithm.starts_with("sk-"))
        && base64(key)
}

/// A role's `ssh:` section.
pub(crate) fn role(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<SshRole> {
    let fields = cx.fields(item, ROLE_SSH_KEYS)?;
    let shell = optional(fields.optional("shell"), |item| cx.boolean(item));
    let exec = optional(fields.optional("exec"), |item| exec(cx, item));
    let files = optional(fields.optional("files"), |item| files(cx, item));
    let forward = optional(fields.optional("forward"), |item| forwards(cx, item));
    let logins = optional(fields.optional("logins"), |item| cx.string_list(item));
    let record_input = optional(fields.optional("record_input"), |item| cx.boolean(item));
    let remote_forward = optional(fields.optional("remote_forward"), |item| cx.boolean(item));
    let agent = optional(fields.optional("agent"), |item| cx.boolean(item));
    Some(SshRole {
        shell: shell?.unwrap_or(false),
        exec: exec?.unwrap_or_default(),
        files: files?,
        forward: forward?.unwrap_or_default(),
        logins: logins?
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.value)
            .collect(),
        record_input: record_input?.unwrap_or(false),
        remote_forward: remote_forward?.unwrap_or(false),
        agent: agent?.unwrap_or(false),
    })
}

fn files(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<SshFiles> {
    let fields = cx.fields(item, FILES_KEYS)?;
    let read_only = optional(fields.optional("read_only"), |item| cx.boolean(item));
    let mut paths = |key: &str| {
        optional(fields.optional(key), |item| {
            let list = cx.string_list(item)?;
            let mut ok = true;
            for path in &list {
                if !(path.value.starts_with('/') || path.value.starts_with("**")) {
                    cx.invalid(
                        item,
                        format!(
                            "`{}` is not an absolute path; file rules match paths as the host \
                             resolves them (e.g. /srv/app, /home/*/.ssh, **/.git)",
                            path.value
                        ),
                    );
                    ok = false;
                }
            }
            ok.then(|| list.into_iter().map(|p| p.value).collect::<Vec<_>>())
        })
    };
    let allow = paths("allow");
    let deny = paths("deny");
    Some(SshFiles {
        read_only: read_only?.unwrap_or(false),
        allow: allow?.unwrap_or_default(),
        deny: deny?.unwrap_or_default(),
    })
}

fn forwards(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Vec<String>> {
    let list = cx.string_list(item)?;
    let mut ok = true;
    for entry in &list {
        let valid = entry.value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            cx.invalid(
                item,
                format!(
                    "`{}` is not host:port; list what `ssh -L` may reach from the host, e.g. \
                     127.0.0.1:5432",
                    entry.value
                ),
            );
            ok = false;
        }
    }
    ok.then(|| list.into_iter().map(|e| e.value).collect())
}

fn exec(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<SshExec> {
    let fields = cx.fields(item, EXEC_KEYS)?;
    let mut list = |key: &str| optional(fields.optional(key), |item| rules(cx, item));
    let allow = list("allow");
    let block = list("block");
    let approve = list("approve");
    let approvers = optional(fields.optional("approvers"), |item| cx.string_list(item));
    Some(SshExec {
        allow: allow?.unwrap_or_default(),
        block: block?.unwrap_or_default(),
        approve: approve?.unwrap_or_default(),
        approvers: approvers?
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.value)
            .collect(),
    })
}

fn rules(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Vec<ExecRuleSpec>> {
    crate::schema::list_of(
        cx,
        item,
        "a list of rules, e.g. [{name: listing, commands: [\"ls *\"]}]",
        rule,
    )
}

fn rule(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<ExecRuleSpec> {
    let fields = cx.fields(item, EXEC_RULE_KEYS)?;
    let name = cx.required(&fields, "name").and_then(|item| cx.text(&item));
    let commands = cx.required(&fields, "commands").and_then(|list| {
        let commands = cx.string_list(&list)?;
        if commands.is_empty() {
            cx.invalid(&list, "list at least one command pattern, e.g. [\"ls *\"]");
            return None;
        }
        Some(commands.into_iter().map(|c| c.value).collect())
    });
    Some(ExecRuleSpec {
        name: name?,
        commands: commands?,
    })
}
