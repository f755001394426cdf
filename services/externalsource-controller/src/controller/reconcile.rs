//! One reconciliation of an ExternalSource: pre-request hooks, the generator (with the last
//! ETag), post-request hooks, the artifact packaged, stored and the old ones collected, the
//! ExternalArtifact applied, and the status written by server-side apply.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::json;

use super::{Context, MANAGER};
use crate::{
    crd::{API_VERSION, Artifact, ExternalArtifact, ExternalSource, ExternalSourceStatus},
    domain::{
        artifact,
        conditions::{self, Outcome},
        policy::{self, Budget, Record},
    },
    error::{Class, Error, Result},
    generator::{Fetched, Input},
};

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The source's interval, at least a minute.
pub fn interval(s: &ExternalSource) -> Result<Duration> {
    policy::duration(&s.spec.interval)
        .map(|d| d.max(policy::MIN_INTERVAL))
        .ok_or_else(|| {
            Error::Configuration(format!("interval {:?} is not a duration", s.spec.interval))
        })
}

impl Context {
    fn record(record: &Record) {
        for (_, outcome) in record {
            metrics::counter!("externalsource_hook_execution_total", "outcome" => *outcome)
                .increment(1);
        }
    }

    async fn hooks(
        &self,
        hooks: &[crate::crd::HookSpec],
        data: Vec<u8>,
        budget: &mut Budget,
    ) -> Result<Vec<u8>> {
        let mut record = Record::new();
        let runner = self.runner.clone();
        let out = policy::run_chain(hooks, data, budget, &mut record, |hook, data| {
            let (runner, hook) = (runner.clone(), hook.clone());
            async move { runner.run(&hook, data).await }
        })
        .await;
        Self::record(&record);
        Ok(out?)
    }

