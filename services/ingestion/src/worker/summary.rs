//! A manifest's summary, once all its files are loaded: the daily summaries of the days it
//! touched are rebuilt, the manifest completes, and the provider is set up with its data
//! updated, in one transaction with the task's removal.

use sqlx::PgConnection;

use super::{TaskError, Worker};
use crate::store::{
    providers,
    queue::{self, Task},
    summary,
    tenant::{self, Tenant},
};

pub async fn run(w: &Worker, task: &Task, schema: &str, manifest_id: i64) -> Result<(), TaskError> {
    let started = std::time::Instant::now();
    let mut tx = w.db.begin().await?;
    tenant::long_transaction(&mut tx).await?;
    let Some(t) = Tenant::new(schema) else {
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await?;
        return Ok(());
    };
    let manifest = tenant::lock_manifest(&mut tx, &t, manifest_id).await?;
    let provider = match &manifest {
        Some(m) => providers::find(&w.db, m.provider_id).await?,
        None => None,
    };
    let (Some(manifest), Some(provider)) = (manifest, provider) else {
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await?;
        return Ok(());
    };
    if tenant::files_left(&mut tx, &t, manifest_id).await? > 0 {
        // Queued too early (a file was re-queued since): the last file queues it again.
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await?;
        return Ok(());
    }
    let days = if provider.is_ocp() {
        summary::ocp(&mut tx, &t, &manifest, &provider.name).await?
    } else {
        let month = manifest.billing_period_start_datetime.date_naive();
        let bill = tenant::bill_id(&mut tx, &t, provider.uuid, month).await?;
        summary::aws(&mut tx, &t, &manifest, bill).await?
    };
    summary::complete_manifest(&mut tx, &t, manifest_id).await?;
    providers::mark_updated(&mut tx, provider.uuid).await?;
    queue::complete(&mut tx, task.id).await?;
    tx.commit().await?;
    metrics::histogram!("ingestion_summary_seconds").record(started.elapsed().as_secs_f64());
    tracing::info!(
        provider = %provider.uuid,
        assembly_id = %manifest.assembly_id,
        days = days.len(),
        seconds = started.elapsed().as_secs_f64(),
        "summary done"
    );
    Ok(())
}

/// A summary that kept failing: its manifest says why. Returns the manifest's provider.
pub async fn record_failure(
    conn: &mut PgConnection,
    schema: &str,
    manifest_id: i64,
    reason: &str,
) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    let Some(t) = Tenant::new(schema) else {
        return Ok(None);
    };
    tenant::fail_summary(conn, &t, manifest_id, reason).await
}
