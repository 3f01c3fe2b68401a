//! The `identity` section: OpenID providers for people and trust rules for workload tokens.
//!
//! Read like the rest of the schema (see `schema.rs`): every problem is recorded at its key and
//! the section is only built when there were none. Cross-checks: names are unique across `oidc`
//! and `workload`, `jwks_uri` and `jwks_file` exclude each other, and what a preset does not
//! supply (issuer, subject) must be written.

use std::collections::BTreeMap;

use crate::extract::{Cx, Fields, Item, join_key};
use crate::model::{
    DEFAULT_JWKS_MAX_STALE, DEFAULT_JWKS_REFRESH_INTERVAL, DEFAULT_LEEWAY, IdentityConfig,
    JwksSource, OidcIssuer, WorkloadIssuer, WorkloadPreset,
};
use crate::schema::{duration, is_resource_name, optional, unknown_choice};

const IDENTITY_KEYS: &[&str] = &[
    "leeway",
    "jwks_refresh_interval",
    "jwks_max_stale",
    "oidc",
    "workload",
];
const OIDC_KEYS: &[&str] = &[
    "name",
    "issuer",
    "client_id",
    "audience",
    "scopes",
    "username_claim",
    "groups_claim",
    "group_mapping",
    "jwks_uri",
    "jwks_file",
];
const WORKLOAD_KEYS: &[&str] = &[
    "name",
    "preset",
    "issuer",
    "audience",
    "subject",
    "claims",
    "groups",
    "jwks_uri",
    "jwks_file",
];
const PRESETS: &[&str] = &["github", "gitlab", "kubernetes"];
const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];
const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";
const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// Names read so far with the line of their first use, shared by `oidc` and `workload`.
type Seen = Vec<(String, usize)>;

pub(crate) fn identity(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<IdentityConfig> {
    let fields = cx.fields(item, IDENTITY_KEYS)?;
    let read_duration = |cx: &mut Cx<'_>, name: &str, default| {
        optional(fields.optional(name), |item| duration(cx, item)).map(|d| d.unwrap_or(default))
    };
    let leeway = read_duration(cx, "leeway", DEFAULT_LEEWAY);
    let jwks_refresh_interval =
        read_duration(cx, "jwks_refresh_interval", DEFAULT_JWKS_REFRESH_INTERVAL);
    let jwks_max_stale = read_duration(cx, "jwks_max_stale", DEFAULT_JWKS_MAX_STALE);
    let mut seen = Seen::new();
    let oidc = each(
        cx,
        fields.entry("oidc"),
        "a list of OpenID providers",
        |cx, item| oidc_issuer(cx, item, &mut seen),
    );
    let workload = each(
        cx,
        fields.entry("workload"),
        "a list of workload trust rules",
        |cx, item| workload_issuer(cx, item, &mut seen),
    );
    Some(IdentityConfig {
        leeway: leeway?,
        jwks_refresh_interval: jwks_refresh_interval?,
        jwks_max_stale: jwks_max_stale?,
        oidc: oidc?,
        workload: workload?,
    })
}

/// Reads every item of an optional list, carrying on past bad items so all are reported.
fn each<'n, T>(
    cx: &mut Cx<'_>,
    item: Option<Item<'n>>,
    expected: &str,
    mut read: impl FnMut(&mut Cx<'_>, &Item<'n>) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(item) = item else {
        return Some(Vec::new());
    };
    let items = cx.list(&item, expected)?;
    let mut all = Some(Vec::with_capacity(items.len()));
    for item in &items {
        let one = read(cx, item);
        all = all.zip(one).map(|(mut all, one)| {
            all.push(one);
            all
        });
    }
    all
}

/// The entry's `name`: well-formed and not used by an earlier `oidc` or `workload` entry.
fn name(cx: &mut Cx<'_>, fields: &Fields<'_>, seen: &mut Seen) -> Option<String> {
    let item = cx.required(fields, "name")?;
    let name = cx.text(&item)?;
    if !is_resource_name(&name) {
        cx.invalid(
            &item,
            "invalid name: use 1 to 63 lowercase letters, digits, '-', '_' or '.', starting \
             with a letter or digit",
        );
        return None;
    }
    if let Some((_, line)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
        cx.invalid(
            &item,
            format!(
                "duplicate identity name \"{name}\" (first used at line {line}); names are \
                 unique across oidc and workload"
            ),
        );
        return None;
    }
    seen.push((name.clone(), item.pos.line));
    Some(name)
}

