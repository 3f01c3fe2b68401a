//! Masking the values at JSON paths: a small, strict subset of JSONPath.
//!
//! ```text
//!  $.items[*].spec.containers[*].env[*].value     $..password     $.data['tls.key']
//!  │ └─key─┘└any┘                                 └ any depth ┘          └ quoted key ┘
//!  root
//! ```
//!
//! Supported: `$` (the root), `.key`, `['key']` / `["key"]` (keys with dots, slashes or other
//! punctuation), `[N]` (an array index), `[*]` and `.*` (every element or member), `..key`
//! (that key at any depth). Anything else — filters, slices, unions, negative indexes,
//! `..*` — is refused when parsed, never half-understood: a mask that silently matched
//! nothing would leak.
//!
//! Applying a path first collects the places it reaches, then rewrites each once: a value
//! reached twice (`$..a..b`) is masked once, and a place inside one already replaced is
//! skipped.

use std::fmt;

use serde_json::Value;

use super::MASKED;

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `.key` or `['key']`.
    Key(String),
    /// `[N]`.
    Index(usize),
    /// `[*]` or `.*`: every element of an array or member of an object.
    Wildcard,
    /// `..key`: the key in this value or anywhere below.
    Descend(String),
}

/// One step of a concrete place in a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

impl AsRef<Step> for Step {
    fn as_ref(&self) -> &Step {
        self
    }
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    /// The path as written, for messages.
    text: String,
    /// Its steps from the root.
    segments: Vec<Segment>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses a path, or says what in it is not supported and where (a character offset).
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let chars: Vec<char> = text.chars().collect();
        let fail = |at: usize, what: &str| format!("JSON path {text:?}, at {at}: {what}");
        if chars.first() != Some(&'$') {
            return Err(fail(0, "a path starts with $"));
        }
        let mut segments = Vec::new();
        let mut at = 1;
        while at < chars.len() {
            match (chars[at], chars.get(at + 1)) {
                ('.', Some('.')) => {
                    at += 2;
                    let (key, next) = dotted_key(&chars, at);
                    if key.is_empty() {
                        return Err(fail(
                            at,
                            "`..` must be followed by a key (`..*` and `..[` are not supported)",
                        ));
                    }
                    segments.push(Segment::Descend(key));
                    at = next;
                }
                ('.', Some('*')) => {
                    segments.push(Segment::Wildcard);
                    at += 2;
                }
                ('.', _) => {
                    at += 1;
                    let (key, next) = dotted_key(&chars, at);
                    if key.is_empty() {
                        return Err(fail(
                            at,
                            "expected a key after `.` (use ['...'] for keys with punctuation)",
                        ));
                    }
                    segments.push(Segment::Key(key));
                    at = next;
                }
                ('[', _) => {
                    let (segment, next) = bracket(&chars, at + 1).map_err(|what| fail(at, what))?;
                    segments.push(segment);
                    at = next;
                }
                (c, _) => return Err(fail(at, &format!("unexpected {c:?}"))),
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a place whose last step is `last` could be reached at all (`None`: the root).
    pub fn could_end_at(&self, last: Option<&Step>) -> bool {
        match (self.segments.last(), last) {
            (None, last) => last.is_none(),
            (Some(_), None) => false,
            (Some(Segment::Key(k) | Segment::Descend(k)), Some(Step::Key(name))) => k == name,
            (Some(Segment::Key(_) | Segment::Descend(_)), Some(Step::Index(_))) => false,
            (Some(Segment::Index(i)), Some(step)) => step == &Step::Index(*i),
            (Some(Segment::Wildcard), Some(_)) => true,
        }
    }

    /// Whether the path reaches the place `steps` (from the root), as [`JsonPath::apply`] would.
    /// `steps` may be `&[&Step]`, `&[Step]`, or anything else that holds a step per level.
    pub fn matches<S: AsRef<Step>>(&self, steps: &[S]) -> bool {
        self.could_end_at(steps.last().map(AsRef::as_ref)) && matches_from(&self.segments, steps)
    }

    /// Rewrites every value the path reaches and returns how many: a string becomes `f(it)`, a
    /// number or boolean `f(its text)`, an object or array `****`; `null` is left alone.
    pub fn apply(&self, value: &mut Value, f: &mut dyn FnMut(&str) -> String) -> usize {
        let mut places = Vec::new();
        collect(value, &self.segments, &mut Vec::new(), &mut places);
        // Sorted, a place comes before the places inside it: once it is replaced, they are gone.
        places.sort();
        places.dedup();
        let mut count = 0;
        for place in &places {
            let Some(target) = resolve(value, place) else {
                continue;
            };
            let replacement = match target {
                Value::Null => continue,
                Value::String(s) => f(s),
                Value::Number(n) => f(&n.to_string()),
                Value::Bool(b) => f(&b.to_string()),
                Value::Array(_) | Value::Object(_) => MASKED.to_owned(),
            };
            *target = Value::String(replacement);
            count += 1;
        }
        count
    }
}

/// Whether `segments` reach exactly `steps`.
fn matches_from<S: AsRef<Step>>(segments: &[Segment], steps: &[S]) -> bool {
    let Some((segment, rest)) = segments.split_first() else {
        return steps.is_empty();
    };
    let first = steps.first().map(AsRef::as_ref);
    match segment {
        Segment::Key(key) => {
            matches!(first, Some(Step::Key(k)) if k == key) && matches_from(rest, &steps[1..])
        }
        Segment::Index(i) => {
            matches!(first, Some(Step::Index(n)) if n == i) && matches_from(rest, &steps[1..])
        }
        Segment::Wildcard => !steps.is_empty() && matches_from(rest, &steps[1..]),
        // `..key`: any number of steps, then a member named `key`.
        Segment::Descend(key) => (0..steps.len()).any(|skip| {
            matches!(steps[skip].as_ref(), Step::Key(k) if k == key)
                && matches_from(rest, &steps[skip + 1..])
        }),
    }
}

/// A key written after `.`: up to the next `.` or `[`. Empty when the next character cannot
/// start one (punctuation that belongs in brackets).
fn dotted_key(chars: &[char], from: usize) -> (String, usize) {
    let mut at = from;
    while let Some(&c) = chars.get(at) {
        if c == '.' || c == '[' || !(c.is_alphanumeric() || matches!(c, '_' | '-' | '$')) {
            break;
        }
        at += 1;
    }
    (chars[from..at].iter().collect(), at)
}

/// What follows a `[`: `*]`, `N]`, `'key']` or `"key"]`. Returns the segment and the offset
/// after the `]`.
fn bracket(chars: &[char], from: usize) -> Result<(Segment, usize), &'static str> {
    let close = |at: usize| match chars.get(at) {
        Some(']') => Ok(at + 1),
        _ => Err("expected `]`"),
    };
    match chars.get(from) {
        Some('*') => Ok((Segment::Wildcard, close(from + 1)?)),
        Some(&quote @ ('\'' | '"')) => {
            let mut key = String::new();
            let mut at = from + 1;
            loop {
                match chars.get(at) {
                    None => return Err("unterminated quoted key"),
                    Some('\\') => {
                        key.push(*chars.get(at + 1).ok_or("unterminated quoted key")?);
                        at += 2;
                    }
                    Some(&c) if c == quote => break,
                    Some(&c) => {
                        key.push(c);
                        at += 1;
                    }
                }
            }
            Ok((Segment::Key(key), close(at + 1)?))
        }
        Some(c) if c.is_ascii_digit() => {
            let mut at = from;
            while chars.get(at).is_some_and(char::is_ascii_digit) {
                at += 1;
            }
            let digits: String = chars[from..at].iter().collect();
            let index = digits.parse().map_err(|_| "index too large")?;
            match chars.get(at) {
                Some(':') => Err("slices ([a:b]) are not supported"),
                Some(',') => Err("unions ([a,b]) are not supported"),
                _ => Ok((Segment::Index(index), close(at)?)),
            }
        }
        Some('?') => Err("filters ([?(...)]) are not supported"),
        Some('(') => Err("script expressions ([(...)]) are not supported"),
        Some('-') => Err("negative indexes are not supported"),
        Some(':') => Err("slices ([a:b]) are not supported"),
        _ => Err("expected *, an index or a quoted key after `[`"),
    }
}

/// Collects the places `segments` reach from `value` (at `here`) into `out`.
fn collect(value: &Value, segments: &[Segment], here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(here.clone());
        return;
    };
    let mut visit = |step: Step, child: &Value, here: &mut Vec<Step>| {
        here.push(step);
        collect(child, rest, here, out);
        here.pop();
    };
    match (segment, value) {
        (Segment::Key(key), Value::Object(map)) => {
            if let Some(child) = map.get(key) {
                visit(Step::Key(key.clone()), child, here);
            }
        }
        (Segment::Index(i), Value::Array(items)) => {
            if let Some(child) = items.get(*i) {
                visit(Step::Index(*i), child, here);
            }
        }
        (Segment::Wildcard, Value::Object(map)) => {
            for (key, child) in map {
                visit(Step::Key(key.clone()), child, here);
            }
        }
        (Segment::Wildcard, Value::Array(items)) => {
            for (i, child) in items.iter().enumerate() {
                visit(Step::Index(i), child, here);
            }
        }
        (Segment::Descend(key), _) => descend(value, key, rest, here, out),
        _ => {}
    }
}

