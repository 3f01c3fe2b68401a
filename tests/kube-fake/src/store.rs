//! The in-memory object store: every object keyed by (resource, namespace, name), one global
//! resourceVersion counter bumped by every write, a bounded history of change events (so a
//! watch can resume from a list's resourceVersion, as `kubectl get -w` does) and a broadcast
//! channel that feeds live watches.
//!
//! Invariant: an event is appended to the history and broadcast while the lock is held, and
//! watchers subscribe while holding it too, so a watcher sees every event after its snapshot
//! exactly once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::time;

/// How many change events are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 50_000;
/// Live events buffered per watcher before it is considered too slow (its watch then ends).
const BROADCAST: usize = 16_384;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Resource plural (unique across the groups served).
    pub resource: &'static str,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed (the event carries its last state).
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which object.
    pub key: Key,
    /// The object after the change (before it, for deletions, with the deletion's resourceVersion).
    pub object: Value,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    /// Objects, counter and history.
    inner: Mutex<Inner>,
    /// Live events for watches.
    events: broadcast::Sender<Event>,
}

#[derive(Debug)]
struct Inner {
    /// The last resourceVersion handed out.
    rv: u64,
    /// Ordered by resource, namespace, name: the order lists come back in.
    objects: BTreeMap<Key, Value>,
    /// The last [`HISTORY`] events, oldest first.
    history: VecDeque<Event>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current objects, then live changes.
    Current,
    /// Changes with a resourceVersion above this one (replayed from history, then live).
    After(u64),
}

/// What a new watch gets: the events to send first, then a live feed of later ones.
#[derive(Debug)]
pub struct WatchStart {
    /// Initial events (synthetic ADDED or replayed history), already filtered.
    pub initial: Vec<Event>,
    /// Live events; only those with `rv > after` are new.
    pub live: broadcast::Receiver<Event>,
    /// The resourceVersion the initial events bring the watcher up to.
    pub after: u64,
}

/// A write that should not happen: `dryRun=All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Apply it.
    Commit,
    /// Validate and answer as if, change nothing.
    DryRun,
}

