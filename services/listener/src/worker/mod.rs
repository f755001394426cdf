//! The workers: claim queued operations, fetch what sources-api holds for the source, decide
//! (`domain::state::plan`) and carry the decision out: build, update or remove the provider,
//! and report the availability status when it changed. HTTP calls happen here, never on the
//! consuming task; a failing source only delays itself.

mod error;
mod fetch;
mod operation;
mod save;
mod tenant;

use std::{collections::HashMap, sync::Arc, time::Duration};

use keel_crypto::SecretBox;
use sqlx::PgPool;
use tokio::{
    sync::{Notify, RwLock, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use self::error::OpError;
pub use self::tenant::Tenants;
use crate::{
    sources_client::{Caller, SourcesClient},
    store::{self, Claimed, SourceRow},
};

/// Retry policy of the work queue.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// Failures that will not heal before an operation is parked.
    pub max_attempts: i32,
    /// How long a claim lasts before another worker may take the operation over.
    pub lease: Duration,
}

impl RetryPolicy {
    /// Exponential: base, 2·base, 4·base, … up to `max`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max)
    }
}

/// Everything a worker needs.
pub struct Worker {
    pub db: PgPool,
    /// Claims and completions only: their commits do not wait for the WAL flush
    /// ([`keel_db::connect_unflushed`]). A crash that loses one only runs the operation again,
    /// and every operation is safe to repeat.
    pub queue: PgPool,
    pub client: SourcesClient,
    pub secrets: SecretBox,
    pub cost_type_id: i64,
    pub retry: RetryPolicy,
    /// Woken when the consumer queues an operation.
    pub wake: Arc<Notify>,
    /// Source type names by id (they never change).
    pub type_names: RwLock<HashMap<i64, Option<String>>>,
    /// The tenants of the orgs seen, each made by one operation at a time.
    pub tenants: Tenants,
    /// At most [`tenants_at_once`] tenants are made at a time (clones are serialised in the
    /// database anyway): the operations of other new orgs wait for a turn a moment, then give
    /// way, so a burst of new orgs neither takes every worker nor every pooled connection.
    pub tenant_turns: tokio::sync::Semaphore,
}

/// Tenants made at the same time with a pool of `pool_size` connections: taking a spare is a
/// rename, which runs alongside others, so a burst of new orgs is served together (4 at a
/// time put the last of 50 new orgs' first sources 1.7–2.1 s behind, 16 at a time 0.7 s);
/// but a maker waiting for a clone holds its connection, so they never hold more than half.
pub fn tenants_at_once(pool_size: u32) -> usize {
    (pool_size as usize / 2).clamp(1, 16)
}

impl Worker {
    /// Runs operations until `shutdown`, at most `concurrency` at a time: one loop claims as
    /// many due operations as there are free slots (with their sync rows, in one statement)
    /// and runs each in a task of its own.
    pub async fn run(self: Arc<Self>, concurrency: usize, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running = JoinSet::new();
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            // Only this loop takes slots: those free now stay free until it takes them.
            let free = 1 + slots.available_permits();
            let claimed = match store::claim(&self.queue, free as i64, self.retry.lease)
                .instrument(tracing::info_span!("claim"))
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim operations");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(first);
                self.idle(&shutdown).await;
                continue;
            }
            let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| {
                slots.clone().try_acquire_owned().ok()
            }));
            for claimed in claimed {
                let permit = permits.next();
                let (worker, stop) = (self.clone(), shutdown.clone());
                running.spawn(async move {
                    worker.execute(claimed, &stop).await;
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    /// Waits for a wake-up from the consumer, the next due operation, or at most a second.
    async fn idle(&self, shutdown: &CancellationToken) {
        let wake = self.wake.notified();
        let mut wait = Duration::from_secs(1);
        let due = store::next_due(&self.db).instrument(tracing::info_span!("idle"));
        if let Ok(Some(due)) = due.await {
            let until = (due - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(5)));
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = wake => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn execute(&self, claimed: Claimed, shutdown: &CancellationToken) {
        let Claimed { claim, source } = claimed;
        let claim = &claim;
        let span = tracing::info_span!("operation", source_id = claim.source_id, kind = %claim.kind, attempt = claim.attempts);
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            outcome = self.reconcile(claim, source).instrument(span.clone()) => outcome,
            // Shutdown gives the claim back untouched; the operation runs again later.
            _ = shutdown.cancelled() => {
                if let Ok(mut conn) = self.queue.acquire().await {
                    let _ = store::release(&mut conn, claim.source_id).await;
                }
                return;
            }
        };
        let _enter = span.enter();
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("listener_operation_seconds", "operation" => claim.kind.clone())
            .record(seconds);
        tracing::debug!(
            elapsed_ms = seconds * 1000.0,
            ok = outcome.is_ok(),
            "operation ran"
        );
        match outcome {
            Ok(result) => {
                metrics::counter!("provider_operations_total", "operation" => claim.kind.clone(), "result" => result)
                    .increment(1);
            }
            Err(e) => {
                let error = e.to_string();
                let backoff = self.retry.backoff(claim.attempts);
                let lasting = !e.heals();
                let parked = store::fail(
                    &self.db,
                    claim,
                    &error,
                    backoff,
                    lasting,
                    self.retry.max_attempts,
                )
                .await
                .unwrap_or(false);
                let result = if parked { "parked" } else { "retry" };
                metrics::counter!("provider_operations_total", "operation" => claim.kind.clone(), "result" => result)
                    .increment(1);
                if parked {
                    tracing::error!(%error, attempts = claim.attempts, "operation parked after its last attempt");
                } else {
                    tracing::warn!(%error, lasting, retry_in_ms = backoff.as_millis() as u64, "operation failed; will retry");
                }
            }
        }
    }
}

fn caller(row: &SourceRow) -> Caller<'_> {
    Caller {
        identity: &row.auth_header,
        account_id: row.account_id.as_deref(),
        org_id: Some(&row.org_id),
    }
}

fn provider_uuid(row: &SourceRow) -> Option<Uuid> {
    row.koku_uuid
        .as_deref()
        .and_then(|u| Uuid::parse_str(u).ok())
}

#[cfg(test)]
mod tests {
    use super::tenants_at_once;

    #[test]
    fn tenant_makers_hold_at_most_half_the_pool_and_never_none() {
        for (pool, makers) in [
            (1, 1),
            (2, 1),
            (5, 2),
            (20, 10),
            (32, 16),
            (40, 16),
            (200, 16),
        ] {
            assert_eq!(tenants_at_once(pool), makers, "a pool of {pool}");
        }
    }
}
