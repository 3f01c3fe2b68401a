//! A Kubernetes API request's attributes, read as the API server's authorizer reads them.
//!
//! This follows `RequestInfoFactory.NewRequestInfo` (kubernetes
//! `staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`), so a rule written here
//! means what the same words mean in RBAC:
//!
//! ```text
//!  DELETE /apis/apps/v1/namespaces/prod/deployments/web
//!          │    │    │  └───────┬──────┘ └────┬────┘ └┬┘
//!          │    │    │   namespace "prod"  resource  name   (re-rooted below namespaces/NS)
//!      prefix group version
//!  ──▶ verb "delete", apps/deployments "web" in namespace prod
//!
//!  GET /api/v1/namespaces/prod/pods?watch=true          ──▶ watch pods in namespace prod
//!  GET /api/v1/namespaces/prod/pods?fieldSelector=metadata.name=web ──▶ list pods "web"
//!  DELETE /api/v1/namespaces/prod/pods                  ──▶ deletecollection pods
//!  GET /api/v1/namespaces/prod                          ──▶ get namespaces "prod"
//!  GET /version, /apis, /openapi/v2, /healthz           ──▶ non-resource, verb = method
//! ```
//!
//! Where Sluice deviates from the API server, on purpose:
//! - `exec`, `attach` and `portforward` subresources are verb `create` whatever the method. The
//!   API server maps by method, and kubectl ≥ 1.30 opens exec as a WebSocket `GET`, which it
//!   would call `get`: a rule allowing reads must not allow running commands.
//! - `proxy` subresources are `get` for `GET`/`HEAD` and `create` for every other method. The
//!   deprecated `/api/v1/proxy/...` prefix (verb `proxy` to the API server, which no longer
//!   serves it) is read as the `proxy` subresource, so `*/proxy` rules cover it too.
//! - Paths the API server and the proxies in front of it might read differently (`..`, `//`,
//!   `%2F`, broken escapes, see [`suspicious`]) are not interpreted at all: they come out as
//!   non-resource requests with verb `get`, and the rules refuse them.

use std::fmt::Write as _;

/// What a request acts on, as the API server's authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// True for requests on API objects (`/api/...`, `/apis/GROUP/...`); false for discovery,
    /// `/version`, `/openapi/...`, health checks, and any path [`suspicious`] refuses.
    pub resource_request: bool,
    /// The path as the client sent it (still percent-encoded).
    pub path: String,
    /// `get list watch create update patch delete deletecollection` for resource requests;
    /// the lowercase method for non-resource ones. Empty for a resource request with a method
    /// the API server does not know (it answers those with 405).
    pub verb: String,
    /// `api` or `apis`; empty for non-resource requests.
    pub api_prefix: String,
    /// The API group; empty for the core group (`/api/v1`).
    pub api_group: String,
    /// The API version (`v1`, `v1beta1`).
    pub api_version: String,
    /// The namespace; empty for cluster-scoped requests and lists across all namespaces. For
    /// a namespace object itself (`/api/v1/namespaces/prod`) it is that namespace, as in RBAC.
    pub namespace: String,
    /// The resource (`pods`, `deployments`), without group or subresource.
    pub resource: String,
    /// The subresource (`status`, `exec`, `scale`), or empty.
    pub subresource: String,
    /// The object's name; empty for collections unless a field selector names one object.
    pub name: String,
    /// The decoded path segments from the resource on (`[pods, web, exec]`).
    pub parts: Vec<String>,
}

impl Attributes {
    /// What the request acts on, without the verb: `apps/deployments "web" in namespace prod`,
    /// `pods/exec "web-1" in namespace prod`, `namespaces "prod"`, or the path for a
    /// non-resource request.
    pub fn target(&self) -> String {
        if !self.resource_request {
            return self.path.clone();
        }
        let mut out = String::new();
        if !self.api_group.is_empty() {
            out.push_str(&self.api_group);
            out.push('/');
        }
        out.push_str(&self.resource);
        if !self.subresource.is_empty() {
            out.push('/');
            out.push_str(&self.subresource);
        }
        if !self.name.is_empty() {
            let _ = write!(out, " {:?}", self.name);
        }
        // A namespace object carries its own name as its namespace: saying it twice adds nothing.
        let is_namespace_itself = self.api_group.is_empty()
            && self.resource == "namespaces"
            && self.name == self.namespace;
        if !self.namespace.is_empty() && !is_namespace_itself {
            let _ = write!(out, " in namespace {}", self.namespace);
        }
        out
    }

