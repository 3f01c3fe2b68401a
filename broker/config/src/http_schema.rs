//! The HTTP parts of the configuration: `kind: http` resources (the service, its pinned CA,
//! what the broker injects, the signed identity assertion) and a role's `http:` section (a
//! profile, allow/block/approve rules by method and path, approvers, masking).
//!
//! ```yaml
//! resources:
//!   billing-api:
//!     kind: http
//!     address: billing.internal:8443
//!     ca: /etc/sluice/billing-ca.pem         # HTTPS, only this CA trusted
//!     inject:
//!       bearer: env:BILLING_TOKEN            # or basic: {user: svc, password: file:...}
//!       headers: {X-Api-Key: file:/etc/sluice/billing-key}
//!     identity: {header: Sluice-Identity, ttl: 5m}   # a JWT of the caller, signed by the broker
//!   local-admin:
//!     kind: http
//!     address: 127.0.0.1:8080
//!     plaintext: true                        # plain HTTP: loopback addresses only
//! policy:
//!   roles:
//!     billing-reader:
//!       http: {profile: http-read-only, mask: ["$.customers[*].email"]}
//!     billing-operator:
//!       http:
//!         block: [{name: no-admin, paths: ["/admin", "/admin/*"]}]
//!         approve: [{name: refunds, methods: [POST], paths: ["/v1/refunds*"]}]
//!         approvers: [finance]
//!         masking: pii
//! ```

use crate::extract::{Cx, Fields, Item};
use crate::location::Located;
use crate::model::{HttpAuthorization, HttpInject, HttpSpec, IdentityAssertion};
use crate::policy::{HttpRole, HttpRuleSpec};
use crate::schema::{credential, optional};
use std::time::Duration;

const ROLE_KEYS: &[&str] = &[
    "profile",
    "allow",
    "block",
    "approve",
    "approvers",
    "masking",
    "mask",
    "record_bodies",
];
const RULE_KEYS: &[&str] = &["name", "methods", "paths"];
const INJECT_KEYS: &[&str] = &["bearer", "basic", "headers"];
const BASIC_KEYS: &[&str] = &["user", "password"];
const IDENTITY_KEYS: &[&str] = &["header", "ttl"];
/// The built-in profiles (their rules live in the engine).
pub const PROFILES: &[&str] = &["http-read-only"];
/// Methods a rule may name.
const METHODS: &[&str] = &[
    "*", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE",
];
/// Headers the broker owns on the way to the service; `inject.headers` may not name them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];
const DEFAULT_IDENTITY_HEADER: &str = "Sluice-Identity";
const DEFAULT_IDENTITY_TTL: Duration = Duration::from_secs(5 * 60);

/// The settings of a `kind: http` resource.
pub(crate) fn resource(
    cx: &mut Cx<'_>,
    fields: &Fields<'_>,
    address: Option<String>,
) -> Option<HttpSpec> {
    let ca_item = fields.optional("ca");
    let ca = optional(ca_item.clone(), |item| cx.path(item));
    let server_name = optional(fields.optional("server_name"), |item| cx.text(item));
    let plaintext_item = fields.optional("plaintext");
    let plaintext = optional(plaintext_item.clone(), |item| cx.boolean(item));
    let inject = optional(fields.optional("inject"), |item| inject(cx, item));
    let identity = optional(fields.optional("identity"), |item| identity(cx, item));
    let client_cert = crate::schema::client_cert(cx, fields);
    let (ca, plaintext) = (ca?, plaintext?.unwrap_or(false));
    match (&ca, plaintext, &plaintext_item) {
        (Some(_), true, Some(item)) => {
            cx.invalid(item, "write `ca` (HTTPS) or `plaintext: true`, not both");
            return None;
        }
        (None, false, _) => {
            cx.missing(
                fields,
                "ca",
                "an http resource needs `ca` (the CA of the service's HTTPS certificate, the \
                 only one trusted), or `plaintext: true` for a service on this machine's \
                 loopback address",
            );
            return None;
        }
        (None, true, Some(item)) => {
            if let Some(address) = &address
                && !loopback(address)
            {
                cx.invalid(
                    item,
                    format!(
                        "plain HTTP is only for a loopback address (127.0.0.1, ::1, localhost), \
                         not {address}: anything leaving this machine goes over TLS; write \
                         `ca` instead"
                    ),
                );
                return None;
            }
        }
        _ => {}
    }
    Some(HttpSpec {
        address: address?,
        ca,
        server_name: server_name?,
        inject: inject?.unwrap_or_default(),
        identity: identity?,
        client_cert: client_cert?,
    })
}

