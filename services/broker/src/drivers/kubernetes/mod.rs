//! Databases on a Kubernetes cluster: the objects of [`objects`] applied server-side with one
//! field manager (what another manager changed is taken back by the next apply), read back
//! for status and drift, deleted with the volumes their StatefulSet made.

pub mod objects;

use kube::{
    Api, Client,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    },
};
use serde_json::Value;

pub use objects::Mode;

use super::{Credentials, DriverError, Names};
use crate::domain::{drift::Observed, drift::Usage, spec::Spec};

/// A Kubernetes target.
#[derive(Clone)]
pub struct KubernetesDatabases {
    client: Client,
    mode: Mode,
    storage_class: Option<String>,
}

impl std::fmt::Debug for KubernetesDatabases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDatabases")
            .field("mode", &self.mode)
            .field("storage_class", &self.storage_class)
            .finish_non_exhaustive()
    }
}

/// The API resource of a manifest's `apiVersion` and `kind`.
fn resource_of(manifest: &Value) -> ApiResource {
    let api_version = manifest["apiVersion"].as_str().unwrap_or("v1");
    let kind = manifest["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "PersistentVolumeClaim" => "persistentvolumeclaims".to_owned(),
        other => format!("{}s", other.to_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

fn name_of(manifest: &Value) -> &str {
    manifest["metadata"]["name"].as_str().unwrap_or_default()
}

/// 404 is "gone already"; the API's refusals (4xx) will not change on a retry; the rest
/// (5xx, connection trouble) may.
fn classify(e: kube::Error) -> DriverError {
    match &e {
        kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 429 && s.code != 409 => {
            DriverError::Refused(format!("the Kubernetes API refused: {}", s.message))
        }
        _ => DriverError::Transient(format!("the Kubernetes API: {e}")),
    }
}

impl KubernetesDatabases {
    pub fn new(client: Client, mode: Mode, storage_class: Option<String>) -> Self {
        Self {
            client,
            mode,
            storage_class,
        }
    }

    fn api(&self, manifest: &Value, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource_of(manifest))
    }

    /// Whether the API server answers; sets `broker_kubernetes_api_available`.
    pub async fn ping(&self) -> Result<(), DriverError> {
        let answered = self.client.apiserver_version().await;
        metrics::gauge!("broker_kubernetes_api_available").set(if answered.is_ok() {
            1.0
        } else {
            0.0
        });
        answered.map(|_| ()).map_err(classify)
    }

    pub fn new_credentials(names: &Names, spec: &Spec) -> Credentials {
        let identifier = names.name.replace('-', "_");
        match spec.engine {
            // `--requirepass` sets the default user's password.
            crate::domain::spec::Engine::Redis => Credentials::generate("default", None),
            _ => Credentials::generate(&identifier, Some(&identifier)),
        }
    }

    pub fn endpoint(&self, names: &Names, spec: &Spec) -> (String, u16) {
        (
            objects::host(names, spec.engine, self.mode),
            spec.engine.default_port(),
        )
    }

    pub async fn apply(
        &self,
        names: &Names,
        spec: &Spec,
        credentials: &Credentials,
    ) -> Result<(), DriverError> {
        let params = PatchParams::apply(objects::MANAGER).force();
        let manifests = objects::manifests(
            names,
            spec,
            credentials,
            self.mode,
            self.storage_class.as_deref(),
        );
        for m in &manifests {
            self.api(m, &names.namespace)
                .patch(name_of(m), &params, &Patch::Apply(m))
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// The objects the spec is made of and whether each exists, with what the main one says.
    pub async fn observe(&self, names: &Names, spec: &Spec) -> Result<Observed, DriverError> {
        // The credentials do not change what exists; placeholders name the same objects.
        let placeholder = Credentials::generate("", Some(""));
        let manifests = objects::manifests(names, spec, &placeholder, self.mode, None);
        let mut observed = Observed::default();
        for m in &manifests {
            let found = self
                .api(m, &names.namespace)
                .get_opt(name_of(m))
                .await
                .map_err(classify)?;
            let kind = m["kind"].as_str().unwrap_or_default().to_lowercase();
            observed
                .parts
                .push((format!("{kind} {}", name_of(m)), found.is_some()));
            if let Some(found) =
                found.filter(|_| matches!(m["kind"].as_str(), Some("StatefulSet" | "Cluster")))
            {
                let seen = objects::seen(&serde_json::to_value(&found).unwrap_or_default());
                observed.version = seen.version;
                observed.replicas = seen.replicas;
                observed.resources = seen.resources.clone();
                observed.waiting = seen.waiting;
                observed.usage = Usage {
                    replicas: Some(seen.ready),
                    cpu_usage: None,
                    memory_usage: None,
                    storage_usage: Some(format!("{}Gi", spec.size.storage_gib())),
                };
            }
        }
        Ok(observed)
    }

    /// Deletes every object, then the volumes the StatefulSet's replicas claimed (a cluster
    /// without the retention policy leaves them). What is gone already is fine.
    pub async fn delete(&self, names: &Names, spec: &Spec) -> Result<(), DriverError> {
        let placeholder = Credentials::generate("", Some(""));
        let manifests = objects::manifests(names, spec, &placeholder, self.mode, None);
        for m in manifests.iter().rev() {
            match self
                .api(m, &names.namespace)
                .delete(name_of(m), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(e)),
            }
        }
        let claims = self.api(
            &serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim"}),
            &names.namespace,
        );
        // The claims of the StatefulSet's template carry its selector's labels.
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/name={}",
            names.name,
            spec.engine.as_str()
        );
        let owned = claims
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(classify)?;
        for claim in owned {
            let name = claim.metadata.name.unwrap_or_default();
            match claims.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
    }
}