    /// The request in one line for audit and refusals: `delete apps/deployments "web" in
    /// namespace prod`, `list pods`, `get /version`.
    pub fn describe(&self) -> String {
        let verb = if self.verb.is_empty() {
            "(no verb)"
        } else {
            &self.verb
        };
        format!("{verb} {}", self.target())
    }
}

/// Why a path must not be interpreted, or `None` when it is plain.
///
/// The API server decodes the path before splitting it, a proxy in front of it may not, and
/// routers differ on `..` and `//`: a path any of them could read differently from the rules
/// is refused rather than guessed at. Refused: a path not starting with `/`, an empty segment
/// (`//`; one trailing `/` is fine), `.` or `..` segments (also when encoded), an encoded `/` or
/// `\`, a malformed `%` escape, a segment that decodes to a `%` (double encoding), to control
/// characters, or to invalid UTF-8.
pub fn suspicious(path: &str) -> Option<&'static str> {
    segments(path).err()
}

/// Reads a request's attributes from its method, path (as sent, percent-encoded) and query
/// string (without the `?`). See the module documentation for the rules and deviations.
pub fn attributes(method: &str, path: &str, query: &str) -> Attributes {
    let mut attrs = Attributes {
        path: path.to_owned(),
        verb: method.to_ascii_lowercase(),
        ..Attributes::default()
    };
    let parts = match segments(path) {
        Ok(parts) => parts,
        Err(_) => {
            attrs.verb = "get".to_owned();
            return attrs;
        }
    };
    if parts.len() < 3 {
        return attrs;
    }
    let (prefix, mut rest) = match parts.split_first() {
        Some((prefix, rest)) if prefix == "api" || prefix == "apis" => (prefix, rest),
        _ => return attrs,
    };
    let mut group = "";
    if prefix == "apis" {
        // `/apis/GROUP` and `/apis/GROUP/VERSION` are discovery.
        if rest.len() < 3 {
            return attrs;
        }
        group = &rest[0];
        rest = &rest[1..];
    }
    let version = &rest[0];
    rest = &rest[1..];

    // `/watch/...` and the deprecated `/proxy/...` put the verb in the path.
    let mut deprecated_proxy = false;
    let mut verb_from_path = None;
    if rest[0] == "watch" || rest[0] == "proxy" {
        if rest.len() < 2 {
            // The API server answers this with an error; nothing here for rules to judge.
            return attrs;
        }
        if rest[0] == "watch" {
            verb_from_path = Some("watch");
        } else {
            deprecated_proxy = true;
        }
        rest = &rest[1..];
    }

    let mut namespace = "";
    if rest[0] == "namespaces"
        && let Some(ns) = rest.get(1)
    {
        namespace = ns;
        // `namespaces/NS/status` and `namespaces/NS/finalize` are the namespace's own
        // subresources; anything else after `namespaces/NS` is a namespaced resource.
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = &rest[2..];
        }
    }

    let mut parts: Vec<String> = rest.to_vec();
    if deprecated_proxy && parts.len() >= 2 {
        parts.insert(2, "proxy".to_owned());
    }
    let method_verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };

    attrs.resource_request = true;
    attrs.api_prefix = prefix.clone();
    attrs.api_group = group.to_owned();
    attrs.api_version = version.clone();
    attrs.namespace = namespace.to_owned();
    attrs.resource = parts[0].clone();
    attrs.name = parts.get(1).cloned().unwrap_or_default();
    attrs.subresource = parts.get(2).cloned().unwrap_or_default();
    if deprecated_proxy {
        attrs.subresource = "proxy".to_owned();
    }
    attrs.parts = parts;

    let is_get = method == "GET" || method == "HEAD";
    attrs.verb = match attrs.subresource.as_str() {
        // Running a process or opening a port is never a read, whatever the method says.
        "exec" | "attach" | "portforward" => "create",
        "proxy" if is_get => "get",
        "proxy" => "create",
        _ => verb_from_path.unwrap_or(method_verb),
    }
    .to_owned();

    if attrs.name.is_empty() && attrs.verb == "get" && attrs.subresource.is_empty() {
        let query = Query::parse(query);
        attrs.verb = if query.watch() { "watch" } else { "list" }.to_owned();
        if let Some(name) = query.get("fieldSelector").and_then(selected_name) {
            attrs.name = name;
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".to_owned();
    }
    attrs
}