/// Whether `host:port` names this machine's loopback interface.
fn loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `inject: {bearer | basic, headers}`.
fn inject(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<HttpInject> {
    let fields = cx.fields(item, INJECT_KEYS)?;
    let bearer = optional(fields.optional("bearer"), |item| credential(cx, item));
    let basic = optional(fields.optional("basic"), |item| {
        let inner = cx.fields(item, BASIC_KEYS)?;
        let user = cx.required(&inner, "user").and_then(|u| cx.text(&u));
        let password = cx
            .required(&inner, "password")
            .and_then(|p| credential(cx, &p));
        let (user, password) = (user?, password?);
        if user.contains(':') {
            cx.invalid(item, "a basic-auth user name may not contain ':'");
            return None;
        }
        Some(cx.located(
            item,
            HttpAuthorization::Basic {
                user,
                password: password.value,
            },
        ))
    });
    let headers = optional(fields.optional("headers"), |item| {
        let map = cx.mapping(
            item,
            "a mapping of header names to secrets, e.g. {X-Api-Key: env:KEY}",
        )?;
        let mut out = Some(Vec::new());
        for (name, value) in map.all() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid {
                cx.invalid(&value, format!("\"{name}\" is not a header name"));
                out = None;
                continue;
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                cx.invalid(
                    &value,
                    format!(
                        "{name} is the broker's own (use `bearer` or `basic` for Authorization)"
                    ),
                );
                out = None;
                continue;
            }
            let secret = credential(cx, &value);
            out = out
                .zip(secret)
                .map(|(mut all, secret): (Vec<(String, Located<_>)>, _)| {
                    all.push((name.to_owned(), secret));
                    all
                });
        }
        out
    });
    let authorization = match (bearer?, basic?) {
        (Some(_), Some(basic)) => {
            cx.push(
                basic
                    .error("write `bearer` or `basic`, not both: each is the Authorization header"),
            );
            return None;
        }
        (Some(bearer), None) => Some(Located {
            value: HttpAuthorization::Bearer(bearer.value),
            location: bearer.location,
            key: bearer.key,
        }),
        (None, basic) => basic,
    };
    Some(HttpInject {
        authorization,
        headers: headers?.unwrap_or_default(),
    })
}

/// `identity: {header, ttl}`.
fn identity(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<IdentityAssertion> {
    let fields = cx.fields(item, IDENTITY_KEYS)?;
    let header = optional(fields.optional("header"), |item| {
        let name = cx.text(item)?;
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid || RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            cx.invalid(
                item,
                format!("\"{name}\" cannot carry the assertion; e.g. Sluice-Identity"),
            );
            return None;
        }
        Some(name)
    });
    let ttl = optional(fields.optional("ttl"), |item| {
        let ttl = crate::schema::duration(cx, item)?;
        if ttl < Duration::from_secs(30) || ttl > Duration::from_secs(3600) {
            cx.invalid(item, "an assertion lifetime between 30s and 1h, e.g. 5m");
            return None;
        }
        Some(ttl)
    });
    Some(IdentityAssertion {
        header: header?.unwrap_or_else(|| DEFAULT_IDENTITY_HEADER.to_owned()),
        ttl: ttl?.unwrap_or(DEFAULT_IDENTITY_TTL),
    })
}

/// A role's `http:` section.
pub(crate) fn role(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<HttpRole> {
    let fields = cx.fields(item, ROLE_KEYS)?;
    let profile = optional(fields.optional("profile"), |item| {
        let text = cx.text(item)?;
        if PROFILES.contains(&text.as_str()) {
            Some(text)
        } else {
            cx.invalid(
                item,
                crate::schema::unknown_choice("profile", &text, PROFILES),
            );
            None
        }
    });
    let mut list = |key: &str| optional(fields.optional(key), |item| rules(cx, item));
    let allow = list("allow");
    let block = list("block");
    let approve = list("approve");
    let approvers = optional(fields.optional("approvers"), |item| cx.string_list(item))
        .map(|v| v.unwrap_or_default().into_iter().map(|l| l.value).collect());
    let masking = optional(fields.optional("masking"), |item| {
        let name = cx.text(item)?;
        Some(cx.located(item, name))
    });
    let mask = optional(fields.optional("mask"), |item| cx.string_list(item));
    let record_bodies = optional(fields.optional("record_bodies"), |item| cx.boolean(item));
    Some(HttpRole {
        profile: profile?,
        allow: allow?.unwrap_or_default(),
        block: block?.unwrap_or_default(),
        approve: approve?.unwrap_or_default(),
        approvers: approvers?,
        masking: masking?,
        mask: mask?.unwrap_or_default(),
        record_bodies: record_bodies?.unwrap_or(false),
    })
}

fn rules(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<Vec<HttpRuleSpec>> {
    crate::schema::list_of(
        cx,
        item,
        "a list of rules, e.g. [{name: no-admin, methods: [DELETE], paths: [\"/admin/*\"]}]",
        rule,
    )
}

fn rule(cx: &mut Cx<'_>, item: &Item<'_>) -> Option<HttpRuleSpec> {
    let fields = cx.fields(item, RULE_KEYS)?;
    let name = cx.required(&fields, "name").and_then(|item| cx.text(&item));
    let methods = optional(fields.optional("methods"), |item| cx.string_list(item));
    let paths = optional(fields.optional("paths"), |item| cx.string_list(item));
    let (name, methods, paths) = (
        name?,
        methods?.unwrap_or_default(),
        paths?.unwrap_or_default(),
    );
    let mut ok = true;
    for method in &methods {
        if !METHODS.contains(&method.value.as_str()) {
            let message = if METHODS.contains(&method.value.to_ascii_uppercase().as_str()) {
                format!(
                    "methods are upper case: write {}",
                    method.value.to_ascii_uppercase()
                )
            } else {
                crate::schema::unknown_choice("method", &method.value, METHODS)
            };
            cx.push(method.error(message));
            ok = false;
        }
    }
    for path in &paths {
        if !path.value.starts_with('/') && path.value != "*" {
            cx.push(path.error(format!(
                "a path glob starts with / (e.g. /v1/*), not \"{}\"",
                path.value
            )));
            ok = false;
        }
    }
    ok.then(|| HttpRuleSpec {
        name,
        methods: methods.into_iter().map(|m| m.value).collect(),
        paths: paths.into_iter().map(|p| p.value).collect(),
    })
}
