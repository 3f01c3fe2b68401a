use serde_json::json;

use super::*;

fn secret(name: &str) -> Value {
    json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "prod"},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
    })
}

#[test]
fn a_secret_keeps_its_keys_not_its_values() {
    let mut value = secret("db");
    value["stringData"] = json!({"token": "plain"});
    assert_eq!(mask_secrets(&mut value, false), 3);
    assert_eq!(
        value["data"],
        json!({"password": "KioqKg==", "user": "KioqKg=="})
    );
    assert_eq!(value["stringData"], json!({"token": "****"}));
    assert_eq!(value["metadata"]["name"], "db");
    assert_eq!(value["type"], "Opaque");
}

#[test]
fn the_masked_value_is_base64_of_stars() {
    // "****" = 0x2a2a2a2a → base64 "KioqKg==".
    let encoded: String = {
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = b"****";
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let mut s: String = (0..4)
            .map(|i| char::from(table[((n >> (18 - 6 * i)) & 63) as usize]))
            .collect();
        let n = u32::from(b[3]) << 16;
        s.push(char::from(table[((n >> 18) & 63) as usize]));
        s.push(char::from(table[((n >> 12) & 63) as usize]));
        s.push_str("==");
        s
    };
    assert_eq!(encoded, MASKED_DATA);
}

#[test]
fn other_kinds_are_left_alone_unless_the_request_was_for_secrets() {
    let mut config_map = json!({"kind": "ConfigMap", "data": {"a": "b"}});
    assert_eq!(mask_secrets(&mut config_map, false), 0);
    assert_eq!(config_map["data"]["a"], "b");
    let mut no_kind = json!({"metadata": {"name": "s"}, "data": {"a": "Yg=="}});
    assert_eq!(mask_secrets(&mut no_kind, true), 1);
    assert_eq!(no_kind["data"]["a"], "KioqKg==");
    let mut status = json!({"kind": "Status", "status": "Failure", "message": "not found"});
    let before = status.clone();
    assert_eq!(mask_secrets(&mut status, true), 0);
    assert_eq!(status, before);
}

#[test]
fn a_secret_list_from_all_namespaces_has_items_without_kind() {
    // GET /api/v1/secrets: the items carry no kind.
    let mut list = json!({
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42"},
        "items": [
            {"metadata": {"name": "a", "namespace": "x"}, "data": {"k": "dg=="}, "type": "Opaque"},
            {"metadata": {"name": "b", "namespace": "y"}, "data": {"k1": "dg==", "k2": "dw=="}},
            {"metadata": {"name": "empty", "namespace": "y"}},
        ],
    });
    let mut as_secrets_request = list.clone();
    assert_eq!(mask_secrets(&mut as_secrets_request, true), 3);
    // The list's kind alone is enough, too.
    assert_eq!(mask_secrets(&mut list, false), 3);
    assert_eq!(list, as_secrets_request);
    assert_eq!(
        list["items"][1]["data"],
        json!({"k1": "KioqKg==", "k2": "KioqKg=="})
    );
    assert_eq!(
        list["items"][2],
        json!({"metadata": {"name": "empty", "namespace": "y"}})
    );
}

#[test]
fn lists_of_mixed_kinds_and_nested_lists() {
    let mut list = json!({
        "kind": "List",
        "items": [
            secret("a"),
            {"kind": "ConfigMap", "data": {"a": "b"}},
            {"kind": "List", "items": [secret("b"), {"kind": "List", "items": [secret("c")]}]},
        ],
    });
    assert_eq!(mask_secrets(&mut list, false), 6);
    assert_eq!(list["items"][0]["data"]["user"], "KioqKg==");
    assert_eq!(list["items"][1]["data"]["a"], "b");
    assert_eq!(list["items"][2]["items"][0]["data"]["password"], "KioqKg==");
    assert_eq!(
        list["items"][2]["items"][1]["items"][0]["data"]["password"],
        "KioqKg=="
    );
}

#[test]
fn watch_events() {
    let mut event = json!({"type": "ADDED", "object": secret("a")});
    assert_eq!(mask_secrets(&mut event, false), 2);
    assert_eq!(event["object"]["data"]["password"], "KioqKg==");
    assert_eq!(event["type"], "ADDED");
    let mut no_kind = json!({"type": "MODIFIED", "object": {"data": {"k": "dg=="}}});
    assert_eq!(mask_secrets(&mut no_kind, true), 1);
    let mut other = json!({"type": "ADDED", "object": {"kind": "Pod", "data": {"k": "v"}}});
    assert_eq!(mask_secrets(&mut other, false), 0);
}

