//! The outbox relay: publishes committed outbox rows to Kafka in transaction order, marks them
//! published only once the broker acknowledged them (`acks=all`), and when Kafka is down keeps
//! the rows and retries with backoff. Duplicates are possible (at-least-once), losses are not.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// What `/readiness` and `/metrics` show about the relay.
#[derive(Debug, Default)]
pub struct RelayStatus {
    pub published: AtomicU64,
    /// Unix seconds of the last successful publish or empty poll; 0 before the first.
    pub last_success: AtomicI64,
    /// Consecutive failed attempts (0 when healthy).
    pub failures: AtomicU64,
}

pub struct Relay {
    pub db: PgPool,
    pub outbox: Outbox,
    pub producer: FutureProducer,
    pub batch: i64,
    pub status: Arc<RelayStatus>,
}

const IDLE_POLL: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Relay {
    /// Runs until `shutdown`; returns after the batch in flight is settled.
    pub async fn run(self, shutdown: CancellationToken) {
        // One relay per outbox: replicas wait on a session advisory lock held for the run.
        let lock = loop {
            match self.acquire_lock().await {
                Ok(Some(conn)) => break conn,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "relay cannot reach the database"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        tracing::info!(table = self.outbox.table, "outbox relay running");
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.publish_batch().await {
                Ok(n) => {
                    backoff = Duration::from_millis(100);
                    self.status.failures.store(0, Ordering::Relaxed);
                    self.status
                        .last_success
                        .store(now_secs(), Ordering::Relaxed);
                    if n == 0 {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                        }
                    }
                }
                Err(e) => {
                    let failures = self.status.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(error = %e, failures, retry_in_ms = backoff.as_millis() as u64, "relay attempt failed; rows kept");
                    metrics::counter!("outbox_relay_failures_total").increment(1);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let _ = sqlx::Connection::close(lock).await;
        tracing::info!("outbox relay stopped");
    }

    /// A dedicated connection holding the relay lock; it closes (releasing the lock) on drop.
    async fn acquire_lock(&self) -> Result<Option<sqlx::PgConnection>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(format!("keel.relay.{}", self.outbox.table))
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then(|| conn.detach()))
    }

    /// Publishes the oldest unpublished rows; returns how many went. On any delivery failure
    /// nothing is marked, so the same rows are sent again from the first.
    async fn publish_batch(&self) -> anyhow::Result<usize> {
        let rows = self.outbox.unpublished(&self.db, self.batch).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let headers = row.headers.0.iter().fold(OwnedHeaders::new(), |h, [k, v]| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            });
            let record = FutureRecord::to(&row.topic)
                .key(row.key.as_bytes())
                .payload(row.payload.as_bytes())
                .headers(headers);
            // Enqueued at once, in order; librdkafka batches them per partition.
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("enqueueing to Kafka: {e}"))?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => anyhow::bail!("Kafka did not acknowledge: {e}"),
                Err(_) => anyhow::bail!("the producer dropped a delivery"),
            }
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.outbox.mark_published(&self.db, &ids).await?;
        self.status
            .published
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        metrics::counter!("outbox_relay_published_total").increment(rows.len() as u64);
        metrics::histogram!("outbox_relay_batch_seconds").record(started.elapsed().as_secs_f64());
        Ok(rows.len())
    }
}
