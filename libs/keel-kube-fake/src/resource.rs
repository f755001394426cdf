//! The kinds of objects the server knows, and the errors it answers with.

use serde_json::{Value, json};

/// A kind of object the server knows: `apps/v1` `statefulsets` is `StatefulSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub api_version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Writes to the object itself leave `.status` alone; `/status` writes only it.
    pub status_subresource: bool,
}

impl Resource {
    pub fn new(api_version: &str, plural: &str, kind: &str) -> Self {
        Self {
            api_version: api_version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status_subresource: true,
        }
    }

    /// Objects without a status subresource (Secret, ConfigMap, Event).
    pub fn plain(mut self) -> Self {
        self.status_subresource = false;
        self
    }

    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }
}

/// The kinds registered from the start: what the broker and the controller write.
pub fn builtin() -> Vec<Resource> {
    vec![
        Resource::new("v1", "secrets", "Secret").plain(),
        Resource::new("v1", "configmaps", "ConfigMap").plain(),
        Resource::new("v1", "services", "Service"),
        Resource::new("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        Resource::new("v1", "pods", "Pod"),
        Resource::new("v1", "events", "Event").plain(),
        Resource::new("v1", "namespaces", "Namespace").cluster_scoped(),
        Resource::new("apps/v1", "statefulsets", "StatefulSet"),
        Resource::new("apps/v1", "deployments", "Deployment"),
        Resource::new("batch/v1", "cronjobs", "CronJob"),
        Resource::new("events.k8s.io/v1", "events", "Event").plain(),
        Resource::new("postgresql.cnpg.io/v1", "clusters", "Cluster"),
        Resource::new(
            "postgresql.cnpg.io/v1",
            "scheduledbackups",
            "ScheduledBackup",
        ),
        Resource::new(
            "source.flux.oddkin.co/v1alpha1",
            "externalsources",
            "ExternalSource",
        ),
        Resource::new(
            "source.toolkit.fluxcd.io/v1",
            "externalartifacts",
            "ExternalArtifact",
        ),
        Resource::new(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
        .cluster_scoped(),
    ]
}

/// An API error, as the server's `Status` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(r: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.plural),
        )
    }

    pub fn body(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}
