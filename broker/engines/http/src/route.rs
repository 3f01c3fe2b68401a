//! Requests to an HTTP service judged by method and path: a role's allow/block/approve rules,
//! the built-in `http-read-only` profile, and the refusals that no rule can override.
//!
//! ```text
//!  method, path, query ──▶ a method other than GET HEAD OPTIONS POST PUT PATCH DELETE? ──▶ Block http:method
//!                          a method override (_method=, X-HTTP-Method-Override)?        ──▶ Block http:method-override
//!                          a path the service might read otherwise (.., %2F, \, ;)?    ──▶ Block http:suspicious-path
//!                          a block rule matches?    ──▶ Block (that rule)
//!                          an approve rule matches? ──▶ Hold  (that rule)
//!                          no allow rules, or one matches? ──▶ Allow
//!                          otherwise ──▶ Block http:not-allowed
//! ```
//!
//! Paths are judged decoded and normalized (`/v1/a%20b/` is `/v1/a b`), and only paths whose
//! reading is unambiguous are relayed at all: a dot segment, an encoded slash or backslash, a
//! raw backslash, a `;` (path parameters, which Java servers strip), an empty segment or a
//! double encoding could make the service see another path than the rules saw, so they are
//! refused. Rule paths are globs over the normalized path: `*` matches any run of characters,
//! slashes included (`/v1/*` covers `/v1/a/b`); `/admin` covers `/admin/` too. Matching is
//! case-sensitive, as HTTP paths are.

use crate::kube::Decision;
use sluice_engine::glob::glob;

/// The methods relayed; anything else (TRACE, CONNECT, WebDAV verbs, lower case) is refused.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];

/// Headers some frameworks read as the request's real method, or its real path (IIS and
/// Symfony route by `X-Original-URL`/`X-Rewrite-URL`): a request carrying one could reach
/// another method or path than the rules judged.
pub const OVERRIDE_HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// One rule: which requests it covers. Empty lists match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRule {
    /// Named in refusals and audit (`http-read-only:read`).
    pub name: String,
    /// Methods, upper case, or `*`.
    pub methods: Vec<String>,
    /// Path globs over the normalized path.
    pub paths: Vec<String>,
}

impl RouteRule {
    /// Whether the rule covers `method` on the normalized `path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok =
            self.methods.is_empty() || self.methods.iter().any(|m| m == "*" || m == method);
        let path_ok = self.paths.is_empty() || self.paths.iter().any(|p| path_matches(p, path));
        method_ok && path_ok
    }
}

/// `/admin` covers `/admin` and `/admin/`; globs cover what they match.
fn path_matches(pattern: &str, path: &str) -> bool {
    glob(pattern, path) || (pattern.len() > 1 && glob(pattern.trim_end_matches('/'), path))
}

/// A role's rules. Block wins over approve, approve over allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    /// When not empty, only what these (or `approve`) cover is allowed.
    pub allow: Vec<RouteRule>,
    /// Refused, whatever else matches.
    pub block: Vec<RouteRule>,
    /// Held for a person's approval.
    pub approve: Vec<RouteRule>,
}

impl RouteRules {
    /// A built-in profile by name. `http-read-only`: GET, HEAD and OPTIONS anywhere; every
    /// other method refused.
    pub fn profile(name: &str) -> Option<RouteRules> {
        match name {
            "http-read-only" => Some(RouteRules {
                allow: vec![RouteRule {
                    name: "http-read-only:read".into(),
                    methods: vec!["GET".into(), "HEAD".into(), "OPTIONS".into()],
                    paths: Vec::new(),
                }],
                block: Vec::new(),
                approve: Vec::new(),
            }),
            _ => None,
        }
    }

