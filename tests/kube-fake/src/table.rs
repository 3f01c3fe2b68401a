//! Server-side printing: objects to `meta.k8s.io` `Table`s, as `kubectl get` asks for them.
//! Cells never carry secret values (a Secret's Data column is the number of keys).

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::time;

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

impl Include {
    /// From the `includeObject` query parameter.
    pub fn parse(q: Option<&str>) -> Self {
        match q {
            Some("Object") => Include::Object,
            Some("None") => Include::None,
            _ => Include::Metadata,
        }
    }
}

/// How to render a Table.
#[derive(Debug, Clone, Copy)]
pub struct TableOpts {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`, as negotiated.
    pub api_version: &'static str,
    /// Row object contents.
    pub include: Include,
    /// Omit `columnDefinitions` (every watch event after the first).
    pub no_headers: bool,
}

fn col(name: &str, ty: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        0,
    );
    let age = col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        0,
    );
    match def.plural {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age,
        ],
        "secrets" => vec![
            name,
            col("Type", "string", "", "The type of the secret", 0),
            col(
                "Data",
                "string",
                "",
                "The number of entries in the secret",
                0,
            ),
            age,
        ],
        "configmaps" => vec![
            name,
            col(
                "Data",
                "string",
                "",
                "The number of entries in the configmap",
                0,
            ),
            age,
        ],
        "namespaces" => vec![
            name,
            col("Status", "string", "", "The status of the namespace", 0),
            age,
        ],
        "deployments" => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ),
            col(
                "Up-to-date",
                "string",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "string",
                "",
                "Total number of available pods (ready for at least minReadySeconds) available to the users of this deployment.",
                0,
            ),
            age,
        ],
        _ => vec![name, age],
    }
}

fn cells(def: &ResourceDef, o: &Value, now: i64) -> Vec<Value> {
    let name = json!(o["metadata"]["name"].as_str().unwrap_or_default());
    let age = json!(
        o["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(time::parse_rfc3339)
            .map_or_else(|| "<unknown>".to_string(), |t| time::human_age(now - t))
    );
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    match def.plural {
        "pods" => {
            let containers = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let statuses = o["status"]["containerStatuses"].as_array();
            let ready = statuses.map_or(0, |s| {
                s.iter()
                    .filter(|c| c["ready"].as_bool() == Some(true))
                    .count()
            });
            let restarts: i64 = statuses.map_or(0, |s| {
                s.iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum()
            });
            let status = if o["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else {
                o["status"]["phase"].as_str().unwrap_or("Unknown")
            };
            vec![
                name,
                json!(format!("{ready}/{containers}")),
                json!(status),
                json!(restarts),
                age,
            ]
        }
        "secrets" => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(count(&o["data"]) + count(&o["stringData"])),
            age,
        ],
        "configmaps" => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            age,
        ],
        "namespaces" => vec![
            name,
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        "deployments" => {
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&o["status"]["readyReplicas"]),
                    n(&o["spec"]["replicas"])
                )),
                json!(n(&o["status"]["updatedReplicas"])),
                json!(n(&o["status"]["availableReplicas"])),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

/// A `PartialObjectMetadata` for a row.
fn partial(o: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": o["metadata"].clone(),
    })
}

/// Renders `objects` as a Table; `list_meta` becomes the table's `metadata`
/// (resourceVersion, continue).
pub fn table(def: &ResourceDef, objects: &[Value], list_meta: Value, opts: TableOpts) -> Value {
    let now = time::now_secs();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, o, now)});
            match opts.include {
                Include::Metadata => row["object"] = partial(o),
                Include::Object => {
                    let mut full = o.clone();
                    full["kind"] = json!(def.kind);
                    full["apiVersion"] = json!(def.api_version());
                    row["object"] = full;
                }
                Include::None => {}
            }
            row
        })
        .collect();
    // Go's TableColumnDefinition slice has no omitempty: headers off encodes as null.
    json!({
        "kind": "Table",
        "apiVersion": opts.api_version,
        "metadata": list_meta,
        "columnDefinitions": if opts.no_headers { Value::Null } else { json!(columns(def)) },
        "rows": rows,
    })
}
