//! One report file: streamed from its object into the tenant's line items with COPY, in one
//! transaction with the file's status and the task's removal; the last file of a manifest
//! queues its summary (Koku's chord).

use futures::StreamExt as _;
use object_store::{ObjectStoreExt as _, path::Path};
use sqlx::PgConnection;

use super::{TaskError, Worker};
use crate::{
    load::{self, Family, LoadError, Packing},
    store::{
        providers::{self, Provider},
        queue::{self, Job, Task},
        tenant::{self, FileRow, Tenant},
    },
};

pub async fn run(w: &Worker, task: &Task, schema: &str, status_id: i64) -> Result<(), TaskError> {
    let mut conn = w.db.acquire().await?;
    let Some(t) = Tenant::new(schema) else {
        return drop_task(&mut conn, task, "not a tenant schema").await;
    };
    let Some(file) = tenant::file(&mut conn, &t, status_id).await? else {
        return drop_task(&mut conn, task, "the file's manifest is gone").await;
    };
    if file.completed {
        return drop_task(&mut conn, task, "already loaded").await;
    }
    let (Some(provider), Some(key)) = (
        providers::find(&w.db, file.provider_id).await?,
        file.object_key.clone(),
    ) else {
        return drop_task(&mut conn, task, "the provider or the file is gone").await;
    };
    tenant::start_file(&mut conn, &t, &file).await?;
    tracing::info!(file = %file.report_name, provider = %provider.uuid, "loading");
    match load_file(w, &mut conn, &t, &provider, &file, &key, task).await {
        Ok(()) => Ok(()),
        Err(LoadError::Bad(reason)) => {
            tracing::warn!(file = %file.report_name, reason, "file failed");
            metrics::counter!("ingestion_files_processed_total", "outcome" => "failed")
                .increment(1);
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            tenant::fail_file(&mut tx, &t, &file, "processing", &reason).await?;
            queue::complete(&mut tx, task.id).await?;
            tx.commit().await?;
            providers::mark_failed(
                &w.db,
                provider.uuid,
                &format!("{}: {reason}", file.report_name),
            )
            .await?;
            Ok(())
        }
        Err(LoadError::Storage(e)) => Err(TaskError::Transient(e.into())),
        Err(LoadError::Database(e)) => Err(TaskError::Transient(e.into())),
    }
}

async fn load_file(
    w: &Worker,
    conn: &mut PgConnection,
    t: &Tenant,
    provider: &Provider,
    file: &FileRow,
    key: &str,
    task: &Task,
) -> Result<(), LoadError> {
    let month = file.billing_period_start.date_naive();
    let (store, path, packing, family) = if provider.is_ocp() {
        let (payload, member) = key
            .rsplit_once('#')
            .ok_or_else(|| LoadError::Bad(format!("{key} names no member of a payload")))?;
        (
            w.objects.payloads(),
            payload.to_owned(),
            Packing::TarMember(member.to_owned()),
            Family::Ocp,
        )
    } else {
        let bucket = provider
            .data_source_str("bucket")
            .ok_or_else(|| LoadError::Bad("the billing source names no bucket".into()))?;
        let packing = if key.ends_with(".csv.gz") || key.ends_with(".gz") {
            Packing::Csv { gzip: true }
        } else if key.ends_with(".csv") {
            Packing::Csv { gzip: false }
        } else {
            return Err(LoadError::Bad(
                "only .csv and .csv.gz report files are read (Parquet CUR is not)".into(),
            ));
        };
        let store = w
            .objects
            .bucket(bucket, provider.data_source_str("bucket_region"))?;
        (store, key.to_owned(), packing, Family::Aws)
    };
    let got = match store.get(&Path::from(path.as_str())).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(LoadError::Bad(format!(
                "{path} is missing from the object store"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let etag = got.meta.e_tag.clone();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tenant::long_transaction(&mut tx).await?;
    let fixed_last = match family {
        Family::Aws => tenant::bill_id(&mut tx, t, provider.uuid, month).await?,
        Family::Ocp => {
            let cluster = file.cluster_id.as_deref().unwrap_or_default();
            tenant::report_period_id(&mut tx, t, provider.uuid, cluster, &provider.name, month)
                .await?
        }
    };
    let fixed = vec![
        file.manifest_id.to_string(),
        file.id.to_string(),
        provider.uuid.to_string(),
        fixed_last.to_string(),
    ];
    let stream = got.into_stream().boxed();
    let loaded = load::copy_report(&mut tx, t.schema(), stream, packing, family, fixed).await?;
    // Completions of a manifest's files take turns on its row, so the last one sees the others.
    tenant::lock_manifest(&mut tx, t, file.manifest_id).await?;
    let rows = loaded.rows.unwrap_or(0);
    let finished = tenant::finish_file(
        &mut tx,
        t,
        file.id,
        loaded.report_type.as_str(),
        rows as i64,
        etag.as_deref(),
    )
    .await?;
    if !finished {
        // Another worker loaded it while this one stalled past its lease: its rows stand.
        tx.rollback().await?;
        queue::complete(conn, task.id).await?;
        tracing::warn!(file = %file.report_name, "already loaded by another worker; rows rolled back");
        return Ok(());
    }
    let left = tenant::files_left(&mut tx, t, file.manifest_id).await?;
    if left <= 0 {
        let summary = Job::Summary {
            schema: t.schema().to_owned(),
            manifest_id: file.manifest_id,
        };
        w.enqueue_all(&mut tx, &[summary]).await?;
    }
    queue::complete(&mut tx, task.id).await?;
    tx.commit().await?;
    let report_type = loaded.report_type.as_str();
    match loaded.rows {
        Some(rows) => {
            metrics::counter!("ingestion_rows_loaded_total", "report_type" => report_type)
                .increment(rows);
            metrics::counter!("ingestion_files_processed_total", "outcome" => "loaded")
                .increment(1);
            tracing::info!(file = %file.report_name, report_type, rows, files_left = left, "file loaded");
        }
        None => {
            metrics::counter!("ingestion_files_processed_total", "outcome" => "not_processed")
                .increment(1);
            tracing::info!(file = %file.report_name, report_type, "file kept, type not processed");
        }
    }
    Ok(())
}

async fn drop_task(conn: &mut PgConnection, task: &Task, why: &str) -> Result<(), TaskError> {
    tracing::info!(why, "file task dropped");
    queue::complete(conn, task.id).await?;
    Ok(())
}

/// A file that kept failing for transient reasons; returns its provider, which must then be
/// marked failed so that the next poll checks it again.
pub async fn record_failure(
    conn: &mut PgConnection,
    schema: &str,
    status_id: i64,
    step: &str,
    reason: &str,
) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    let Some(t) = Tenant::new(schema) else {
        return Ok(None);
    };
    let Some(file) = tenant::file(conn, &t, status_id).await? else {
        return Ok(None);
    };
    tenant::fail_file(conn, &t, &file, step, reason).await?;
    Ok(Some(file.provider_id))
}
