//! What puts work on the queue besides uploads: a new provider (the listener's insert notifies
//! `keel_provider_created` on commit), a sweep for new providers and waiting uploads in case a
//! notification was missed, and the periodic poll by Koku's rules.

use std::{sync::Arc, time::Duration};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::polling::{self, Rules},
    store::{
        providers,
        queue::{self, Job},
        uploads,
    },
};

/// The channel the listener notifies once a provider it created has committed.
pub const PROVIDER_CREATED: &str = keel_domain::PROVIDER_CREATED_CHANNEL;

/// Queues a check of every new non-OpenShift provider and every upload whose provider now
/// exists.
pub async fn sweep(db: &PgPool, wake: &Notify) -> anyhow::Result<()> {
    let new = providers::never_polled(db).await?;
    let ready = uploads::claimable(db).await?;
    if new.is_empty() && ready.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for provider in &new {
        queue::enqueue(
            &mut tx,
            &Job::Check {
                provider: *provider,
            },
        )
        .await?;
    }
    for request_id in ready {
        queue::enqueue(&mut tx, &Job::Upload { request_id }).await?;
    }
    tx.commit().await?;
    wake.notify_one();
    Ok(())
}

/// One periodic poll: the batch's providers are marked polled and those not still processing
/// are checked.
pub async fn poll(db: &PgPool, rules: &Rules, wake: &Notify) -> anyhow::Result<()> {
    let candidates = providers::poll_candidates(db).await?;
    let batch = polling::batch(&candidates, chrono::Utc::now(), rules);
    providers::mark_polled(db, &batch.polled).await?;
    let mut tx = db.begin().await?;
    for provider in &batch.checked {
        queue::enqueue(
            &mut tx,
            &Job::Check {
                provider: *provider,
            },
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        eligible = candidates.len(),
        polled = batch.polled.len(),
        checked = batch.checked.len(),
        "report check poll"
    );
    metrics::counter!("ingestion_polls_total").increment(1);
    wake.notify_one();
    Ok(())
}

/// Sweeps at once whenever the listener commits a provider; returns when the connection
/// fails (the caller reconnects) or `stop` fires.
pub async fn listen(
    db: PgPool,
    wake: Arc<Notify>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(&db).await?;
    listener.listen(PROVIDER_CREATED).await?;
    loop {
        let notification = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = listener.recv() => n?,
        };
        let provider = Uuid::parse_str(notification.payload()).ok();
        tracing::debug!(?provider, "provider created");
        // Debounce a burst of creates into one sweep.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while listener.next_buffered().is_some() {}
        if let Err(e) = sweep(&db, &wake).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "sweep after a new provider failed"
            );
        }
    }
}
