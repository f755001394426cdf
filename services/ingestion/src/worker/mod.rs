//! The workers: claim due tasks from the queue and run them, a bounded number at a time.
//! Each task's work and its removal from the queue commit together; a transient failure puts
//! it back with a growing delay, and one that keeps failing is recorded as the file's (or the
//! manifest's) failure.

mod check;
mod file;
mod summary;
mod upload;

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    domain::polling::Rules,
    objects::Objects,
    store::{
        providers,
        queue::{self, Job, Task},
    },
};

/// Why a task did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Worth another try (database or object store trouble).
    #[error("{0:#}")]
    Transient(anyhow::Error),
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(e.into())
    }
}

impl From<object_store::Error> for TaskError {
    fn from(e: object_store::Error) -> Self {
        Self::Transient(e.into())
    }
}

/// What the workers share.
pub struct Worker {
    pub db: PgPool,
    pub objects: Objects,
    pub rules: Rules,
    pub lease: Duration,
    pub max_attempts: i32,
    pub retry_base: Duration,
    /// Rung when tasks are queued.
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Runs up to `workers` tasks at a time until `stop`; tasks in progress finish first.
    pub async fn run(self: Arc<Self>, workers: usize, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(workers));
        let mut running = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            match queue::claim(&self.db, self.lease).await {
                Ok(Some(task)) => {
                    let worker = self.clone();
                    running.spawn(async move {
                        worker.execute(task).await;
                        drop(permit);
                        // What it committed may have queued more (a summary after the last file).
                        worker.wake.notify_one();
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim a task"),
            }
            drop(permit);
            while running.try_join_next().is_some() {}
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    async fn execute(&self, task: Task) {
        let span =
            tracing::info_span!("task", id = task.id, job = ?task.job, attempt = task.attempts);
        let started = std::time::Instant::now();
        let kind = match &task.job {
            Job::Check { .. } => "check",
            Job::File { .. } => "file",
            Job::Summary { .. } => "summary",
            Job::Upload { .. } => "upload",
        };
        // The lease is renewed while the task runs, so only a dead worker's task is taken over.
        let renewing = {
            let (db, id, lease) = (self.db.clone(), task.id, self.lease);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if let Err(e) = queue::renew(&db, id, lease).await {
                        tracing::warn!(error = %e, task = id, "cannot renew the lease");
                    }
                }
            })
        };
        let result = self.dispatch(&task).instrument(span.clone()).await;
        renewing.abort();
        metrics::histogram!("ingestion_processing_seconds", "task" => kind)
            .record(started.elapsed().as_secs_f64());
        let Err(TaskError::Transient(error)) = result else {
            return;
        };
        let _enter = span.enter();
        if task.attempts < self.max_attempts {
            let delay = self
                .retry_base
                .saturating_mul(1 << task.attempts.clamp(0, 10))
                .min(Duration::from_secs(600));
            tracing::warn!(
                error = format!("{error:#}"),
                ?delay,
                "task failed; retrying"
            );
            if let Err(e) = queue::retry(&self.db, task.id, delay, &format!("{error:#}")).await {
                tracing::error!(error = %e, "cannot put the task back; its lease will expire");
            }
            return;
        }
        tracing::error!(
            error = format!("{error:#}"),
            "task failed too often; giving up"
        );
        metrics::counter!("ingestion_failures_total", "task" => kind).increment(1);
        if let Err(e) = self.give_up(&task, &format!("{error:#}")).await {
            tracing::error!(error = %e, "cannot record the failure");
        }
    }

    async fn dispatch(&self, task: &Task) -> Result<(), TaskError> {
        match &task.job {
            Job::Check { provider } => check::run(self, task, *provider).await,
            Job::File { schema, status_id } => file::run(self, task, schema, *status_id).await,
            Job::Summary {
                schema,
                manifest_id,
            } => summary::run(self, task, schema, *manifest_id).await,
            Job::Upload { request_id } => upload::run(self, task, request_id).await,
        }
    }

    /// Records why a task gave up and removes it. The provider is marked failed, so the next
    /// poll checks it again instead of taking it for one still processing (an upload is tried
    /// again when the operator sends its next payload).
    async fn give_up(&self, task: &Task, error: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let provider = match &task.job {
            Job::File { schema, status_id } => {
                file::record_failure(&mut tx, schema, *status_id, "processing", error).await?
            }
            Job::Summary {
                schema,
                manifest_id,
            } => summary::record_failure(&mut tx, schema, *manifest_id, error).await?,
            Job::Upload { request_id } => {
                crate::store::uploads::set_state(&mut tx, request_id, "failed", Some(error))
                    .await?;
                None
            }
            Job::Check { provider } => Some(*provider),
        };
        if let Some(provider) = provider {
            providers::mark_failed(&mut *tx, provider, error).await?;
        }
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await
    }

    /// Queues `jobs` in the caller's transaction; the dispatcher looks again once a task ends.
    async fn enqueue_all(
        &self,
        conn: &mut sqlx::PgConnection,
        jobs: &[Job],
    ) -> Result<(), sqlx::Error> {
        for job in jobs {
            queue::enqueue(conn, job).await?;
        }
        Ok(())
    }
}
