//! An AWS provider's report check (Koku's `Orchestrator.prepare` for one provider): find the
//! report in the bucket, read each month's manifest, record it and queue its unloaded files.

use chrono::Utc;
use object_store::{ObjectStore, ObjectStoreExt as _, path::Path};
use uuid::Uuid;

use super::{TaskError, Worker};
use crate::{
    domain::{
        manifest::{AwsManifest, aws_manifest_key, is_billing_range},
        polling,
    },
    store::{
        providers::{self, Provider},
        queue::{self, Job, Task},
        tenant::{self, NewManifest, Tenant},
    },
};

/// How deep below the prefix a report's directory is looked for.
const SEARCH_DEPTH: usize = 3;

pub async fn run(w: &Worker, task: &Task, uuid: Uuid) -> Result<(), TaskError> {
    let provider = providers::find(&w.db, uuid).await?;
    let Some(provider) = provider.filter(|p| p.is_aws() && p.active && !p.paused) else {
        let mut conn = w.db.acquire().await?;
        queue::complete(&mut conn, task.id).await?;
        return Ok(());
    };
    providers::mark_polled(&w.db, &[uuid]).await?;
    let outcome = check(w, &provider).await;
    if let Err(Failure(reason)) = &outcome {
        tracing::warn!(provider = %uuid, reason, "report check failed");
        providers::mark_failed(&w.db, uuid, reason).await?;
        metrics::counter!("ingestion_failures_total", "task" => "check").increment(1);
    }
    let mut conn = w.db.acquire().await?;
    queue::complete(&mut conn, task.id).await?;
    Ok(())
}

/// Why a check found nothing to load (recorded for the provider, not retried until the next poll).
struct Failure(String);

async fn check(w: &Worker, p: &Provider) -> Result<(), Failure> {
    let bucket = p
        .data_source_str("bucket")
        .ok_or_else(|| Failure("the billing source names no bucket".into()))?;
    let t = Tenant::new(&p.schema_name).ok_or_else(|| Failure("not a tenant schema".into()))?;
    let store = w
        .objects
        .bucket(bucket, p.data_source_str("bucket_region"))
        .map_err(|e| Failure(format!("bucket {bucket}: {e}")))?;
    let (prefix, name) = locate(
        &*store,
        p.data_source_str("report_prefix"),
        p.data_source_str("report_name"),
    )
    .await
    .map_err(|e| Failure(format!("cannot list bucket {bucket}: {e}")))?
    .ok_or_else(|| Failure(format!("no Cost and Usage Report found in bucket {bucket}")))?;
    let months = polling::months(Utc::now().date_naive(), p.setup_complete, &w.rules);
    let mut queued = 0;
    let mut summaries = 0;
    for month in months {
        let key = aws_manifest_key(&prefix, &name, month);
        let got = match store.get(&Path::from(key.as_str())).await {
            Ok(got) => got,
            // Koku skips a month without a manifest.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(Failure(format!("cannot read {key}: {e}"))),
        };
        let export = got.meta.last_modified;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| Failure(format!("cannot read {key}: {e}")))?;
        let manifest = AwsManifest::parse(&bytes).map_err(|e| Failure(format!("{key}: {e}")))?;
        let (files, summary) = record(w, &t, p, &manifest, export)
            .await
            .map_err(|e| Failure(format!("cannot record {key}: {e}")))?;
        queued += files;
        summaries += usize::from(summary);
    }
    if queued == 0 && summaries == 0 {
        // Nothing new: the data is current as of now, so the provider does not look "still
        // processing" to the next poll (Koku's starvation, koku#5181).
        providers::mark_current(&w.db, p.uuid)
            .await
            .map_err(|e| Failure(format!("cannot record the check: {e}")))?;
    }
    tracing::info!(provider = %p.uuid, report = %name, files = queued, "report check done");
    Ok(())
}

/// Records the manifest and queues its files not loaded yet (or its summary, when they all
/// are); a manifest already summarized is left alone. Returns the files and whether a summary
/// was queued.
async fn record(
    w: &Worker,
    t: &Tenant,
    p: &Provider,
    m: &AwsManifest,
    export: chrono::DateTime<Utc>,
) -> Result<(usize, bool), sqlx::Error> {
    let mut tx = w.db.begin().await?;
    let row = tenant::upsert_manifest(
        &mut tx,
        t,
        &NewManifest {
            provider: p.uuid,
            assembly_id: &m.assembly_id,
            billing_month: m.billing_period_start,
            num_total_files: m.report_keys.len() as i32,
            export: Some(export),
            ..NewManifest::default()
        },
    )
    .await?;
    if row.completed_datetime.is_some() && row.failure.is_none() {
        tx.commit().await?;
        return Ok((0, false));
    }
    tenant::ensure_bill(
        &mut tx,
        t,
        p.uuid,
        m.billing_period_start,
        m.account.as_deref(),
    )
    .await?;
    let files: Vec<(String, Option<String>)> = m
        .report_keys
        .iter()
        .map(|k| {
            let base = k.rsplit('/').next().unwrap_or(k);
            (
                format!("{}-{base}", m.assembly_id),
                Some(k.trim_start_matches('/').to_owned()),
            )
        })
        .collect();
    // Every unfinished file of the manifest, new ones included.
    let unfinished = tenant::register_files(&mut tx, t, row.id, &files).await?;
    let schema = t.schema().to_owned();
    let mut jobs: Vec<Job> = unfinished
        .iter()
        .map(|&status_id| Job::File {
            schema: schema.clone(),
            status_id,
        })
        .collect();
    if jobs.is_empty() {
        jobs.push(Job::Summary {
            schema,
            manifest_id: row.id,
        });
    }
    let queued = unfinished.len();
    w.enqueue_all(&mut tx, &jobs).await?;
    tx.commit().await?;
    Ok((queued, queued == 0))
}

/// The report's prefix and name: the billing source's when it names both, else the first
/// directory below the prefix that holds billing-range directories (`20261101-20261201`).
async fn locate(
    store: &dyn ObjectStore,
    prefix: Option<&str>,
    name: Option<&str>,
) -> object_store::Result<Option<(String, String)>> {
    let prefix = prefix.unwrap_or_default().trim_matches('/').to_owned();
    if let Some(name) = name
        && has_billing_ranges(store, &join(&prefix, name)).await?
    {
        return Ok(Some((prefix, name.to_owned())));
    }
    let mut level = vec![prefix];
    for _ in 0..SEARCH_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            let at = (!dir.is_empty()).then(|| Path::from(dir.as_str()));
            let listed = store.list_with_delimiter(at.as_ref()).await?;
            let mut children: Vec<String> = listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect();
            children.sort();
            for child in children {
                let path = join(&dir, &child);
                if name.is_none_or(|n| n == child) && has_billing_ranges(store, &path).await? {
                    return Ok(Some((dir, child)));
                }
                next.push(path);
            }
        }
        level = next;
    }
    Ok(None)
}

async fn has_billing_ranges(store: &dyn ObjectStore, dir: &str) -> object_store::Result<bool> {
    let listed = store.list_with_delimiter(Some(&Path::from(dir))).await?;
    Ok(listed
        .common_prefixes
        .iter()
        .any(|p| p.filename().is_some_and(is_billing_range)))
}

fn join(dir: &str, child: &str) -> String {
    if dir.is_empty() {
        child.to_owned()
    } else {
        format!("{dir}/{child}")
    }
}
