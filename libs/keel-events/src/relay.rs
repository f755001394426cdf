//! The outbox relay: publishes committed outbox rows to Kafka in transaction order, marks them
//! published only once the broker acknowledged them (`acks=all`), and when Kafka is down keeps
//! the rows and retries with backoff. Duplicates are possible (at-least-once), losses are not.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keel_service::{KafkaSettings, retry::BackoffBuilder as _};
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::outbox::{Outbox, OutboxRow, Position};

/// A batch handed to the producer, row by row.
struct InFlight {
    sent: Vec<Sent>,
    started: Instant,
}

/// One row handed to the producer: the future of its acknowledgement, or why the producer
/// refused it at once (e.g. larger than `message.max.bytes`). The row is kept for its dead
/// letter.
struct Sent {
    row: OutboxRow,
    delivery: Result<DeliveryFuture, rdkafka::error::KafkaError>,
}

/// What `/readiness` and `/metrics` show about the relay.
#[derive(Debug, Default)]
pub struct RelayStatus {
    pub published: AtomicU64,
    /// Unix seconds of the last successful publish or empty poll; 0 before the first.
    pub last_success: AtomicI64,
    /// Consecutive failed attempts (0 when healthy).
    pub failures: AtomicU64,
    /// Another replica holds the relay lock; this one waits to take over.
    pub standby: AtomicBool,
    /// Rows Kafka refused for good, moved to the dead letters.
    pub dead_lettered: AtomicU64,
}

pub struct Relay {
    db: PgPool,
    outbox: Outbox,
    producer: FutureProducer,
    /// Topic names on the cluster (Clowder may rename them).
    kafka: KafkaSettings,
    batch: i64,
    status: Arc<RelayStatus>,
}

