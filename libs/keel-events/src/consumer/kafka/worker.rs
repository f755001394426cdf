//! A Kafka member's partition workers: one task per assigned partition, fed through a bounded
//! buffer, and the rebalance callback that stops the workers of revoked partitions and commits
//! what they handled, so the member taking a partition over starts right after it and no
//! worker here goes on with what is no longer this member's.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicI64, Ordering},
    },
};

use keel_service::KafkaSettings;
use rdkafka::{
    ClientContext, Offset, TopicPartitionList,
    consumer::{
        BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
    },
};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::{BATCH, ConsumerConfig, Handler, settle_batch};
use crate::message::Message;

/// Messages buffered for one partition's worker; past it the member pauses the partition.
pub(super) const BUFFER: usize = 2 * BATCH;

/// Most messages handled between two commits while a partition has a backlog.
const COMMIT_EVERY: usize = 500;

/// (topic as the cluster names it, partition)
pub(super) type PartitionKey = (String, i32);

/// A partition's worker, as the member and its rebalance callback see it.
pub(super) struct Worker {
    pub tx: mpsc::Sender<Message>,
    stop: CancellationToken,
    /// The last offset handled, -1 before the first: committed when the partition is revoked.
    handled: Arc<AtomicI64>,
}

/// The member's workers, shared with its rebalance callback.
pub(super) type Registry = Arc<Mutex<HashMap<PartitionKey, Worker>>>;

pub(super) fn lock(registry: &Registry) -> MutexGuard<'_, HashMap<PartitionKey, Worker>> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Told of the member's rebalances.
pub(super) struct Rebalances {
    pub registry: Registry,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    /// Before partitions go: their workers stop (a message in hand is not finished, and comes
    /// again to the next owner: at-least-once) and what they handled is committed.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut handled = TopicPartitionList::new();
        {
            let mut workers = lock(&self.registry);
            for e in revoked.elements() {
                let Some(worker) = workers.remove(&(e.topic().to_owned(), e.partition())) else {
                    continue;
                };
                worker.stop.cancel();
                let offset = worker.handled.load(Ordering::Acquire);
                if offset >= 0 {
                    let next = Offset::Offset(offset + 1);
                    let _ = handled.add_partition_offset(e.topic(), e.partition(), next);
                }
            }
        }
        if handled.count() > 0
            && let Err(e) = consumer.commit(&handled, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "commit at revoke refused");
        }
        tracing::info!(partitions = revoked.count(), "partitions revoked");
    }
}

/// What every worker of a member shares.
pub(super) struct Shared<H> {
    pub consumer: Arc<StreamConsumer<Rebalances>>,
    pub kafka: KafkaSettings,
    pub handler: Arc<H>,
    pub db: PgPool,
    pub config: Arc<ConsumerConfig>,
    pub shutdown: CancellationToken,
}

impl<H> Clone for Shared<H> {
    fn clone(&self) -> Self {
        Self {
            consumer: self.consumer.clone(),
            kafka: self.kafka.clone(),
            handler: self.handler.clone(),
            db: self.db.clone(),
            config: self.config.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Starts the worker of a partition on `tasks`.
pub(super) fn spawn<H: Handler>(
    shared: &Shared<H>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Worker {
    let (tx, rx) = mpsc::channel(BUFFER);
    let stop = shared.shutdown.child_token();
    let handled = Arc::new(AtomicI64::new(-1));
    tasks.spawn(work(shared.clone(), rx, stop.clone(), handled.clone()));
    Worker { tx, stop, handled }
}

async fn work<H: Handler>(
    shared: Shared<H>,
    mut rx: mpsc::Receiver<Message>,
    stop: CancellationToken,
    handled: Arc<AtomicI64>,
) {
    // Stopped without shutdown: the partition went to another member, which now commits it.
    let revoked = || stop.is_cancelled() && !shared.shutdown.is_cancelled();
    let mut last: Option<Message> = None;
    let mut uncommitted = 0usize;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            m = rx.recv() => m,
        };
        let Some(first) = first else { break };
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let settled =
            settle_batch(&*shared.handler, &shared.db, &shared.config, &batch, &stop).await;
        if let Some(m) = settled.checked_sub(1).and_then(|i| batch.get(i)) {
            handled.store(m.offset, Ordering::Release);
            uncommitted += settled;
            // Commit when caught up, or every COMMIT_EVERY messages in a burst: a commit per
            // message would cost the broker a request per message.
            if (rx.is_empty() || uncommitted >= COMMIT_EVERY) && !revoked() {
                commit(&shared.consumer, &shared.kafka, m, CommitMode::Async);
                uncommitted = 0;
            }
            last = Some(m.clone());
        }
        if settled < batch.len() {
            break;
        }
    }
    // What was handled is committed for certain before the worker ends.
    if let Some(m) = last
        && !revoked()
    {
        commit(&shared.consumer, &shared.kafka, &m, CommitMode::Sync);
    }
}

fn commit(
    consumer: &StreamConsumer<Rebalances>,
    kafka: &KafkaSettings,
    m: &Message,
    mode: CommitMode,
) {
    let mut tpl = TopicPartitionList::new();
    // The next offset to read: exactly the handled offset + 1.
    if tpl
        .add_partition_offset(
            kafka.topic(&m.topic),
            m.partition,
            Offset::Offset(m.offset + 1),
        )
        .is_ok()
        && let Err(e) = consumer.commit(&tpl, mode)
    {
        tracing::warn!(error = %e, topic = %m.topic, partition = m.partition, "commit refused");
    }
}