    /// Makes (or confirms) the artifact; answers it, the ETag it came with, and whether it
    /// is new.
    async fn produce(&self, s: &ExternalSource) -> Result<(Artifact, Option<String>, bool)> {
        let ns = s.namespace().unwrap_or_default();
        artifact::destination(&s.spec.destination_path).map_err(Error::Configuration)?;
        let mut budget = Budget::new(s.spec.max_retries);
        let hooks = s.spec.hooks.clone().unwrap_or_default();
        self.hooks(&hooks.pre_request, Vec::new(), &mut budget)
            .await?;
        let status = s.status.clone().unwrap_or_default();
        let current = match &status.artifact {
            Some(a) if self.storage.exists(&a.path).await? => Some(a.clone()),
            _ => None,
        };
        let last_etag = current.as_ref().and(status.last_handled_etag.as_deref());
        let generator = self.factory.get(s.spec.generator.kind.as_str())?;
        let fetched = loop {
            let started = Instant::now();
            let attempt = generator
                .generate(Input {
                    spec: &s.spec.generator,
                    namespace: &ns,
                    last_etag,
                    client: &self.client,
                })
                .await;
            let outcome = match &attempt {
                Ok(Fetched::Unchanged) => "unchanged",
                Ok(_) => "success",
                Err(_) => "failure",
            };
            metrics::counter!("externalsource_source_request_total", "generator" => s.spec.generator.kind.as_str(), "outcome" => outcome).increment(1);
            metrics::histogram!("externalsource_source_request_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            match attempt {
                Err(e) if e.class() == Class::Transient && budget.retry() => {
                    tracing::warn!(error = %e, "fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => break other?,
            }
        };
        let (data, etag, metadata) = match (fetched, current) {
            (Fetched::Unchanged, Some(a)) => return Ok((a, status.last_handled_etag, false)),
            (Fetched::Unchanged, None) => {
                return Err(Error::Fetch {
                    class: Class::Transient,
                    message: "the source answered 304 to a request without an ETag".into(),
                });
            }
            (
                Fetched::New {
                    data,
                    etag,
                    metadata,
                },
                _,
            ) => (data, etag, metadata),
        };
        let data = self.hooks(&hooks.post_request, data, &mut budget).await?;
        let packaged =
            artifact::package(&data, &s.spec.destination_path).map_err(Error::Configuration)?;
        let dir = artifact::directory(&ns, &s.name_any());
        let key = format!("{dir}{}", packaged.file);
        let fresh = current_path(s) != Some(key.as_str());
        let stored = self.storage_op("store", async {
            if !self.storage.exists(&key).await? {
                self.storage.put(&key, packaged.bytes.clone()).await?;
            }
            Ok(())
        });
        stored.await?;
        self.storage_op("gc", async {
            let listed = self.storage.list(&dir).await?;
            for old in artifact::garbage(&listed, &key, self.keep) {
                self.storage.delete(&old).await?;
            }
            Ok(())
        })
        .await?;
        let artifact = Artifact {
            digest: packaged.digest,
            path: key.clone(),
            url: self.storage.url(&key),
            revision: packaged.revision,
            last_update_time: now().0.to_string(),
            size: Some(packaged.bytes.len() as i64),
            metadata: Some(metadata),
        };
        Ok((artifact, etag, fresh))
    }

    async fn storage_op(
        &self,
        operation: &'static str,
        op: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let started = Instant::now();
        let result = op.await;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        metrics::counter!("externalsource_artifact_operation_total", "operation" => operation, "outcome" => outcome).increment(1);
        metrics::histogram!("externalsource_artifact_operation_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        result
    }

    pub(super) async fn apply(&self, s: &ExternalSource) -> Result<Action> {
        let status = s.status.clone().unwrap_or_default();
        if s.spec.suspend {
            self.write_status(s, &status, &Outcome::Suspended).await?;
            return Ok(Action::await_change());
        }
        let result = async {
            let every = interval(s)?;
            let made = self.produce(s).await?;
            Ok::<_, Error>((every, made))
        }
        .await;
        match result {
            Ok((every, (artifact, etag, fresh))) => {
                let message = format!("stored artifact for revision '{}'", artifact.revision);
                if fresh {
                    tracing::info!(revision = %artifact.revision, "new artifact");
                    self.event(s, EventType::Normal, "NewArtifact", &message)
                        .await;
                }
                self.publish(s, &artifact, &message).await?;
                let next = ExternalSourceStatus {
                    artifact: Some(artifact),
                    last_handled_etag: etag,
                    ..status
                };
                self.write_status(s, &next, &Outcome::Succeeded { message })
                    .await?;
                Ok(Action::requeue(every))
            }
            Err(e) => {
                let (kind, reason) = e.condition();
                let message = e.to_string();
                let outcome = match e.class() {
                    Class::Transient => Outcome::Retrying {
                        kind,
                        reason: reason.into(),
                        message,
                    },
                    _ => Outcome::Stalled {
                        reason: reason.into(),
                        message,
                    },
                };
                if let Err(w) = self.write_status(s, &status, &outcome).await {
                    tracing::warn!(error = %w, "cannot record the failure");
                }
                self.event(s, EventType::Warning, reason, &e.to_string())
                    .await;
                if let Err(w) = self.artifact_failed(s, reason, &e.to_string()).await {
                    tracing::warn!(error = %w, "cannot record the failure on the ExternalArtifact");
                }
                Err(e)
            }
        }
    }

    /// Applies the ExternalArtifact (owned by the source) and its status.
    async fn publish(&self, s: &ExternalSource, artifact: &Artifact, message: &str) -> Result<()> {
        let (name, ns) = (s.name_any(), s.namespace().unwrap_or_default());
        let api: Api<ExternalArtifact> = Api::namespaced(self.client.clone(), &ns);
        let owner = s
            .controller_owner_ref(&())
            .expect("a stored source has a uid");
        let params = PatchParams::apply(MANAGER).force();
        let object = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner]},
            "spec": {"sourceRef": {"apiVersion": API_VERSION, "kind": "ExternalSource", "name": name, "namespace": ns}},
        });
        api.patch(&name, &params, &Patch::Apply(&object)).await?;
        let ready = conditions::after(
            &[],
            &Outcome::Succeeded {
                message: message.to_owned(),
            },
            None,
            &now(),
        );
        let ready: Vec<_> = ready
            .into_iter()
            .filter(|c| c.type_ == conditions::READY)
            .collect();
        let status = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "status": {"artifact": artifact, "conditions": ready},
        });
        api.patch_status(&name, &params, &Patch::Apply(&status))
            .await?;
        Ok(())
    }

    /// A Kubernetes Event on the source (repeats are counted in a series by the recorder).
    async fn event(&self, s: &ExternalSource, kind: EventType, reason: &str, note: &str) {
        let event = Event {
            type_: kind,
            reason: reason.to_owned(),
            note: Some(note.chars().take(1024).collect()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &s.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish an event");
        }
    }

    /// The ExternalArtifact, when there is one, says Ready False with the failure's reason;
    /// its last artifact stays for consumers.
    async fn artifact_failed(&self, s: &ExternalSource, reason: &str, message: &str) -> Result<()> {
        let (name, ns) = (s.name_any(), s.namespace().unwrap_or_default());
        let api: Api<ExternalArtifact> = Api::namespaced(self.client.clone(), &ns);
        let Some(existing) = api.get_opt(&name).await? else {
            return Ok(());
        };
        let before = existing.status.clone().unwrap_or_default();
        let failed = Outcome::Stalled {
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        let ready: Vec<_> = conditions::after(&before.conditions, &failed, None, &now())
            .into_iter()
            .filter(|c| c.type_ == conditions::READY)
            .collect();
        let status = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "status": {"artifact": before.artifact, "conditions": ready},
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await?;
        Ok(())
    }

    async fn write_status(
        &self,
        s: &ExternalSource,
        status: &ExternalSourceStatus,
        outcome: &Outcome,
    ) -> Result<()> {
        let api: Api<ExternalSource> =
            Api::namespaced(self.client.clone(), &s.namespace().unwrap_or_default());
        let generation = s.meta().generation;
        let next = ExternalSourceStatus {
            conditions: conditions::after(&status.conditions, outcome, generation, &now()),
            observed_generation: generation,
            ..status.clone()
        };
        let patch = json!({"apiVersion": API_VERSION, "kind": "ExternalSource", "status": next});
        api.patch_status(
            &s.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }

    /// The source is going: its stored artifacts with it (the ExternalArtifact is owned by
    /// it, and deleted here too in case owner references are not collected).
    pub(super) async fn cleanup(&self, s: &ExternalSource) -> Result<Action> {
        let (name, ns) = (s.name_any(), s.namespace().unwrap_or_default());
        self.storage_op("delete", async {
            for (key, _) in self.storage.list(&artifact::directory(&ns, &name)).await? {
                self.storage.delete(&key).await?;
            }
            Ok(())
        })
        .await?;
        let api: Api<ExternalArtifact> = Api::namespaced(self.client.clone(), &ns);
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!("artifacts removed with their source");
        Ok(Action::await_change())
    }
}

fn current_path(s: &ExternalSource) -> Option<&str> {
    s.status
        .as_ref()?
        .artifact
        .as_ref()
        .map(|a| a.path.as_str())
}
