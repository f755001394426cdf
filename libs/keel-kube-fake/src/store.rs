//! The objects and what the API server does to them: resource versions, generations, the
//! status subresource, finalizers, owner cascades, and the history watches replay from.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::resource::{Failure, Resource};

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub api_version: String,
    pub plural: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

type Key = (String, String, String, String);

/// How a write treats `.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object: its status is kept as it was when the kind has a status subresource.
    Main,
    /// The `/status` subresource: only the status changes.
    Status,
}

pub struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    pub history: Vec<Change>,
    pub changes: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 1,
            history: Vec::new(),
            changes: broadcast::channel(4096).0,
        }
    }
}

fn key(r: &Resource, namespace: &str, name: &str) -> Key {
    (
        r.api_version.clone(),
        r.plural.clone(),
        namespace.into(),
        name.into(),
    )
}

fn meta(o: &mut Value) -> &mut Map<String, Value> {
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    o["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// The object without metadata and status: what a generation counts changes of.
fn content(o: &Value) -> Value {
    let mut c = o.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

/// Server-side apply, simplified: objects merge field by field, anything else (lists too)
/// is replaced by what was applied.
pub fn apply_merge(into: &mut Value, applied: &Value) {
    match (into, applied) {
        (Value::Object(into), Value::Object(applied)) => {
            for (k, v) in applied {
                match into.get_mut(k) {
                    Some(existing) => apply_merge(existing, v),
                    None => {
                        into.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, applied) => *into = applied.clone(),
    }
}

impl Store {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, r: &Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(r, namespace, name))
    }

    /// The objects of a kind, in one namespace or (`None`) all.
    pub fn list<'a>(
        &'a self,
        r: &'a Resource,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |((v, p, ns, _), _)| {
                *v == r.api_version && *p == r.plural && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, o)| o)
    }

    fn record(&mut self, r: &Resource, kind: &'static str, object: Value) {
        let change = Change {
            revision: self.revision,
            api_version: r.api_version.clone(),
            plural: r.plural.clone(),
            kind,
            object,
        };
        self.history.push(change.clone());
        // No receiver is fine: nobody watches.
        let _ = self.changes.send(change);
    }

    fn stamp(&mut self, r: &Resource, o: &mut Value) {
        self.revision += 1;
        o["apiVersion"] = json!(r.api_version);
        o["kind"] = json!(r.kind);
        meta(o).insert("resourceVersion".into(), json!(self.revision.to_string()));
    }

    pub fn create(
        &mut self,
        r: &Resource,
        namespace: &str,
        mut o: Value,
    ) -> Result<Value, Failure> {
        if !o.is_object() {
            return Err(Failure::new(400, "BadRequest", "the body is not an object"));
        }
        let m = meta(&mut o);
        let name = match (m.get("name").and_then(Value::as_str), m.get("generateName")) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(Value::String(prefix))) => {
                format!(
                    "{prefix}{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..5]
                )
            }
            _ => {
                return Err(Failure::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        m.insert("name".into(), json!(name));
        if r.namespaced {
            m.insert("namespace".into(), json!(namespace));
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("generation".into(), json!(1));
        m.insert(
            "creationTimestamp".into(),
            json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        m.remove("deletionTimestamp");
        if self.get(r, namespace, &name).is_some() {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", r.plural),
            ));
        }
        if r.status_subresource
            && let Some(obj) = o.as_object_mut()
        {
            obj.remove("status");
        }
        self.stamp(r, &mut o);
        self.objects.insert(key(r, namespace, &name), o.clone());
        self.record(r, "ADDED", o.clone());
        Ok(o)
    }

    /// Writes `next` over the existing object as `part` allows, keeping what only the server
    /// sets, and finishes a deletion whose last finalizer went.
    pub fn update(
        &mut self,
        r: &Resource,
        namespace: &str,
        name: &str,
        mut next: Value,
        part: Part,
    ) -> Result<Value, Failure> {
        let k = key(r, namespace, name);
        let current = self
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| Failure::not_found(r, name))?;
        if !next.is_object() {
            return Err(Failure::new(400, "BadRequest", "the body is not an object"));
        }
        if let Some(asked) = next["metadata"]["resourceVersion"].as_str()
            && !asked.is_empty()
            && current["metadata"]["resourceVersion"].as_str() != Some(asked)
        {
            return Err(Failure::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    r.plural
                ),
            ));
        }
        if part == Part::Status {
            let status = next.get("status").cloned();
            next = current.clone();
            match status {
                Some(s) => next["status"] = s,
                None => {
                    next.as_object_mut().map(|o| o.remove("status"));
                }
            }
        } else if r.status_subresource {
            match current.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        next["apiVersion"] = json!(r.api_version);
        next["kind"] = json!(r.kind);
        let old = current["metadata"].clone();
        let m = meta(&mut next);
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            match old.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        // Only the server sets a deletion; a client cannot take it back.
        match old.get("deletionTimestamp") {
            Some(v) => m.insert("deletionTimestamp".into(), v.clone()),
            None => m.remove("deletionTimestamp"),
        };
        let generation = old["generation"].as_i64().unwrap_or(1);
        let bumped = generation + i64::from(content(&current) != content(&next));
        meta(&mut next).insert("generation".into(), json!(bumped));
        if next == current {
            return Ok(current);
        }
        self.stamp(r, &mut next);
        if next["metadata"].get("deletionTimestamp").is_some() && finalizers(&next).is_empty() {
            self.remove(r, namespace, name);
            return Ok(next);
        }
        self.objects.insert(k, next.clone());
        self.record(r, "MODIFIED", next.clone());
        Ok(next)
    }

    /// A deletion: marked while finalizers remain, else removed with what it owns.
    pub fn delete(&mut self, r: &Resource, namespace: &str, name: &str) -> Result<Value, Failure> {
        let mut o = self
            .get(r, namespace, name)
            .cloned()
            .ok_or_else(|| Failure::not_found(r, name))?;
        if finalizers(&o).is_empty() {
            return Ok(self.remove(r, namespace, name).unwrap_or(o));
        }
        if o["metadata"].get("deletionTimestamp").is_none() {
            let m = meta(&mut o);
            m.insert(
                "deletionTimestamp".into(),
                json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            self.stamp(r, &mut o);
            self.objects.insert(key(r, namespace, name), o.clone());
            self.record(r, "MODIFIED", o.clone());
        }
        Ok(o)
    }

    /// Removes the object and, as the garbage collector would, every object it owns.
    fn remove(&mut self, r: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let mut o = self.objects.remove(&key(r, namespace, name))?;
        self.stamp(r, &mut o);
        self.record(r, "DELETED", o.clone());
        let uid = o["metadata"]["uid"].clone();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, d)| {
                d["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|x| x["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (api_version, plural, ns, n) in owned {
            let kind = self.objects[&(api_version.clone(), plural.clone(), ns.clone(), n.clone())]
                ["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let dependent = Resource {
                api_version,
                plural,
                kind,
                namespaced: true,
                status_subresource: false,
            };
            let _ = self.delete(&dependent, &ns, &n);
        }
        Some(o)
    }
}

fn finalizers(o: &Value) -> Vec<Value> {
    o["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Resource {
        Resource::new("v1", "secrets", "Secret").plain()
    }

    fn sets() -> Resource {
        Resource::new("apps/v1", "statefulsets", "StatefulSet")
    }

    #[test]
    fn apply_merges_objects_and_replaces_lists() {
        let mut o = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        apply_merge(&mut o, &json!({"a": {"c": [3]}, "e": 2}));
        assert_eq!(o, json!({"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}));
    }

    #[test]
    fn generations_count_spec_changes_only() {
        let mut s = Store::default();
        let r = sets();
        s.create(
            &r,
            "ns",
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}}),
        )
        .unwrap();
        let o = s
            .update(
                &r,
                "ns",
                "a",
                json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 1}}),
                Part::Main,
            )
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        let o = s
            .update(
                &r,
                "ns",
                "a",
                json!({"metadata": {"name": "a"}, "spec": {"replicas": 3}}),
                Part::Main,
            )
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 2);
        let o = s
            .update(
                &r,
                "ns",
                "a",
                json!({"status": {"readyReplicas": 3}}),
                Part::Status,
            )
            .unwrap();
        assert_eq!(
            (
                o["metadata"]["generation"].as_i64(),
                o["spec"]["replicas"].as_i64()
            ),
            (Some(2), Some(3))
        );
        // A write to the object cannot change its status.
        let o = s
            .update(
                &r,
                "ns",
                "a",
                json!({"spec": {"replicas": 3}, "status": {}}),
                Part::Main,
            )
            .unwrap();
        assert_eq!(o["status"]["readyReplicas"], 3);
    }

    #[test]
    fn a_stale_resource_version_conflicts() {
        let mut s = Store::default();
        let r = secrets();
        let made = s
            .create(&r, "ns", json!({"metadata": {"name": "a"}}))
            .unwrap();
        s.update(
            &r,
            "ns",
            "a",
            json!({"metadata": {}, "data": {"k": "dg=="}}),
            Part::Main,
        )
        .unwrap();
        let stale = json!({"metadata": {"resourceVersion": made["metadata"]["resourceVersion"]}});
        let err = s.update(&r, "ns", "a", stale, Part::Main).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(
            s.create(&r, "ns", json!({"metadata": {"name": "a"}}))
                .unwrap_err()
                .reason,
            "AlreadyExists"
        );
    }

    #[test]
    fn finalizers_hold_a_deletion_and_owners_take_their_dependents() {
        let mut s = Store::default();
        let (r, owned) = (sets(), secrets());
        let owner = s
            .create(
                &r,
                "ns",
                json!({"metadata": {"name": "o", "finalizers": ["f"]}}),
            )
            .unwrap();
        let uid = owner["metadata"]["uid"].clone();
        s.create(
            &owned,
            "ns",
            json!({"metadata": {"name": "d", "ownerReferences": [{"uid": uid}]}}),
        )
        .unwrap();
        let marked = s.delete(&r, "ns", "o").unwrap();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(&r, "ns", "o").is_some() && s.get(&owned, "ns", "d").is_some());
        s.update(
            &r,
            "ns",
            "o",
            json!({"metadata": {"finalizers": []}}),
            Part::Main,
        )
        .unwrap();
        assert!(
            s.get(&r, "ns", "o").is_none(),
            "the last finalizer's removal deletes"
        );
        assert!(
            s.get(&owned, "ns", "d").is_none(),
            "the dependent goes with its owner"
        );
        let kinds: Vec<_> = s.history.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["ADDED", "ADDED", "MODIFIED", "DELETED", "DELETED"]);
    }
}