/// The path's decoded segments, or why the path is refused.
pub(crate) fn segments(path: &str) -> Result<Vec<String>, &'static str> {
    let Some(inner) = path.strip_prefix('/') else {
        return Err("the path does not start with /");
    };
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    inner.split('/').map(segment).collect()
}

/// One decoded path segment, or why it is refused.
fn segment(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("the path has an empty segment (//)");
    }
    let bytes = percent_decode(raw, false)
        .ok_or("the path has a malformed percent escape")?
        .into_iter()
        .map(|(byte, encoded)| {
            if encoded && (byte == b'/' || byte == b'\\') {
                Err("the path has an encoded slash (%2F or %5C)")
            } else {
                Ok(byte)
            }
        })
        .collect::<Result<Vec<u8>, _>>()?;
    let text = String::from_utf8(bytes).map_err(|_| "the path decodes to invalid UTF-8")?;
    if text == "." || text == ".." {
        return Err("the path has a dot segment (. or ..)");
    }
    if text.contains('%') {
        return Err("the path is percent-encoded twice");
    }
    if text.chars().any(char::is_control) {
        return Err("the path has control characters");
    }
    Ok(text)
}

/// Percent-decodes `text` into bytes, each marked true when it came from an escape. `plus`
/// reads `+` as a space (query strings). `None` for a malformed escape.
fn percent_decode(text: &str, plus: bool) -> Option<Vec<(u8, bool)>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = hex(bytes.next()?)?;
                let low = hex(bytes.next()?)?;
                out.push((high << 4 | low, true));
            }
            b'+' if plus => out.push((b' ', false)),
            _ => out.push((byte, false)),
        }
    }
    Some(out)
}

/// The value of one hex digit.
fn hex(byte: u8) -> Option<u8> {
    (byte as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A query string read as Go's `url.ParseQuery` reads it: pairs split on `&`, `+` is a space,
/// pairs with a `;` or a malformed escape dropped, the first value of a key wins.
struct Query {
    /// The pairs in order.
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Reads `query` (without the `?`).
    fn parse(query: &str) -> Query {
        let decode = |text: &str| {
            let bytes = percent_decode(text, true)?
                .into_iter()
                .map(|(b, _)| b)
                .collect();
            String::from_utf8(bytes).ok()
        };
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.contains(';'))
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(key)?, decode(value)?))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `watch` asks for a watch: as the API server converts a boolean parameter, any
    /// value but `0`, `f` and `false` (any case) is true, an empty one included.
    fn watch(&self) -> bool {
        match self.get("watch") {
            None => false,
            Some(value) => {
                !(value == "0"
                    || value.eq_ignore_ascii_case("f")
                    || value.eq_ignore_ascii_case("false"))
            }
        }
    }
}

/// The name a field selector pins (`metadata.name=web`, `metadata.name==web`, possibly among
/// other terms), as `fields.Selector.RequiresExactMatch("metadata.name")`, and only when it is
/// a valid path segment name (not `.`/`..`, no `/` or `%`). `None` when the selector does not
/// parse, as the API server then ignores it for the name.
fn selected_name(selector: &str) -> Option<String> {
    let mut found = None;
    for term in split_terms(selector) {
        if term.is_empty() {
            continue;
        }
        let (field, op, value) = split_term(term)?;
        let value = unescape_value(value)?;
        if found.is_none() && field == "metadata.name" && (op == "=" || op == "==") {
            found = Some(value);
        }
    }
    found.filter(|name| name != "." && name != ".." && !name.contains(['/', '%']))
}

/// Splits a field selector on the commas that a backslash does not escape.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits `field OP value` at the first operator (`!=`, `==`, `=`).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

/// A field selector value with `\\`, `\,` and `\=` unescaped; `None` for any other escape or
/// an unescaped `,` or `=`, which the API server rejects.
fn unescape_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return None,
            _ => out.push(c),
        }
    }
    (!escaped).then_some(out)
}

#[cfg(test)]
mod tests;