    /// The decision on one request: `path` as sent (percent-encoded), `query` without the `?`,
    /// `override_header` whether the request carries one of [`OVERRIDE_HEADERS`].
    pub fn judge(&self, method: &str, path: &str, query: &str, override_header: bool) -> Decision {
        let block = |rule: &str, reason: String| Decision::Block {
            rule: rule.to_owned(),
            reason,
        };
        if !METHODS.contains(&method) {
            return block(
                "http:method",
                format!(
                    "the method {method:?} is not relayed (only {})",
                    METHODS.join(", ")
                ),
            );
        }
        if override_header || query_overrides_method(query) {
            return block(
                "http:method-override",
                format!(
                    "{method} {path} asks the service to read it as another method or path \
                     (_method, X-HTTP-Method-Override, X-Original-URL), which the rules cannot \
                     judge"
                ),
            );
        }
        let path = match normalize(path) {
            Ok(path) => path,
            Err(why) => {
                return block(
                    "http:suspicious-path",
                    format!("the request to {path:?} is refused: {why}"),
                );
            }
        };
        let what = format!("{method} {path}");
        if let Some(rule) = self.block.iter().find(|r| r.matches(method, &path)) {
            return block(
                &rule.name,
                format!("{what} is blocked by rule '{}'", rule.name),
            );
        }
        if let Some(rule) = self.approve.iter().find(|r| r.matches(method, &path)) {
            return Decision::Hold {
                rule: rule.name.clone(),
                reason: format!("{what} needs approval by rule '{}'", rule.name),
            };
        }
        if self.allow.is_empty() || self.allow.iter().any(|r| r.matches(method, &path)) {
            return Decision::Allow;
        }
        block(
            "http:not-allowed",
            format!("{what} is not allowed by any rule"),
        )
    }
}

/// The decoded, normalized path (`/` and `/a/b`, no trailing slash), or why the service might
/// read the path otherwise than the rules would.
pub fn normalize(path: &str) -> Result<String, &'static str> {
    if path.contains('\\') {
        return Err("the path has a backslash, which some servers read as /");
    }
    if path.contains(';') {
        return Err("the path has a ';' (path parameters, which some servers strip)");
    }
    let segments = crate::kube::request::segments(path)?;
    if segments.iter().any(|s| s.contains(['\\', ';'])) {
        return Err("the path has an encoded backslash or ';'");
    }
    // Windows servers and some proxies drop a segment's trailing dots and spaces (`admin.`,
    // `admin%20` are `admin` to them).
    if segments
        .iter()
        .any(|s| s.ends_with(['.', ' ']) || s.starts_with(' ') || s.contains('\t'))
    {
        return Err("a path segment starts or ends with a space or ends with a dot");
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Whether the query string carries `_method` (any case, encoded or not), which Rails, Laravel
/// and others read as the method of a POST.
fn query_overrides_method(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        let decoded = key.replace("%5F", "_").replace("%5f", "_");
        decoded.eq_ignore_ascii_case("_method")
    })
}

