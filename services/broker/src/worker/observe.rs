//! The drift check: each Ready deployment is observed on its target once per interval and
//! compared with its desired spec. What was found shows in `/v1/resources` (driftDetected,
//! driftDetails, healthStatus, actualSpec, lastChecked) and unexpected drift is counted in
//! `broker_drift_detected_total`. Under the `repair` policy what can be put back is applied
//! again with the same credentials, holding the deployment's row, so a deprovision asked for
//! meanwhile waits and then deletes what the repair made.

use std::{collections::HashSet, sync::Arc, time::Duration};

use keel_service::Shutdown;
use tracing::Instrument as _;

use super::{OperationError, Worker, actual_spec, capitalized};
use crate::{
    domain::{
        drift::{self, Observed},
        phase::Phase,
        spec::DriftPolicy,
    },
    drivers::{self, Names},
    store::deployments::{self, Deployment},
};

/// Checks claimed per round.
const BATCH: i64 = 32;

impl Worker {
    /// Checks what is due until `shutdown`; a claimed check is stamped, so replicas share the
    /// work and a failed check waits for the next interval.
    pub async fn watch_drift(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        let pause = interval.min(Duration::from_secs(5));
        let mut counted = HashSet::new();
        loop {
            self.count_resources(&mut counted).await;
            if let Some((cluster, _)) = &self.drivers.kubernetes
                && let Err(e) = cluster.ping().await
            {
                tracing::warn!(error = %e, "the Kubernetes API does not answer");
            }
            let mut full = false;
            match deployments::claim_checks(&self.db, interval, BATCH).await {
                Ok(due) => {
                    full = due.len() as i64 == BATCH;
                    for d in &due {
                        let span = tracing::info_span!("drift_check", deployment = %d.id);
                        if let Err(e) = self.check(d).instrument(span).await {
                            tracing::warn!(deployment = %d.id, error = %e, "drift check failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim drift checks"),
            }
            tokio::select! {
                () = shutdown.triggered() => break,
                () = tokio::time::sleep(pause), if !full => {}
                () = std::future::ready(()), if full => {}
            }
        }
    }

    /// Sets `broker_resources_total{namespace,type,phase}`; a series counted before and now
    /// absent is set to 0 rather than left at its last value.
    async fn count_resources(&self, counted: &mut HashSet<(String, String, String)>) {
        let rows = match deployments::counts(&self.db).await {
            Ok(rows) => rows,
            Err(e) => return tracing::warn!(error = %e, "cannot count the resources"),
        };
        let mut now = HashSet::new();
        for (namespace, kind, phase, n) in rows {
            let key = (namespace, kind, phase);
            metrics::gauge!("broker_resources_total", "namespace" => key.0.clone(), "type" => key.1.clone(), "phase" => key.2.clone())
                .set(n as f64);
            now.insert(key);
        }
        for (namespace, kind, phase) in counted.difference(&now) {
            metrics::gauge!("broker_resources_total", "namespace" => namespace.clone(), "type" => kind.clone(), "phase" => phase.clone())
                .set(0.0);
        }
        *counted = now;
    }

    /// Observes one deployment and records what was found (and repaired).
    pub async fn check(&self, d: &Deployment) -> Result<(), OperationError> {
        let names = Names::of(&d.id, &d.namespace, &d.resource_name);
        let spec = &d.spec.0;
        let desired = drivers::desired(&d.target, spec);
        let observed = match self.drivers.observe(&d.target, &names, &d.spec.0).await {
            Ok(o) => o,
            Err(e) => {
                // Nothing is claimed about drift when the target cannot be asked.
                let actual = d.actual.as_ref().map(|a| a.0.clone()).unwrap_or_default();
                let message = format!("Cannot observe the resource: {e}");
                return self
                    .record(d, "Unhealthy", &message, &actual, &d.drift.0)
                    .await;
            }
        };
        let found = drift::compare(&desired, &observed);
        if found.unexpected {
            metrics::counter!("broker_drift_detected_total", "namespace" => d.namespace.clone(), "type" => d.resource_type.clone())
                .increment(1);
            tracing::warn!(details = ?found.details, policy = spec.drift_policy.as_str(), "drift detected");
        }
        if found.repairable && spec.drift_policy == DriftPolicy::Repair {
            let Some(after) = self.repair(d, &names).await? else {
                return Ok(());
            };
            let left = drift::compare(&desired, &after);
            metrics::counter!("broker_drift_repaired_total", "namespace" => d.namespace.clone(), "type" => d.resource_type.clone())
                .increment(1);
            // What the repair changed; what it cannot change (a patch release) stays reported.
            let repaired: Vec<&str> = found
                .details
                .iter()
                .filter(|d| !left.details.contains(d))
                .map(String::as_str)
                .collect();
            tracing::info!(?repaired, "drift repaired");
            let message = format!("Drift repaired: {}", repaired.join("; "));
            return self
                .record(
                    d,
                    left.health(),
                    &message,
                    &actual_spec(d, &after),
                    &left.details,
                )
                .await;
        }
        let message = if found.unexpected {
            format!("Drift detected: {}", found.details.join("; "))
        } else if let Some(waiting) = &found.waiting {
            format!("Not ready: {waiting}")
        } else {
            format!("{} provisioned and healthy", capitalized(&d.resource_type))
        };
        self.record(
            d,
            found.health(),
            &message,
            &actual_spec(d, &observed),
            &found.details,
        )
        .await
    }

    async fn record(
        &self,
        d: &Deployment,
        health: &str,
        message: &str,
        actual: &serde_json::Value,
        details: &[String],
    ) -> Result<(), OperationError> {
        deployments::observed(
            &self.db,
            &d.id,
            d.generation,
            health,
            message,
            actual,
            details,
        )
        .await?;
        Ok(())
    }

    /// Applies the desired spec again while holding the deployment's row; `None` when a newer
    /// request took the deployment over meanwhile.
    async fn repair(
        &self,
        d: &Deployment,
        names: &Names,
    ) -> Result<Option<Observed>, OperationError> {
        let creds = self.credentials(d, names).await?;
        let mut tx = self.db.begin().await?;
        match deployments::lock(&mut tx, &d.id).await? {
            Some(now) if now.phase() == Phase::Ready && now.generation == d.generation => {}
            _ => return Ok(None),
        }
        self.drivers
            .apply(&d.target, names, &d.spec.0, &creds)
            .await?;
        tx.commit().await?;
        Ok(Some(
            self.drivers.observe(&d.target, names, &d.spec.0).await?,
        ))
    }
}
