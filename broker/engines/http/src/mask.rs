//! Masking response bodies: Secret values, watch streams, and chosen JSON paths.
//!
//! A read-only role may list Secrets (kubectl needs their names) but must not see their
//! values. [`mask_secrets`] finds Secrets wherever the API server puts them and keeps their keys:
//!
//! ```text
//!  Secret                      {"kind":"Secret","data":{"password":"aHVudGVyMg=="}}
//!  SecretList / List           {"items":[{...no kind...}, ...]}        (items of a secrets
//!                                                                       request carry no kind)
//!  WatchEvent                  {"type":"ADDED","object":{"kind":"Secret",...}}
//!  Table (includeObject)       {"kind":"Table","rows":[{"cells":[...],"object":{...}}]}
//!  last-applied annotation     metadata.annotations["kubectl.kubernetes.io/last-applied-
//!                              configuration"] = "{\"kind\":\"Secret\",\"data\":{...}}"
//!        │
//!        ▼
//!  data values ──▶ "KioqKg==" (base64 of ****)    stringData values ──▶ "****"
//! ```
//!
//! Fail closed: `data` or `stringData` that is not an object of strings is replaced by `{}`; a
//! last-applied annotation that does not parse is replaced by `****`. [`LineMasker`] does the
//! same for a watch stream, one event per line, and withholds what it cannot read. [`JsonPath`]
//! masks the values at chosen paths of any JSON document.
//!
//! Only JSON is read here: the relay must ask the API server for JSON (not protobuf or CBOR)
//! whenever a response may hold Secrets, and refuse a body in any other encoding.

mod json_stream;
mod jsonpath;
mod stream;

use serde_json::{Map, Value};

pub use json_stream::{JsonRewriter, MAX_TOKEN};
pub use jsonpath::{JsonPath, Step};
pub use stream::{LineMasker, MAX_LINE};

/// What a masked `data` value becomes: `****` in base64, so clients that decode it still can.
pub const MASKED_DATA: &str = "KioqKg==";

/// What a masked `stringData` value, or an unreadable annotation, becomes.
pub const MASKED: &str = "****";

/// The annotation `kubectl apply` keeps the whole applied object in, values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Masks the values of every Secret in a response body, and returns how many values (or
/// whole fields, when they were replaced) were masked.
///
/// `secrets_request` says the request was for the `secrets` resource: then every object met
/// is treated as a Secret, since list items carry no `kind`. Otherwise only objects with
/// `kind: Secret` are (and items of a `SecretList`).
pub fn mask_secrets(value: &mut Value, secrets_request: bool) -> usize {
    match value {
        Value::Array(values) => values
            .iter_mut()
            .map(|v| mask_secrets(v, secrets_request))
            .sum(),
        Value::Object(map) => mask_object(map, secrets_request),
        _ => 0,
    }
}

/// Masks one object and the objects it carries (watch event, list items, table rows).
fn mask_object(map: &mut Map<String, Value>, secrets_request: bool) -> usize {
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let items_are_secrets = secrets_request || kind == "SecretList";
    let mut masked = 0;
    if secrets_request || kind == "Secret" {
        masked += mask_secret(map);
    }
    let is_event = map.contains_key("type");
    if let Some(object) = map.get_mut("object").filter(|_| is_event) {
        masked += mask_secrets(object, secrets_request);
    }
    if let Some(Value::Array(rows)) = map.get_mut("rows") {
        for row in rows {
            if let Some(object) = row.get_mut("object") {
                masked += mask_secrets(object, secrets_request);
            }
        }
    }
    if let Some(Value::Array(items)) = map.get_mut("items") {
        for item in items {
            masked += mask_secrets(item, items_are_secrets);
        }
    }
    masked
}

/// Masks one Secret's `data`, `stringData` and last-applied annotation.
fn mask_secret(map: &mut Map<String, Value>) -> usize {
    let mut masked = 0;
    for (key, value) in map.iter_mut() {
        // Any case: a Go client reads `Data` into the same field.
        if key.eq_ignore_ascii_case("data") {
            masked += mask_fields(value, MASKED_DATA);
        } else if key.eq_ignore_ascii_case("stringData") {
            masked += mask_fields(value, MASKED);
        }
    }
    let annotation = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(|a| a.get_mut(LAST_APPLIED));
    if let Some(annotation) = annotation {
        masked += mask_last_applied(annotation);
    }
    masked
}

/// Replaces every value of an object of strings, or the whole value by `{}` when it is not
/// one (`null` is left alone: it holds nothing).
fn mask_fields(value: &mut Value, replacement: &str) -> usize {
    match value {
        Value::Null => 0,
        Value::Object(fields) if fields.values().all(Value::is_string) => {
            for field in fields.values_mut() {
                *field = Value::String(replacement.to_owned());
            }
            fields.len()
        }
        _ => {
            *value = Value::Object(Map::new());
            1
        }
    }
}

/// Masks the Secret held, as JSON text, in a last-applied annotation.
fn mask_last_applied(annotation: &mut Value) -> usize {
    let masked = match annotation {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|mut inner| {
                let masked = mask_secrets(&mut inner, true);
                let mut out = serde_json::to_string(&inner).ok()?;
                if text.ends_with('\n') {
                    out.push('\n');
                }
                Some((masked, out))
            }),
        _ => None,
    };
    match masked {
        Some((masked, text)) => {
            *annotation = Value::String(text);
            masked
        }
        None => {
            *annotation = Value::String(MASKED.to_owned());
            1
        }
    }
}

#[cfg(test)]
mod tests;