/// `..key`: collects from every member named `key` at or below `value`.
fn descend(
    value: &Value,
    key: &str,
    rest: &[Segment],
    here: &mut Vec<Step>,
    out: &mut Vec<Vec<Step>>,
) {
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                here.push(Step::Key(name.clone()));
                if name == key {
                    collect(child, rest, here, out);
                }
                descend(child, key, rest, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(Step::Index(i));
                descend(child, key, rest, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

/// The value at a place, if it is still there.
fn resolve<'a>(value: &'a mut Value, place: &[Step]) -> Option<&'a mut Value> {
    place.iter().try_fold(value, |value, step| match step {
        Step::Key(key) => value.as_object_mut()?.get_mut(key),
        Step::Index(i) => value.as_array_mut()?.get_mut(*i),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stars(_: &str) -> String {
        "****".to_owned()
    }

    fn apply(path: &str, mut value: Value) -> (usize, Value) {
        let path = JsonPath::parse(path).expect("parses");
        let count = path.apply(&mut value, &mut stars);
        (count, value)
    }

    #[test]
    fn parses_the_supported_subset() {
        let cases: &[(&str, Vec<Segment>)] = &[
            ("$", vec![]),
            (
                "$.a.b",
                vec![Segment::Key("a".into()), Segment::Key("b".into())],
            ),
            (
                "$.a[*].c",
                vec![
                    Segment::Key("a".into()),
                    Segment::Wildcard,
                    Segment::Key("c".into()),
                ],
            ),
            ("$.a.*", vec![Segment::Key("a".into()), Segment::Wildcard]),
            ("$..password", vec![Segment::Descend("password".into())]),
            (
                "$.items[2]",
                vec![Segment::Key("items".into()), Segment::Index(2)],
            ),
            (
                "$.metadata.annotations['kubectl.kubernetes.io/x']",
                vec![
                    Segment::Key("metadata".into()),
                    Segment::Key("annotations".into()),
                    Segment::Key("kubectl.kubernetes.io/x".into()),
                ],
            ),
            ("$[\"a]b\"]", vec![Segment::Key("a]b".into())]),
            ("$['it\\'s']", vec![Segment::Key("it's".into())]),
            (
                "$.data.tls-key_1",
                vec![
                    Segment::Key("data".into()),
                    Segment::Key("tls-key_1".into()),
                ],
            ),
        ];
        for (text, want) in cases {
            let path = JsonPath::parse(text).expect("parses");
            assert_eq!(&path.segments, want, "{text}");
            assert_eq!(path.to_string(), *text);
            assert_eq!(path.as_str(), *text);
        }
    }

    #[test]
    fn refuses_what_it_does_not_support_clearly() {
        let cases = [
            ("", "at 0: a path starts with $"),
            ("a.b", "at 0: a path starts with $"),
            ("$.", "at 2: expected a key after `.`"),
            ("$.a b", "at 3: unexpected ' '"),
            ("$..*", "at 3: `..` must be followed by a key"),
            ("$..[0]", "at 3: `..` must be followed by a key"),
            ("$.a[?(@.b)]", "at 3: filters ([?(...)]) are not supported"),
            ("$.a[1:2]", "at 3: slices ([a:b]) are not supported"),
            ("$.a[1,2]", "at 3: unions ([a,b]) are not supported"),
            ("$.a[-1]", "at 3: negative indexes are not supported"),
            ("$.a['b'", "at 3: expected `]`"),
            ("$.a['b", "at 3: unterminated quoted key"),
            ("$.a[*", "at 3: expected `]`"),
            ("$.a[b]", "at 3: expected *, an index or a quoted key"),
            ("$.a@", "at 3: unexpected '@'"),
            ("$.a[99999999999999999999999]", "at 3: index too large"),
        ];
        for (text, want) in cases {
            let err = JsonPath::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.starts_with(&format!("JSON path {text:?}")), "{err}");
        }
    }

    #[test]
    fn masks_strings_numbers_and_whole_subtrees() {
        let doc = json!({
            "items": [
                {"spec": {"containers": [
                    {"env": [{"name": "A", "value": "secret-a"}, {"name": "B", "valueFrom": {}}]},
                    {"env": [{"name": "C", "value": 42}, {"name": "D", "value": true}, {"name": "E", "value": null}]},
                ]}},
                {"spec": {"containers": [{"env": [{"name": "F", "value": {"nested": "x"}}]}]}},
                {"spec": {}},
            ],
        });
        let (count, out) = apply("$.items[*].spec.containers[*].env[*].value", doc);
        assert_eq!(count, 4);
        let env = &out["items"][0]["spec"]["containers"];
        assert_eq!(env[0]["env"][0]["value"], "****");
        assert_eq!(env[0]["env"][1], json!({"name": "B", "valueFrom": {}}));
        assert_eq!(env[1]["env"][0]["value"], "****");
        assert_eq!(env[1]["env"][1]["value"], "****");
        assert_eq!(env[1]["env"][2]["value"], Value::Null);
        assert_eq!(
            out["items"][1]["spec"]["containers"][0]["env"][0]["value"],
            "****"
        );
    }

    #[test]
    fn the_function_sees_each_value_as_text() {
        let mut doc = json!({"a": ["x", 7, false]});
        let mut seen = Vec::new();
        let path = JsonPath::parse("$.a[*]").expect("parses");
        let count = path.apply(&mut doc, &mut |s: &str| {
            seen.push(s.to_owned());
            format!("<{}>", s.len())
        });
        assert_eq!(count, 3);
        assert_eq!(seen, ["x", "7", "false"]);
        assert_eq!(doc, json!({"a": ["<1>", "<1>", "<5>"]}));
    }

    #[test]
    fn recursive_descent_finds_every_depth_once() {
        let doc = json!({
            "password": "top",
            "db": {"password": "mid", "replicas": [{"password": "deep"}, {"user": "u"}]},
            "nested": {"password": {"password": "inner"}},
        });
        let (count, out) = apply("$..password", doc);
        assert_eq!(count, 4);
        assert_eq!(
            out,
            json!({
                "password": "****",
                "db": {"password": "****", "replicas": [{"password": "****"}, {"user": "u"}]},
                "nested": {"password": "****"},
            })
        );
        // Reached along two routes, masked once.
        let (count, out) = apply("$..a..b", json!({"a": {"a": {"b": "x"}}}));
        assert_eq!(count, 1);
        assert_eq!(out, json!({"a": {"a": {"b": "****"}}}));
        let (count, _) = apply(
            "$..spec.password",
            json!({"x": {"spec": {"password": "p"}}, "spec": {"password": "q"}}),
        );
        assert_eq!(count, 2);
    }

    #[test]
    fn misses_change_nothing() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "d"});
        for path in [
            "$.x",
            "$.a.x",
            "$.a.b[5]",
            "$.c.d",
            "$.c[*]",
            "$.a[0]",
            "$..zzz",
            "$.a.b[*].c",
        ] {
            let (count, out) = apply(path, doc.clone());
            assert_eq!((count, &out), (0, &doc), "{path}");
        }
        let (count, out) = apply("$.a.b[1]", doc.clone());
        assert_eq!(count, 1);
        assert_eq!(out["a"]["b"], json!([1, "****"]));
        let (count, out) = apply("$", doc);
        assert_eq!((count, out), (1, json!("****")));
    }
}
