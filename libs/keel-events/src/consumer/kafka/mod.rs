//! Kafka members: one task per assigned partition keeps it in order while partitions run in
//! parallel, each fed through a bounded buffer (a full one pauses its partition); commits
//! carry exactly the handled offset + 1, and a revoked partition's worker stops and its
//! progress is committed before the partition goes. Topics are subscribed under their
//! names on the cluster and handed to the handler under the names the code asked for.

mod lag;
mod worker;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use keel_service::KafkaSettings;
use rdkafka::{Message as _, TopicPartitionList, consumer::Consumer as _, message::Headers as _};
use sqlx::PgPool;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use worker::{PartitionKey, Rebalances, Registry, Shared, lock};

use super::{ConsumerConfig, Handler};
use crate::message::Message;

/// The message as handlers see it, under the topic name the code asked for (`requested`:
/// the cluster's name -> the code's).
fn to_message(
    m: &rdkafka::message::BorrowedMessage<'_>,
    requested: &HashMap<String, String>,
) -> Message {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Message {
        topic: requested
            .get(m.topic())
            .cloned()
            .unwrap_or_else(|| m.topic().to_owned()),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        headers,
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

pub(super) async fn run<H: Handler>(
    kafka: &KafkaSettings,
    db: PgPool,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = Registry::default();
    let rebalances = Rebalances {
        registry: registry.clone(),
    };
    let consumer = Arc::new(crate::kafka::consumer_with(
        kafka,
        &config.group,
        rebalances,
    )?);
    let topics: Vec<&str> = config.topics.iter().map(|t| kafka.topic(t)).collect();
    let requested: HashMap<String, String> = config
        .topics
        .iter()
        .map(|t| (kafka.topic(t).to_owned(), t.clone()))
        .collect();
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?config.topics, "consumer subscribed");

    // Stops with this function even when it is dropped: the task holds the group membership.
    let _lag = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(lag::report_kafka_lag(
        consumer.clone(),
        config.group.clone(),
        config.lag_interval,
        shutdown.clone(),
    )));
    let buffered = metrics::gauge!("events_consumer_buffered", "group" => config.group.clone());
    let shared = Shared {
        consumer,
        kafka: kafka.clone(),
        handler,
        db,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
    };
    let mut member = Member {
        shared,
        registry,
        held: HashMap::new(),
        tasks: tokio::task::JoinSet::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = member.shared.consumer.recv() => Some(received),
            _ = tick.tick(), if !member.held.is_empty() => None,
        };
        match received {
            Some(Ok(m)) => {
                let key = (m.topic().to_owned(), m.partition());
                let message = to_message(&m, &requested);
                drop(m);
                member.deliver(key, message);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka receive error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {}
        }
        member.flush();
        buffered.set(member.buffered() as f64);
    }
    // Let each worker finish the message in hand, then commit.
    lock(&member.registry).clear();
    while member.tasks.join_next().await.is_some() {}
    buffered.set(0.0);
    tracing::info!("consumer stopped");
    Ok(())
}

/// One member of the group: its workers, and the messages held back for partitions whose
/// worker's buffer is full (those partitions are paused until their worker catches up, so a
/// slow or retrying handler holds a bounded number of messages, not its topic's backlog).
struct Member<H> {
    shared: Shared<H>,
    registry: Registry,
    held: HashMap<PartitionKey, VecDeque<Message>>,
    tasks: tokio::task::JoinSet<()>,
}

impl<H: Handler> Member<H> {
    /// Hands a message to its partition's worker (started on the partition's first message),
    /// in order behind any held back.
    fn deliver(&mut self, key: PartitionKey, message: Message) {
        if let Some(queue) = self.held.get_mut(&key) {
            queue.push_back(message);
            return;
        }
        let mut workers = lock(&self.registry);
        let worker = workers
            .entry(key.clone())
            .or_insert_with(|| worker::spawn(&self.shared, &mut self.tasks));
        match worker.tx.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) => {
                drop(workers);
                self.pause(&key, true);
                self.held.entry(key).or_default().push_back(message);
            }
            // The worker stopped (shutdown): the message comes again from the last commit.
            Err(TrySendError::Closed(_)) => {
                workers.remove(&key);
            }
        }
    }

    /// Moves held messages to their workers as their buffers empty, resuming each partition
    /// once all of its messages are handed over. The messages of a partition revoked meanwhile
    /// are dropped: its next owner reads them from the last commit.
    fn flush(&mut self) {
        let mut resumed = Vec::new();
        {
            let workers = lock(&self.registry);
            self.held.retain(|key, queue| {
                let Some(worker) = workers.get(key) else {
                    resumed.push(key.clone());
                    return false;
                };
                while let Some(message) = queue.pop_front() {
                    match worker.tx.try_send(message) {
                        Ok(()) => {}
                        Err(TrySendError::Full(message)) => {
                            queue.push_front(message);
                            return true;
                        }
                        Err(TrySendError::Closed(_)) => {
                            queue.clear();
                            break;
                        }
                    }
                }
                resumed.push(key.clone());
                false
            });
        }
        for key in resumed {
            self.pause(&key, false);
        }
    }

    fn pause(&self, (topic, partition): &PartitionKey, pause: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, *partition);
        let consumer = &self.shared.consumer;
        let done = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, %topic, partition, pause, "pause/resume refused");
        }
    }

    /// Messages in this member's memory: in workers' buffers, and held back.
    fn buffered(&self) -> usize {
        let in_buffers: usize = lock(&self.registry)
            .values()
            .map(|w| w.tx.max_capacity() - w.tx.capacity())
            .sum();
        in_buffers + self.held.values().map(VecDeque::len).sum::<usize>()
    }
}