impl Default for Store {
    fn default() -> Self {
        let (events, _) = broadcast::channel(BROADCAST);
        Store {
            inner: Mutex::new(Inner {
                rv: 1000,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
            }),
            events,
        }
    }
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&key(def, namespace, name)).cloned()
    }

    /// All objects of a type (in one namespace, or all when `namespace` is `None`), ordered by
    /// namespace and name, with the resourceVersion they were read at.
    pub fn list(&self, def: &ResourceDef, namespace: Option<&str>) -> (u64, Vec<Value>) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| {
                k.resource == def.plural && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, v)| v.clone())
            .collect();
        (inner.rv, items)
    }

    /// Creates `object` (already carrying name and namespace); fills uid, resourceVersion,
    /// creationTimestamp and per-kind defaults.
    pub fn create(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        object: Value,
        write: Write,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let mut object = object;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let k = key(def, namespace, &name);
        if def.namespaced
            && !inner.objects.contains_key(&Key {
                resource: "namespaces",
                namespace: String::new(),
                name: namespace.to_string(),
            })
        {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        if inner.objects.contains_key(&k) {
            return Err(ApiError::already_exists(def.group, def.plural, &name));
        }
        let rv = inner.rv + 1;
        stamp_new(def, &mut object, rv);
        if write == Write::Commit {
            inner.rv = rv;
            inner.objects.insert(k.clone(), object.clone());
            self.record(&mut inner, EventType::Added, k, object.clone());
        }
        Ok(object)
    }

    /// Replaces an object with `change(current)`; keeps identity fields, bumps resourceVersion.
    /// A `metadata.resourceVersion` in the new object must match the stored one.
    pub fn update(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: &str,
        write: Write,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(def, namespace, name);
        let current = inner
            .objects
            .get(&k)
            .ok_or_else(|| ApiError::not_found(def.group, def.plural, name))?;
        let mut next = change(current)?;
        if !next.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        let sent_rv = next["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !sent_rv.is_empty()
            && Some(sent_rv.as_str()) != current["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(def.group, def.plural, name));
        }
        if next["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let rv = inner.rv + 1;
        if !next["metadata"].is_object() {
            next["metadata"] = json!({});
        }
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            if let Some(v) = current["metadata"].get(field) {
                next["metadata"][field] = v.clone();
            }
        }
        next["kind"] = json!(def.kind);
        next["apiVersion"] = json!(def.api_version());
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        if def.plural == "deployments" && next.get("spec") != current.get("spec") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        if write == Write::Commit {
            inner.rv = rv;
            inner.objects.insert(k.clone(), next.clone());
            self.record(&mut inner, EventType::Modified, k, next.clone());
        }
        Ok(next)
    }

    /// Removes an object and, for a namespace, everything in it. Returns the object as it was
    /// (with the deletion's resourceVersion).
    pub fn delete(
        &self,
        def: &'static ResourceDef,
        namespace: &str,
        name: &str,
        write: Write,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let k = key(def, namespace, name);
        let mut object = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def.group, def.plural, name))?;
        if write == Write::DryRun {
            return Ok(object);
        }
        if def.plural == "namespaces" {
            let inside: Vec<Key> = inner
                .objects
                .keys()
                .filter(|c| c.resource != "namespaces" && c.namespace == name)
                .cloned()
                .collect();
            for c in inside {
                self.remove(&mut inner, c);
            }
        }
        inner.objects.remove(&k);
        inner.rv += 1;
        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        self.record(&mut inner, EventType::Deleted, k, object.clone());
        Ok(object)
    }

    fn remove(&self, inner: &mut Inner, k: Key) {
        if let Some(mut object) = inner.objects.remove(&k) {
            inner.rv += 1;
            object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
            self.record(inner, EventType::Deleted, k, object);
        }
    }

    fn record(&self, inner: &mut Inner, kind: EventType, key: Key, object: Value) {
        let event = Event {
            rv: inner.rv,
            kind,
            key,
            object,
        };
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Starts a watch on one resource type (optionally one namespace); `keep` filters objects
    /// (field selectors).
    pub fn watch(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        from: WatchFrom,
        keep: &dyn Fn(&Value) -> bool,
    ) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let live = self.events.subscribe();
        let matches = |k: &Key, v: &Value| {
            k.resource == def.plural && namespace.is_none_or(|ns| k.namespace == ns) && keep(v)
        };
        match from {
            WatchFrom::Current => {
                let initial = inner
                    .objects
                    .iter()
                    .filter(|(k, v)| matches(k, v))
                    .map(|(k, v)| Event {
                        rv: rv_of(v),
                        kind: EventType::Added,
                        key: k.clone(),
                        object: v.clone(),
                    })
                    .collect();
                Ok(WatchStart {
                    initial,
                    live,
                    after: inner.rv,
                })
            }
            WatchFrom::After(after) => {
                let oldest = inner.history.front().map_or(inner.rv, |e| e.rv);
                // History starts at `oldest`; resuming below `oldest - 1` would skip changes.
                if after + 1 < oldest && after < inner.rv {
                    return Err(ApiError::gone(after));
                }
                let initial = inner
                    .history
                    .iter()
                    .filter(|e| e.rv > after && matches(&e.key, &e.object))
                    .cloned()
                    .collect();
                Ok(WatchStart {
                    initial,
                    live,
                    after: inner.rv.max(after),
                })
            }
        }
    }
}

fn key(def: &ResourceDef, namespace: &str, name: &str) -> Key {
    Key {
        resource: def.plural,
        namespace: if def.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

/// The object's `metadata.resourceVersion` as a number.
pub fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Fills what the API server sets on create.
fn stamp_new(def: &ResourceDef, object: &mut Value, rv: u64) {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    object["kind"] = json!(def.kind);
    object["apiVersion"] = json!(def.api_version());
    let meta = &mut object["metadata"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["uid"] = json!(uid());
    meta["resourceVersion"] = json!(rv.to_string());
    if meta.get("creationTimestamp").is_none_or(Value::is_null) {
        meta["creationTimestamp"] = json!(time::rfc3339(time::now_secs()));
    }
    if let Some(m) = meta.as_object_mut() {
        m.remove("deletionTimestamp");
    }
    match def.plural {
        "namespaces" => {
            if object.get("spec").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            object["status"] = json!({"phase": "Active"});
        }
        "pods" if object["status"]["phase"].as_str().is_none() => {
            object["status"]["phase"] = json!("Pending");
        }
        "secrets" if object["type"].as_str().is_none() => {
            object["type"] = json!("Opaque");
        }
        "deployments" => {
            object["metadata"]["generation"] = json!(1);
        }
        _ => {}
    }
}

/// A random RFC 4122 version-4 UUID.
pub fn uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