fn oidc_issuer(cx: &mut Cx<'_>, item: &Item<'_>, seen: &mut Seen) -> Option<OidcIssuer> {
    let fields = cx.fields(item, OIDC_KEYS)?;
    let name = name(cx, &fields, seen);
    let issuer = cx
        .required(&fields, "issuer")
        .and_then(|item| url(cx, &item));
    let client_id = cx
        .required(&fields, "client_id")
        .and_then(|item| cx.text(&item));
    let audience = optional(fields.optional("audience"), |item| cx.text(item));
    let scopes = optional(fields.optional("scopes"), |item| {
        let scopes = cx.string_list(item)?;
        if !scopes.iter().any(|scope| scope.value == "openid") {
            cx.invalid(
                item,
                "scopes must include openid, otherwise the provider issues no ID token",
            );
            return None;
        }
        Some(scopes.into_iter().map(|scope| scope.value).collect())
    });
    let username_claim = optional(fields.optional("username_claim"), |item| cx.text(item));
    let groups_claim = optional(fields.optional("groups_claim"), |item| cx.text(item));
    let group_mapping = optional(fields.optional("group_mapping"), |item| {
        group_mapping(cx, item)
    });
    let jwks = jwks(cx, &fields);
    let client_id = client_id?;
    Some(OidcIssuer {
        name: name?,
        issuer: issuer?,
        audience: audience?.unwrap_or_else(|| client_id.clone()),
        client_id,
        scopes: scopes?.unwrap_or_else(|| {
            DEFAULT_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect()
        }),
        username_claim: username_claim?.unwrap_or_else(|| DEFAULT_USERNAME_CLAIM.to_owned()),
        groups_claim: groups_claim?.unwrap_or_else(|| DEFAULT_GROUPS_CLAIM.to_owned()),
        group_mapping: group_mapping?.unwrap_or_default(),
        jwks: jwks?,
        location: cx.location(item.pos),
    })
}

fn group_mapping(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<BTreeMap<String, Vec<String>>> {
    let fields = cx.mapping(
        item,
        "a mapping of IdP groups to lists of broker groups, e.g. {idp-dba: [dba]}",
    )?;
    let mut mapping = Some(BTreeMap::new());
    for (idp_group, item) in fields.all() {
        let groups = cx.string_list(&item);
        mapping = mapping.zip(groups).map(|(mut all, groups)| {
            all.insert(
                idp_group.to_owned(),
                groups.into_iter().map(|group| group.value).collect(),
            );
            all
        });
    }
    mapping
}

fn workload_issuer(cx: &mut Cx<'_>, item: &Item<'_>, seen: &mut Seen) -> Option<WorkloadIssuer> {
    let fields = cx.fields(item, WORKLOAD_KEYS)?;
    let name = name(cx, &fields, seen);
    let preset = optional(fields.optional("preset"), |item| {
        let text = cx.text(item)?;
        match text.as_str() {
            "github" => Some(WorkloadPreset::Github),
            "gitlab" => Some(WorkloadPreset::Gitlab),
            "kubernetes" => Some(WorkloadPreset::Kubernetes),
            other => {
                cx.invalid(item, unknown_choice("preset", other, PRESETS));
                None
            }
        }
    });
    let issuer = optional(fields.optional("issuer"), |item| url(cx, item));
    let audience = cx
        .required(&fields, "audience")
        .and_then(|item| cx.text(&item));
    let subject = optional(fields.optional("subject"), |item| {
        let text = cx.text(item)?;
        match check_template(&text) {
            Ok(()) => Some(text),
            Err(why) => {
                cx.invalid(item, format!("invalid subject template \"{text}\": {why}"));
                None
            }
        }
    });
    let claims = optional(fields.optional("claims"), |item| claims(cx, item));
    let groups = optional(fields.optional("groups"), |item| cx.string_list(item));
    let jwks = jwks(cx, &fields);

    // What the preset does not supply must be written; only judged once the preset is known.
    let preset = preset?;
    let missing = |cx: &mut Cx<'_>, key: &str, why: &str| {
        cx.error(
            fields.item.pos,
            &join_key(&fields.item.key, key),
            format!("missing required key: {why}"),
        );
    };
    let mut ok = true;
    if fields.optional("issuer").is_none() {
        match preset {
            None => {
                ok = false;
                missing(
                    cx,
                    "issuer",
                    "set issuer, or a preset (github, gitlab) that knows it",
                );
            }
            Some(WorkloadPreset::Kubernetes) => {
                ok = false;
                missing(
                    cx,
                    "issuer",
                    "preset kubernetes needs the cluster's service-account issuer",
                );
            }
            Some(WorkloadPreset::Github | WorkloadPreset::Gitlab) => {}
        }
    }
    if preset.is_none() && fields.optional("subject").is_none() {
        ok = false;
        missing(
            cx,
            "subject",
            "without a preset, subject must say how to name the workload, e.g. \"ci:{sub}\"",
        );
    }
    if !ok {
        return None;
    }
    Some(WorkloadIssuer {
        name: name?,
        preset,
        issuer: issuer?,
        audience: audience?,
        subject: subject?,
        claims: claims?.unwrap_or_default(),
        groups: groups?
            .unwrap_or_default()
            .into_iter()
            .map(|group| group.value)
            .collect(),
        jwks: jwks?,
        location: cx.location(item.pos),
    })
}

