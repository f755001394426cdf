//! The workers: claim a deployment owed work (Provisioning or Deleting) under a lease, do it
//! on its target, and record the new phase with its callback in one transaction. A deletion
//! asked for during a creation bumps the generation: the creation's result is then not
//! recorded, and the deletion runs next. Ready deployments are checked for drift
//! ([`observe`]).

mod observe;

use std::{sync::Arc, time::Duration};

use keel_crypto::SecretBox;
use keel_service::Shutdown;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::{
    domain::{drift, phase::Phase},
    drivers::{Credentials, DriverError, Drivers, Names},
    notify,
    store::{
        credentials,
        deployments::{self, Deployment, Outcome},
    },
};

pub struct Worker {
    pub db: PgPool,
    pub drivers: Drivers,
    pub secrets: Arc<SecretBox>,
    pub lease: Duration,
    pub per_namespace: u32,
    /// Transient failures before an operation is Failed.
    pub max_attempts: i32,
    /// How long a new resource may take to have every replica serving (a cluster's).
    pub ready_timeout: Duration,
    pub wake: Arc<Notify>,
    /// Wakes the callback delivery after a phase change.
    pub deliver: Arc<Notify>,
}

impl Worker {
    pub async fn run(self: Arc<Self>, workers: usize, shutdown: Shutdown) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < workers {
                match deployments::claim(&self.db, self.lease, self.per_namespace).await {
                    Ok(Some(d)) => {
                        let me = self.clone();
                        let span = tracing::info_span!("operation", deployment = %d.id, phase = d.phase().as_str(), attempt = d.attempts);
                        running.spawn(async move { me.operate(d).await }.instrument(span));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim an operation");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.triggered() => break,
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    async fn operate(&self, d: Deployment) {
        let started = std::time::Instant::now();
        let renewing = {
            let (db, id, lease) = (self.db.clone(), d.id.clone(), self.lease);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if let Err(e) = deployments::renew(&db, &id, lease).await {
                        tracing::warn!(error = %e, "cannot renew the lease");
                    }
                }
            })
        };
        let phase = d.phase();
        let result = match phase {
            Phase::Provisioning => self.provision(&d).await,
            _ => self.delete(&d).await,
        };
        renewing.abort();
        let kind = d.resource_type.clone();
        let outcome = match result {
            Ok(()) => "success",
            Err(e) => self.failed(&d, e).await,
        };
        if phase == Phase::Provisioning {
            metrics::counter!("broker_provision_requests_total", "resource_type" => kind.clone(), "status" => outcome).increment(1);
            metrics::histogram!("broker_provision_duration_seconds", "resource_type" => kind)
                .record(started.elapsed().as_secs_f64());
        }
        self.deliver.notify_one();
        self.wake.notify_one();
    }

    /// The deployment's credentials, made and sealed before anything is created.
    async fn credentials(
        &self,
        d: &Deployment,
        names: &Names,
    ) -> Result<Credentials, OperationError> {
        let sealed = credentials::ensure(&self.db, &d.id, || {
            let fresh = self.drivers.new_credentials(&d.target, names, &d.spec.0);
            self.secrets.seal(
                &serde_json::to_string(&fresh).expect("credentials serialize"),
                d.id.as_bytes(),
            )
        })
        .await?;
        serde_json::from_str(
            &self
                .secrets
                .open(&sealed, d.id.as_bytes())
                .map_err(OperationError::Internal)?,
        )
        .map_err(|e| OperationError::Internal(e.into()))
    }

    async fn provision(&self, d: &Deployment) -> Result<(), OperationError> {
        let names = Names::of(&d.id, &d.namespace, &d.resource_name);
        let creds = self.credentials(d, &names).await?;
        if !deployments::still_owed(&self.db, &d.id, d.generation).await? {
            return self.superseded(d).await;
        }
        let (host, port) = self
            .drivers
            .apply(&d.target, &names, &d.spec.0, &creds)
            .await?;
        let Some(observed) = self.until_ready(d, &names).await? else {
            return self.superseded(d).await;
        };
        let actual = actual_spec(d, &observed);
        let secret = format!("{}-credentials", d.resource_name);
        let message = format!("{} provisioned and healthy", capitalized(&d.resource_type));
        let mut tx = self.db.begin().await?;
        let done = deployments::finish(
            &mut tx,
            &d.id,
            d.generation,
            Phase::Ready,
            &Outcome {
                message: &message,
                health: Some("Healthy"),
                endpoint: Some(&host),
                port: Some(i32::from(port)),
                connection_secret: Some(&secret),
                actual: Some(actual),
            },
        )
        .await?;
        match done {
            Some(row) => notify::queue(&mut tx, &row, None).await?,
            None => {
                tx.rollback().await?;
                return self.superseded(d).await;
            }
        }
        tx.commit().await?;
        tracing::info!(target = %d.target, "provisioned");
        Ok(())
    }

