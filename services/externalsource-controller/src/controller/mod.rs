//! The controller loop (kube-runtime's `Controller`): ExternalSources watched, their
//! ExternalArtifacts owned; the finalizer is the only top-level action; backoff after failures
//! is kept in memory, not in the objects.

mod reconcile;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use keel_service::Shutdown;
use kube::{
    Api, ResourceExt as _,
    runtime::{
        Controller,
        controller::{self, Action},
        events::{Recorder, Reporter},
        finalizer::{Event, finalizer},
        watcher,
    },
};
use tracing::Instrument as _;

pub use reconcile::interval;

use crate::{
    crd::{ExternalArtifact, ExternalSource},
    domain::policy,
    error::{Class, Error, Result},
    generator::Factory,
    hooks::Runner,
    storage::Storage,
};

pub const FINALIZER: &str = "source.flux.oddkin.co/finalizer";
/// The field manager of every write.
pub const MANAGER: &str = "externalsource-controller";

pub struct Context {
    pub client: kube::Client,
    pub factory: Factory,
    pub runner: Runner,
    pub storage: Storage,
    /// Artifacts kept per source.
    pub keep: usize,
    /// Publishes Kubernetes Events about the sources (new artifacts, failures).
    pub recorder: Recorder,
    /// Failures in a row per source (namespace, name), for the backoff.
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        factory: Factory,
        runner: Runner,
        storage: Storage,
        keep: usize,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            factory,
            runner,
            storage,
            keep: keep.max(1),
            failures: Mutex::default(),
        }
    }

    fn key(s: &ExternalSource) -> (String, String) {
        (s.namespace().unwrap_or_default(), s.name_any())
    }
}

/// One reconciliation, under the finalizer.
pub async fn reconcile(s: Arc<ExternalSource>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = Context::key(&s);
    let span = tracing::info_span!("reconcile", namespace = %key.0, name = %key.1);
    metrics::gauge!("externalsource_active_reconciliations").increment(1.0);
    let api: Api<ExternalSource> = Api::namespaced(ctx.client.clone(), &key.0);
    let result = finalizer(&api, FINALIZER, s, |event| async {
        match event {
            Event::Apply(s) => ctx.apply(&s).await,
            Event::Cleanup(s) => ctx.cleanup(&s).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    metrics::gauge!("externalsource_active_reconciliations").decrement(1.0);
    let label = match &result {
        Ok(_) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&key);
            }
            "success"
        }
        Err(e) => e.metric_label(),
    };
    metrics::counter!("externalsource_reconciliation_total", "result" => label).increment(1);
    metrics::histogram!("externalsource_reconciliation_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    result
}

/// After a failure: transient ones back off exponentially (1 s to 5 min, jittered), others
/// are looked at again at the source's interval (a Secret may appear, a whitelist change).
pub fn error_policy(s: Arc<ExternalSource>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(namespace = ?s.namespace(), name = %s.name_any(), error = %e, "reconciliation failed");
    if e.class() != Class::Transient {
        return Action::requeue(interval(&s).unwrap_or(Duration::from_secs(300)));
    }
    let failures = ctx.failures.lock().map_or(1, |mut f| {
        let n = f.entry(Context::key(&s)).or_insert(0);
        *n += 1;
        *n
    });
    Action::requeue(policy::backoff(failures))
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, concurrency: u16, shutdown: Shutdown) {
    let sources = Api::<ExternalSource>::all(ctx.client.clone());
    let artifacts = Api::<ExternalArtifact>::all(ctx.client.clone());
    Controller::new(sources, watcher::Config::default())
        .owns(artifacts, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(async move { shutdown.triggered().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "reconcile outcome");
            }
        })
        .await;
}
