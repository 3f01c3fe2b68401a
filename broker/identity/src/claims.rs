//! Reading claims by path and as text, shared by the workload and people rules.
//!
//! Paths are dotted, but claim names may themselves contain dots (Kubernetes puts everything
//! under `kubernetes.io`), so at each level the longest key that matches a prefix of the path
//! wins: `kubernetes.io.serviceaccount.name` finds `{"kubernetes.io": {"serviceaccount":
//! {"name": ...}}}` as well as a flat `"kubernetes.io.serviceaccount.name"` claim.

use serde_json::{Map, Value};

/// Finds a claim by dotted path.
pub(crate) fn find<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    // Longest prefix first, so that a key with dots beats a shorter key.
    let dots: Vec<usize> = path.match_indices('.').map(|(at, _)| at).collect();
    for &at in dots.iter().rev() {
        if let Some(Value::Object(inner)) = claims.get(&path[..at])
            && let Some(value) = find(inner, &path[at + 1..])
        {
            return Some(value);
        }
    }
    None
}

/// A claim value as text: strings as they are, numbers and booleans as their JSON text.
/// Objects, arrays and null have no text form.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Matches `text` against a pattern where `*` is any run of characters (including `/`) and `?`
/// is one character. A pattern without either is an exact comparison.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_cases() {
        assert!(glob("acme/*", "acme/app"));
        assert!(glob("acme/*", "acme/"));
        assert!(!glob("acme/*", "evil/repo"));
        assert!(!glob("acme/*", "acme"));
        assert!(glob("refs/heads/main", "refs/heads/main"));
        assert!(!glob("refs/heads/main", "refs/heads/main2"));
        assert!(!glob("refs/heads/main", "refs/heads/feature"));
        assert!(glob("v?.*", "v1.2.3"));
        assert!(!glob("v?.*", "v12.3"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxx"));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
    }

    #[test]
    fn dotted_paths() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "deployer"}},
                "a.b": 1, "a": {"b": 2}, "n": 7, "t": true}"#,
        )
        .unwrap();
        assert_eq!(
            find(&claims, "kubernetes.io.namespace"),
            Some(&Value::from("ci"))
        );
        assert_eq!(
            find(&claims, "kubernetes.io.serviceaccount.name"),
            Some(&Value::from("deployer"))
        );
        assert_eq!(
            find(&claims, "a.b"),
            Some(&Value::from(1)),
            "exact key wins"
        );
        assert_eq!(find(&claims, "kubernetes.io.missing"), None);
        assert_eq!(text(&claims["n"]).as_deref(), Some("7"));
        assert_eq!(text(&claims["t"]).as_deref(), Some("true"));
        assert_eq!(text(&claims["a"]), None);
    }
}