#[test]
fn tables_with_include_object() {
    // kubectl get secrets: Accept: application/json;as=Table;g=meta.k8s.io;v=v1, includeObject=Object.
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": [{"name": "Name", "type": "string"}, {"name": "Data", "type": "string"}],
        "rows": [
            {"cells": ["a", 2], "object": secret("a")},
            {"cells": ["b", 1], "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "b"}}},
            {"cells": ["c", 1]},
        ],
    });
    let mut as_secrets_request = table.clone();
    assert_eq!(mask_secrets(&mut table, false), 2);
    assert_eq!(table["rows"][0]["object"]["data"]["password"], "KioqKg==");
    assert_eq!(table["rows"][0]["cells"], json!(["a", 2]));
    assert_eq!(mask_secrets(&mut as_secrets_request, true), 2);
    // Row objects without a kind are masked when the request was for Secrets.
    let mut bare =
        json!({"kind": "Table", "rows": [{"cells": [], "object": {"data": {"k": "dg=="}}}]});
    assert_eq!(mask_secrets(&mut bare, true), 1);
    assert_eq!(bare["rows"][0]["object"]["data"]["k"], "KioqKg==");
}

#[test]
fn the_last_applied_annotation_is_masked_inside() {
    let applied = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "a", "namespace": "prod"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"token": "plain"},
    });
    let mut value = secret("a");
    value["metadata"]["annotations"] = json!({
        LAST_APPLIED: format!("{applied}\n"),
        "other": "kept",
    });
    assert_eq!(mask_secrets(&mut value, false), 4);
    let text = value["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .expect("a string");
    assert!(text.ends_with('\n'));
    assert!(
        !text.contains("aHVudGVyMg==") && !text.contains("plain"),
        "{text}"
    );
    let inner: Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(inner["data"]["password"], "KioqKg==");
    assert_eq!(inner["stringData"]["token"], "****");
    assert_eq!(value["metadata"]["annotations"]["other"], "kept");
}

#[test]
fn an_unreadable_last_applied_annotation_is_replaced() {
    for bad in [
        json!("{\"data\": {\"password\": \"aHVudGVyMg==\""),
        json!({"data": {}}),
        json!(7),
    ] {
        let mut value = secret("a");
        value["metadata"]["annotations"] = json!({ LAST_APPLIED: bad });
        assert_eq!(mask_secrets(&mut value, false), 3);
        assert_eq!(value["metadata"]["annotations"][LAST_APPLIED], "****");
    }
}

#[test]
fn data_that_is_not_an_object_of_strings_is_replaced_whole() {
    for bad in [
        json!("aHVudGVyMg=="),
        json!(["aHVudGVyMg=="]),
        json!({"a": "b", "c": {"d": "e"}}),
        json!({"n": 1}),
    ] {
        let mut value = json!({"kind": "Secret", "data": bad.clone(), "stringData": bad});
        assert_eq!(mask_secrets(&mut value, false), 2);
        assert_eq!(value["data"], json!({}));
        assert_eq!(value["stringData"], json!({}));
    }
    let mut null = json!({"kind": "Secret", "data": null});
    assert_eq!(mask_secrets(&mut null, false), 0);
    // A Go client reads `Data` into the same field: it is masked too.
    let mut upper = json!({"kind": "Secret", "Data": {"k": "dg=="}});
    assert_eq!(mask_secrets(&mut upper, false), 1);
    assert_eq!(upper["Data"]["k"], "KioqKg==");
}

#[test]
fn top_level_arrays_and_scalars() {
    let mut array = json!([secret("a"), 1, "x"]);
    assert_eq!(mask_secrets(&mut array, false), 2);
    let mut scalar = json!("aHVudGVyMg==");
    assert_eq!(mask_secrets(&mut scalar, true), 0);
}

#[test]
fn metadata_only_tables_mask_the_last_applied_annotation() {
    // kubectl get secrets asks for a Table; by default each row carries the object's metadata,
    // annotations included, and the last-applied annotation holds the values.
    let applied = json!({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}).to_string();
    let mut table = json!({
        "kind": "Table",
        "rows": [{
            "cells": ["a", "Opaque", 1, "5m"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "annotations": { LAST_APPLIED: applied }},
            },
        }],
    });
    assert_eq!(mask_secrets(&mut table, true), 1);
    let text = table["rows"][0]["object"]["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .expect("a string");
    assert!(!text.contains("aHVudGVyMg=="), "{text}");
    assert!(text.contains("KioqKg=="), "{text}");
}