fn claims(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Vec<(String, String)>> {
    let fields = cx.mapping(
        item,
        "a mapping of claims to patterns, e.g. {repository: acme/*}",
    )?;
    let mut claims = Some(Vec::new());
    for (claim, item) in fields.all() {
        let claim_ok = !claim.is_empty() && claim.split('.').all(|part| !part.is_empty());
        if !claim_ok {
            cx.invalid(
                &item,
                format!("invalid claim name \"{claim}\": write a claim or a dotted path, e.g. a.b"),
            );
        }
        let pattern = cx.text(&item);
        claims = claims
            .zip(pattern)
            .filter(|_| claim_ok)
            .map(|(mut all, pattern)| {
                all.push((claim.to_owned(), pattern));
                all
            });
    }
    claims
}

/// `jwks_uri`, `jwks_file`, or neither (discovery); both is an error at `jwks_file`.
fn jwks(cx: &mut Cx<'_>, fields: &Fields<'_>) -> Option<JwksSource> {
    let uri_item = fields.optional("jwks_uri");
    let file_item = fields.optional("jwks_file");
    let uri = optional(uri_item.clone(), |item| url(cx, item));
    let file = optional(file_item.clone(), |item| cx.path(item));
    if let (Some(_), Some(file_item)) = (&uri_item, &file_item) {
        cx.invalid(
            file_item,
            "jwks_uri and jwks_file exclude each other; keep one",
        );
        return None;
    }
    Some(match (uri?, file?) {
        (Some(uri), _) => JwksSource::Uri(uri),
        (None, Some(file)) => JwksSource::File(file),
        (None, None) => JwksSource::Discovery,
    })
}

/// An issuer or JWKS URL, kept as written.
fn url(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<String> {
    let text = cx.text(item)?;
    match check_url(&text) {
        Ok(()) => Some(text),
        Err(why) => {
            cx.invalid(item, format!("invalid URL \"{text}\": {why}"));
            None
        }
    }
}

/// `https://host[:port][/path]`; plain `http://` only towards the local machine, where there is
/// no network to tamper with the keys. Tokens carry the issuer verbatim, so a query or fragment
/// would never match.
fn check_url(text: &str) -> Result<(), String> {
    let (secure, rest) = if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("expected an https:// URL".to_owned());
    };
    if text.contains('?') || text.contains('#') {
        return Err("a query (?) or fragment (#) is not allowed".to_owned());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("user information (user@) is not allowed".to_owned());
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err("unclosed [ in the host".to_owned());
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address between [ and ]".to_owned());
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err("unexpected text after ]".to_owned()),
            },
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".to_owned());
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err("the host must be a DNS name or an IP address".to_owned());
    }
    if let Some(port) = port {
        let port_ok = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|port| port != 0);
        if !port_ok {
            return Err("the port must be a number from 1 to 65535".to_owned());
        }
    }
    let loopback = matches!(host, "127.0.0.1" | "::1") || host.eq_ignore_ascii_case("localhost");
    if !secure && !loopback {
        return Err(format!(
            "http:// is only allowed for 127.0.0.1, localhost or [::1]; use https://{rest}"
        ));
    }
    Ok(())
}

/// Placeholders are `{claim}` or `{dotted.claim}`; text outside them is literal.
fn check_template(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unclosed {{ at character {}",
                text.len() - rest.len() + start + 1
            ));
        };
        let inner = &after[..end];
        if inner.contains('{') {
            return Err(format!(
                "unclosed {{ at character {}",
                text.len() - rest.len() + start + 1
            ));
        }
        if inner.trim().is_empty() {
            return Err("empty placeholder {}; name a claim, e.g. {sub}".to_owned());
        }
        if inner.split('.').any(str::is_empty) {
            return Err(format!(
                "invalid placeholder {{{inner}}}: write a claim or a dotted path, e.g. {{a.b}}"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_template, check_url};

    #[test]
    fn urls() {
        for ok in [
            "https://idp.example.com/realms/acme",
            "https://token.actions.githubusercontent.com",
            "https://idp.example.com:8443/",
            "http://127.0.0.1:8080/realms/x",
            "http://localhost/x",
            "http://[::1]:9000",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "idp.example.com",
            "ftp://idp.example.com",
            "http://idp.example.com",
            "http://10.0.0.1",
            "https://idp.example.com/?x=1",
            "https://idp.example.com/#frag",
            "https://",
            "https://user@idp.example.com",
            "https://idp.example.com:0",
            "https://idp.example.com:x",
            "https://[zz]/",
            "https://ex ample.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates() {
        for ok in [
            "github:{repository}:{workflow}",
            "k8s:{kubernetes.io.namespace}",
            "plain",
        ] {
            assert_eq!(check_template(ok), Ok(()), "{ok}");
        }
        for bad in ["a:{repo", "a:{}", "a:{ }", "{a{b}", "{a..b}"] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }
}
