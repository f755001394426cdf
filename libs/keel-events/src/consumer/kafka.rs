//! Kafka members: one task per assigned partition keeps it in order while partitions run in
//! parallel; commits carry exactly the handled offset + 1. Topics are subscribed under their
//! names on the cluster and handed to the handler under the names the code asked for.

use std::{collections::HashMap, sync::Arc, time::Duration};

use keel_service::KafkaSettings;
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::Headers as _,
};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BATCH, ConsumerConfig, Handler, settle_batch};
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

fn commit(consumer: &StreamConsumer, kafka: &KafkaSettings, m: &Message, mode: CommitMode) {
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
        // After a rebalance the partition may belong to another member: it re-reads from the
        // last commit, which is at-least-once, not a loss.
        tracing::warn!(error = %e, topic = %m.topic, partition = m.partition, "commit refused");
    }
}

/// Every `every`, `events_consumer_lag{group,topic,partition}` = high watermark - committed
/// offset (messages not yet handled and committed) for the partitions this member holds. The
/// client calls block, so they run on the blocking pool.
async fn report_kafka_lag(
    consumer: Arc<StreamConsumer>,
    group: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let consumer = consumer.clone();
        let lags = tokio::task::spawn_blocking(move || {
            let committed = consumer.committed(Duration::from_secs(2)).ok()?;
            let lags: Vec<(String, i32, i64)> = committed
                .elements()
                .iter()
                .filter_map(|e| {
                    let (low, high) = consumer
                        .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(2))
                        .ok()?;
                    // Nothing committed yet: everything retained is still to be handled.
                    let at = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => low,
                    };
                    Some((e.topic().to_owned(), e.partition(), (high - at).max(0)))
                })
                .collect();
            Some(lags)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        for (topic, partition, lag) in lags {
            metrics::gauge!(
                "events_consumer_lag",
                "group" => group.clone(),
                "topic" => topic,
                "partition" => partition.to_string()
            )
            .set(lag as f64);
        }
    }
}

/// Most messages handled between two commits while a partition has a backlog.
const COMMIT_EVERY: usize = 500;

pub(super) async fn run<H: Handler>(
    kafka: &KafkaSettings,
    db: PgPool,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = Arc::new(crate::kafka::consumer(kafka, &config.group)?);
    let topics: Vec<&str> = config.topics.iter().map(|t| kafka.topic(t)).collect();
    let requested: HashMap<String, String> = config
        .topics
        .iter()
        .map(|t| (kafka.topic(t).to_owned(), t.clone()))
        .collect();
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?config.topics, "consumer subscribed");

    // Stops with this function even when it is dropped: the task holds the group membership.
    let _lag = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(report_kafka_lag(
        consumer.clone(),
        config.group.clone(),
        config.lag_interval,
        shutdown.clone(),
    )));

    // One worker per partition keeps a partition in order while partitions run in parallel.
    let mut workers: HashMap<(String, i32), mpsc::UnboundedSender<Message>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let config = Arc::new(config);
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(m) => to_message(&m, &requested),
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let key = (message.topic.clone(), message.partition);
        let sender = workers.entry(key).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            let (consumer, kafka, handler, db, config, shutdown) = (
                consumer.clone(),
                kafka.clone(),
                handler.clone(),
                db.clone(),
                config.clone(),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                let mut last: Option<Message> = None;
                let mut uncommitted = 0usize;
                let mut batch = Vec::with_capacity(BATCH);
                'work: while let Some(m) = rx.recv().await {
                    batch.clear();
                    batch.push(m);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    if shutdown.is_cancelled() {
                        break;
                    }
                    let settled = settle_batch(&*handler, &db, &config, &batch, &shutdown).await;
                    if let Some(m) = settled.checked_sub(1).and_then(|i| batch.get(i)) {
                        uncommitted += settled;
                        // Commit when caught up, or every COMMIT_EVERY messages in a burst: a
                        // commit per message would cost the broker a request per message.
                        if rx.is_empty() || uncommitted >= COMMIT_EVERY {
                            commit(&consumer, &kafka, m, CommitMode::Async);
                            uncommitted = 0;
                        }
                        last = Some(m.clone());
                    }
                    if settled < batch.len() {
                        break 'work;
                    }
                }
                // What was handled is committed for certain before the worker ends.
                if let Some(m) = last {
                    commit(&consumer, &kafka, &m, CommitMode::Sync);
                }
            });
            tx
        });
        if sender.send(message).is_err() {
            tracing::warn!("a partition worker stopped early");
        }
    }
    // Let each worker finish the message in hand, then commit.
    workers.clear();
    while tasks.join_next().await.is_some() {}
    tracing::info!("consumer stopped");
    Ok(())
}