    /// Observes the resource until it serves (shared servers do at once; a cluster's replicas
    /// take their time); `None` when a newer request took the deployment over meanwhile.
    async fn until_ready(
        &self,
        d: &Deployment,
        names: &Names,
    ) -> Result<Option<drift::Observed>, OperationError> {
        let started = std::time::Instant::now();
        loop {
            let observed = self.drivers.observe(&d.target, names, &d.spec.0).await?;
            let Some(waiting) = &observed.waiting else {
                return Ok(Some(observed));
            };
            if !deployments::still_owed(&self.db, &d.id, d.generation).await? {
                return Ok(None);
            }
            if started.elapsed() > self.ready_timeout {
                return Err(DriverError::Transient(format!(
                    "not ready after {} s: {waiting}",
                    self.ready_timeout.as_secs()
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn delete(&self, d: &Deployment) -> Result<(), OperationError> {
        let names = Names::of(&d.id, &d.namespace, &d.resource_name);
        self.drivers.delete(&d.target, &names, &d.spec.0).await?;
        let mut tx = self.db.begin().await?;
        let message = format!("{} deprovisioned", capitalized(&d.resource_type));
        let done = deployments::finish(
            &mut tx,
            &d.id,
            d.generation,
            Phase::Deleted,
            &Outcome {
                message: &message,
                ..Outcome::default()
            },
        )
        .await?;
        if let Some(row) = done {
            credentials::forget(&mut tx, &d.id).await?;
            notify::queue(&mut tx, &row, None).await?;
        }
        tx.commit().await?;
        tracing::info!("deprovisioned");
        Ok(())
    }

    /// A newer request took over (a deletion during a creation): hand the lease back now.
    async fn superseded(&self, d: &Deployment) -> Result<(), OperationError> {
        tracing::info!("superseded by a newer request; handing over");
        deployments::release(&self.db, &d.id, Duration::ZERO, &d.message).await?;
        Ok(())
    }

    /// Records a failure: retried later while transient and attempts remain, else Failed
    /// with its callback. Returns the metrics' status.
    async fn failed(&self, d: &Deployment, e: OperationError) -> &'static str {
        let (reason, retry) = match &e {
            OperationError::Driver(DriverError::Refused(r)) => (r.clone(), false),
            OperationError::Driver(DriverError::Transient(r)) => (r.clone(), true),
            OperationError::Database(e) => (e.to_string(), true),
            OperationError::Internal(e) => (format!("{e:#}"), false),
        };
        if retry && d.attempts < self.max_attempts {
            let delay = Duration::from_millis(500).saturating_mul(1 << d.attempts.clamp(0, 8));
            tracing::warn!(reason, ?delay, "operation failed; retrying");
            if let Err(e) = deployments::release(&self.db, &d.id, delay, &d.message).await {
                tracing::warn!(error = %e, "cannot put the operation back; its lease will expire");
            }
            return "retried";
        }
        tracing::error!(reason, "operation failed");
        let message = match d.phase() {
            Phase::Provisioning => format!("Provisioning failed: {reason}"),
            _ => format!("Deprovisioning failed: {reason}"),
        };
        let recorded = async {
            let mut tx = self.db.begin().await?;
            if let Some(row) = deployments::finish(
                &mut tx,
                &d.id,
                d.generation,
                Phase::Failed,
                &Outcome {
                    message: &message,
                    health: Some("Unhealthy"),
                    ..Outcome::default()
                },
            )
            .await?
            {
                notify::queue(&mut tx, &row, Some(&reason)).await?;
            }
            tx.commit().await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(error = %e, "cannot record the failure; its lease will expire");
        }
        "failed"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

/// The seed's `actualSpec`: the engine, the version the server reports, the size.
pub fn actual_spec(d: &Deployment, o: &drift::Observed) -> serde_json::Value {
    serde_json::json!({
        "engine": d.spec.0.engine.as_str(),
        "version": o.version.clone().unwrap_or_else(|| d.spec.0.version.clone()),
        "size": d.spec.0.size.as_str(),
        "replicas": o.replicas,
        "connectionLimit": o.connection_limit,
        "partitions": o.partitions,
        "resourceUsage": o.usage,
    })
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