/// A 403 body of the broker's own: `{"error": "forbidden", "rule", "message"}`.
pub fn forbidden_body(rule: &str, reason: &str) -> serde_json::Value {
    serde_json::json!({
        "error": "forbidden",
        "rule": rule,
        "message": format!("sluice: {reason}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RouteRules {
        let rule = |name: &str, methods: &[&str], paths: &[&str]| RouteRule {
            name: name.into(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        RouteRules {
            allow: vec![
                rule("api", &[], &["/v1/*"]),
                rule("health", &["GET"], &["/healthz"]),
            ],
            block: vec![rule("no-admin", &[], &["/v1/admin", "/v1/admin/*"])],
            approve: vec![rule("refunds", &["POST"], &["/v1/refunds*"])],
        }
    }

    fn outcome(d: &Decision) -> String {
        match d {
            Decision::Allow => "allow".into(),
            Decision::Block { rule, .. } => format!("block {rule}"),
            Decision::Hold { rule, .. } => format!("hold {rule}"),
        }
    }

    #[test]
    fn requests_are_decided_by_method_and_normalized_path() {
        let r = rules();
        let cases = [
            ("GET", "/v1/customers", "", "allow"),
            ("GET", "/v1/customers/7/", "", "allow"),
            ("GET", "/v1/a%20b", "", "allow"),
            ("GET", "/healthz", "", "allow"),
            ("POST", "/healthz", "", "block http:not-allowed"),
            ("GET", "/v2/customers", "", "block http:not-allowed"),
            ("GET", "/v1/admin", "", "block no-admin"),
            ("GET", "/v1/admin/", "", "block no-admin"),
            ("DELETE", "/v1/admin/users/1", "", "block no-admin"),
            ("GET", "/v1/%61dmin", "", "block no-admin"),
            ("POST", "/v1/refunds", "", "hold refunds"),
            ("POST", "/v1/refunds/9", "", "hold refunds"),
            ("GET", "/v1/refunds", "", "allow"),
            // Evasions: each could make the service see /v1/admin.
            ("GET", "/v1/x/../admin", "", "block http:suspicious-path"),
            ("GET", "/v1/./admin", "", "block http:suspicious-path"),
            (
                "GET",
                "/v1/%2e%2e/v1/admin",
                "",
                "block http:suspicious-path",
            ),
            ("GET", "/v1%2fadmin", "", "block http:suspicious-path"),
            ("GET", "/v1/admin;x=1", "", "block http:suspicious-path"),
            ("GET", "/v1/admin%3b", "", "block http:suspicious-path"),
            ("GET", "/v1\\admin", "", "block http:suspicious-path"),
            ("GET", "/v1/%5cadmin", "", "block http:suspicious-path"),
            ("GET", "//v1/admin", "", "block http:suspicious-path"),
            ("GET", "/v1/%2561dmin", "", "block http:suspicious-path"),
            ("GET", "/v1/admin%00", "", "block http:suspicious-path"),
            ("GET", "v1/admin", "", "block http:suspicious-path"),
            ("GET", "/v1/admin.", "", "block http:suspicious-path"),
            ("GET", "/v1/admin%20", "", "block http:suspicious-path"),
            ("GET", "/v1/admin%2e", "", "block http:suspicious-path"),
            ("GET", "/v1/%20admin", "", "block http:suspicious-path"),
            ("GET", "/v1/admin%09", "", "block http:suspicious-path"),
            ("GET", "/v1/file.txt", "", "allow"),
            ("get", "/v1/customers", "", "block http:method"),
            ("TRACE", "/v1/customers", "", "block http:method"),
            ("CONNECT", "/v1/customers", "", "block http:method"),
            ("PROPFIND", "/v1/customers", "", "block http:method"),
            (
                "POST",
                "/v1/customers",
                "_method=DELETE",
                "block http:method-override",
            ),
            (
                "POST",
                "/v1/customers",
                "a=1&%5Fmethod=DELETE",
                "block http:method-override",
            ),
            (
                "POST",
                "/v1/customers",
                "_METHOD=delete",
                "block http:method-override",
            ),
            ("POST", "/v1/customers", "method=x", "allow"),
        ];
        for (method, path, query, want) in cases {
            let got = outcome(&r.judge(method, path, query, false));
            assert_eq!(got, want, "{method} {path}?{query}");
        }
        assert_eq!(
            outcome(&r.judge("POST", "/v1/customers", "", true)),
            "block http:method-override"
        );
    }

    #[test]
    fn the_read_only_profile_reads_and_nothing_else() {
        let r = RouteRules::profile("http-read-only").expect("profile");
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert_eq!(
                outcome(&r.judge(method, "/anything/at/all", "", false)),
                "allow"
            );
        }
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                outcome(&r.judge(method, "/x", "", false)),
                "block http:not-allowed",
                "{method}"
            );
        }
        assert!(RouteRules::profile("nope").is_none());
    }

    #[test]
    fn without_allow_rules_everything_not_blocked_is_allowed() {
        let r = RouteRules::default();
        assert_eq!(outcome(&r.judge("DELETE", "/anything", "", false)), "allow");
        assert_eq!(outcome(&r.judge("GET", "/", "", false)), "allow");
    }
}