const IDLE_POLL: Duration = Duration::from_millis(20);
/// Batches enqueued but not yet settled while the next one is read: one is enough to keep
/// the broker busy while the database works, more only queue up in the producer.
const PIPELINE_DEPTH: usize = 1;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Relay {
    /// A relay of `outbox` to the cluster of `kafka`, `batch` rows at a time.
    pub fn new(
        db: PgPool,
        outbox: Outbox,
        kafka: &KafkaSettings,
        batch: i64,
        status: Arc<RelayStatus>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            outbox,
            producer: crate::kafka::producer(kafka)?,
            kafka: kafka.clone(),
            batch,
            status,
        })
    }

    /// Runs until `shutdown`; returns after the batches in flight are settled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = keel_service::retry::backoff(MIN_BACKOFF, MAX_BACKOFF).build();
        while !shutdown.is_cancelled() {
            // One relay per outbox: replicas wait on a session advisory lock. The relay reads
            // and marks rows on that same connection, so losing it (and the lock with it) ends
            // the run instead of letting two relays publish side by side.
            let mut conn = match self.acquire_lock().await {
                Ok(Some(conn)) => {
                    self.status.standby.store(false, Ordering::Relaxed);
                    conn
                }
                Ok(None) => {
                    self.status.standby.store(true, Ordering::Relaxed);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                Err(e) => {
                    let error = anyhow::Error::from(e).context("taking the relay lock");
                    self.failed(&error, &mut backoff, &shutdown).await;
                    continue;
                }
            };
            tracing::info!(table = self.outbox.table, "outbox relay running");
            let result = self.publish(&mut conn, &shutdown).await;
            let _ = sqlx::Connection::close(conn).await;
            match result {
                Ok(()) => break,
                Err(e) => self.failed(&e, &mut backoff, &shutdown).await,
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// Counts a failed attempt and waits before the next: 100 ms doubling (with jitter) up to
    /// 10 s; a success starts the sequence again.
    async fn failed(
        &self,
        error: &anyhow::Error,
        delays: &mut keel_service::retry::ExponentialBackoff,
        shutdown: &CancellationToken,
    ) {
        let failures = self.status.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures == 1 {
            *delays = keel_service::retry::backoff(MIN_BACKOFF, MAX_BACKOFF).build();
        }
        let backoff = delays.next().unwrap_or(MAX_BACKOFF);
        tracing::warn!(
            error = format!("{error:#}"),
            failures,
            retry_in_ms = backoff.as_millis() as u64,
            "relay attempt failed; rows kept"
        );
        metrics::counter!("outbox_relay_failures_total").increment(1);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(backoff) => {}
        }
    }

    /// Publishes until `shutdown` (then settles what is in flight) or the first failure. Batches
    /// are pipelined: the next one is read and enqueued while the broker acknowledges the one
    /// before, and each is marked published once all of its deliveries are acknowledged.
    ///
    /// Within one call the next batch is read after the last row of the previous one. That is
    /// safe because only final rows are read (txid below the snapshot's xmin): a row committing
    /// later belongs to a transaction still running then, whose txid is at least that xmin, so
    /// it sorts after every row already read. A new call (after a failure) starts again from
    /// the first unpublished row, so rows of a failed batch are sent again, never skipped.
    async fn publish(
        &self,
        conn: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut after: Option<Position> = None;
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(PIPELINE_DEPTH + 1);
        let committed = self.outbox.wake();
        loop {
            let woken = committed.notified();
            if shutdown.is_cancelled() {
                while let Some(batch) = in_flight.pop_front() {
                    self.settle(conn, batch).await?;
                }
                return Ok(());
            }
            let rows = self
                .outbox
                .unpublished(&mut *conn, after, self.batch)
                .await?;
            if let Some(last) = rows.last() {
                after = Some(last.position());
                in_flight.push_back(self.enqueue(rows)?);
                if in_flight.len() > PIPELINE_DEPTH
                    && let Some(batch) = in_flight.pop_front()
                {
                    self.settle(conn, batch).await?;
                }
                continue;
            }
            if in_flight.is_empty() {
                self.healthy();
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = woken => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            while let Some(batch) = in_flight.pop_front() {
                self.settle(conn, batch).await?;
            }
        }
    }

    /// Hands the rows to the producer, in order; librdkafka batches them per partition. A row
    /// refused for good is kept aside for its dead letter; any other refusal (a full queue)
    /// fails the attempt, to be sent again.
    fn enqueue(&self, rows: Vec<OutboxRow>) -> anyhow::Result<InFlight> {
        let started = Instant::now();
        let mut sent = Vec::with_capacity(rows.len());
        for row in rows {
            let delivery = crate::kafka::send(
                &self.producer,
                self.kafka.topic(&row.topic),
                &row.key,
                &row.headers.0,
                &row.payload,
            );
            if let Err(e) = &delivery
                && crate::kafka::refused_for_good(e).is_none()
            {
                anyhow::bail!("enqueueing to Kafka: {e}");
            }
            sent.push(Sent { row, delivery });
        }
        Ok(InFlight { sent, started })
    }

    /// Waits for every acknowledgement of a batch, then marks its rows published; the rows
    /// Kafka refused for good go to the dead letters in the same transaction, so one bad row
    /// never holds back the others. Any other failure fails the attempt: nothing of the batch
    /// is marked, and all of it is sent again.
    async fn settle(&self, conn: &mut PgConnection, batch: InFlight) -> anyhow::Result<()> {
        let mut published = Vec::with_capacity(batch.sent.len());
        let mut refused = Vec::new();
        for Sent { row, delivery } in batch.sent {
            let outcome = match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => anyhow::bail!("the producer dropped a delivery"),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => published.push(row.id),
                Err(e) => match crate::kafka::refused_for_good(&e) {
                    Some(reason) => refused.push((row, reason)),
                    None => anyhow::bail!("Kafka did not acknowledge: {e}"),
                },
            }
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for (row, reason) in &refused {
            tracing::error!(id = row.id, topic = %row.topic, bytes = row.payload.len(), %reason, "outbox row dead-lettered");
            crate::dead_letter::write(&mut *tx, &relay_letter(row, reason)).await?;
            published.push(row.id);
        }
        self.outbox.mark_published(&mut *tx, &published).await?;
        tx.commit().await?;
        let refused = refused.len() as u64;
        self.status
            .dead_lettered
            .fetch_add(refused, Ordering::Relaxed);
        metrics::counter!("outbox_relay_dead_lettered_total").increment(refused);
        let n = published.len() as u64 - refused;
        self.status.published.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("outbox_relay_published_total").increment(n);
        metrics::histogram!("outbox_relay_batch_seconds")
            .record(batch.started.elapsed().as_secs_f64());
        self.healthy();
        Ok(())
    }

    fn healthy(&self) {
        self.status.failures.store(0, Ordering::Relaxed);
        self.status
            .last_success
            .store(now_secs(), Ordering::Relaxed);
    }

    /// A dedicated connection holding the relay lock, set to walk the outbox's indexes; it
    /// closes (releasing the lock) on drop.
    async fn acquire_lock(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(format!("keel.relay.{}", self.outbox.table))
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Ok(None);
        }
        let mut conn = conn.detach();
        crate::outbox::walk_indexes(&mut conn).await?;
        Ok(Some(conn))
    }
}

/// The dead letter of an outbox row Kafka refused for good.
fn relay_letter<'a>(row: &'a OutboxRow, reason: &'a str) -> crate::dead_letter::DeadLetter<'a> {
    crate::dead_letter::DeadLetter {
        group: crate::dead_letter::RELAY_GROUP,
        topic: &row.topic,
        partition: -1,
        offset: row.id,
        key: Some(row.key.as_bytes()),
        headers: row.headers.0.clone(),
        payload: Some(row.payload.as_bytes()),
        reason,
    }
}
