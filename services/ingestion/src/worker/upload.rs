//! An uploaded OpenShift payload: matched to the org's provider of its cluster, its manifest
//! recorded (with a status row for every file it lists), and the files it holds queued. A
//! payload whose cluster has no provider yet waits; it is queued again once one exists.

use super::{TaskError, Worker};
use crate::{
    domain::manifest::OcpManifest,
    store::{
        providers,
        queue::{self, Job, Task},
        tenant::{self, NewManifest, Tenant},
        uploads,
    },
};

pub async fn run(w: &Worker, task: &Task, request_id: &str) -> Result<(), TaskError> {
    let mut tx = w.db.begin().await?;
    let upload = uploads::find(&mut tx, request_id).await?;
    let Some(upload) = upload.filter(|u| u.state == "received" || u.state == "waiting") else {
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await?;
        return Ok(());
    };
    let Some(provider) = providers::find_ocp(&w.db, &upload.org_id, &upload.cluster_id).await?
    else {
        tracing::info!(request_id, cluster_id = %upload.cluster_id, "no provider for the cluster yet; the payload waits");
        uploads::set_state(
            &mut tx,
            request_id,
            "waiting",
            Some("no OpenShift provider of the org has this cluster id"),
        )
        .await?;
        queue::complete(&mut tx, task.id).await?;
        tx.commit().await?;
        return Ok(());
    };
    let manifest: OcpManifest = match serde_json::from_value(upload.manifest.0.clone()) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                tx,
                task,
                request_id,
                &format!("stored manifest unreadable: {e}"),
            )
            .await;
        }
    };
    let (Some(t), Some(month)) = (Tenant::new(&provider.schema_name), manifest.billing_month())
    else {
        return fail(
            tx,
            task,
            request_id,
            "the manifest has neither start nor date",
        )
        .await;
    };
    let row = tenant::upsert_manifest(
        &mut tx,
        &t,
        &NewManifest {
            provider: provider.uuid,
            assembly_id: &manifest.uuid,
            billing_month: month,
            num_total_files: manifest.files.len() as i32,
            export: manifest.export_time(),
            cluster_id: Some(&manifest.cluster_id),
            operator_version: manifest.version.as_deref(),
            operator_certified: manifest.certified,
            daily_reports: manifest.daily_reports.unwrap_or(false),
            report_start: manifest.start_time(),
            report_end: manifest.end_time(),
        },
    )
    .await?;
    tenant::ensure_report_period(
        &mut tx,
        &t,
        provider.uuid,
        &manifest.cluster_id,
        &provider.name,
        month,
    )
    .await?;
    let files: Vec<(String, Option<String>)> = manifest
        .files
        .iter()
        .map(|name| {
            let held = upload.files.contains(name);
            (
                name.clone(),
                held.then(|| format!("{}#{name}", upload.object_key)),
            )
        })
        .collect();
    let ids = tenant::register_files(&mut tx, &t, row.id, &files).await?;
    let schema = t.schema().to_owned();
    let mut jobs: Vec<Job> = ids
        .iter()
        .map(|&status_id| Job::File {
            schema: schema.clone(),
            status_id,
        })
        .collect();
    if jobs.is_empty()
        && row.completed_datetime.is_none()
        && tenant::files_left(&mut tx, &t, row.id).await? <= 0
    {
        jobs.push(Job::Summary {
            schema,
            manifest_id: row.id,
        });
    }
    w.enqueue_all(&mut tx, &jobs).await?;
    uploads::set_state(&mut tx, request_id, "queued", None).await?;
    queue::complete(&mut tx, task.id).await?;
    tx.commit().await?;
    tracing::info!(request_id, provider = %provider.uuid, files = ids.len(), "payload matched to its provider");
    Ok(())
}

async fn fail(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    task: &Task,
    request_id: &str,
    reason: &str,
) -> Result<(), TaskError> {
    tracing::warn!(request_id, reason, "payload failed");
    uploads::set_state(&mut tx, request_id, "failed", Some(reason)).await?;
    queue::complete(&mut tx, task.id).await?;
    tx.commit().await?;
    Ok(())
}
