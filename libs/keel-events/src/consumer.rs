//! Consumers. A handler is called for each message, in order within a partition (partitions in
//! parallel), and answers:
//! - [`Outcome::Done`]: committed (Kafka: offset + 1; embedded: the position).
//! - [`Outcome::Retry`]: called again for the same message after a backoff; nothing later in
//!   that partition is handled meanwhile.
//! - [`Outcome::Fail`]: written to `keel_events.dead_letters` with the reason, then committed.
//!
//! A handler may take consecutive messages of a partition together ([`Handler::handle_batch`],
//! when it sets `TAKES_BATCHES`), e.g. to write them in one transaction. The consumer commits
//! what it handled once per batch of up to 500 messages.
//!
//! Delivery is at-least-once: a message can be seen again after a crash or a rebalance, so
//! handlers must be idempotent. Shutdown finishes the message (or batch) in hand and commits it.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::Headers as _,
};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    Transport,
    message::Message,
    outbox::{Outbox, OutboxRow, Position},
};

/// What a handler decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Retry(String),
    Fail(String),
}

/// Handles messages; called from one task per partition.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Message) -> impl Future<Output = Outcome> + Send;

    /// Whether the consumer hands this handler several messages at once
    /// ([`Handler::handle_batch`]); otherwise it calls `handle` per message and stops between
    /// two messages at shutdown.
    const TAKES_BATCHES: bool = false;

    /// Handles consecutive messages of one partition, answering one outcome per message, in
    /// order. A `Retry` stands for that message and every later one: they are handled again
    /// (one by one) whatever the later outcomes say. Called only when `TAKES_BATCHES`.
    fn handle_batch(&self, messages: &[Message]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(messages.len());
            for message in messages {
                outcomes.push(self.handle(message).await);
            }
            outcomes
        }
    }
}

/// Most messages of a partition given to one `handle_batch` call.
const BATCH: usize = 500;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// First retry delay; doubles up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Embedded log only: how often to look for new rows when idle. A look is one index
    /// probe of (topic, txid, id), so a short interval costs little and bounds the delay.
    pub poll_interval: Duration,
    /// How often `events_consumer_lag` is measured.
    pub lag_interval: Duration,
}

impl ConsumerConfig {
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group: group.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            poll_interval: Duration::from_millis(10),
            lag_interval: Duration::from_secs(10),
        }
    }
}

/// Runs the consumer until `shutdown`.
pub async fn run<H: Handler>(
    transport: Transport,
    db: PgPool,
    outbox: Outbox,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let span = tracing::info_span!("consumer", group = %config.group, transport = transport.name());
    match transport {
        Transport::Kafka { brokers } => {
            run_kafka(&brokers, db, config, handler, shutdown)
                .instrument(span)
                .await
        }
        Transport::Embedded => {
            run_embedded(db, outbox, config, handler, shutdown)
                .instrument(span)
                .await
        }
    }
}

/// Hands messages to the handler (as one batch when it takes batches) and settles what it
/// answered; returns how many leading messages may be committed (fewer than all only at
/// shutdown).
async fn settle_batch<H: Handler>(
    handler: &H,
    db: &PgPool,
    config: &ConsumerConfig,
    messages: &[Message],
    shutdown: &CancellationToken,
) -> usize {
    if !H::TAKES_BATCHES {
        for (n, message) in messages.iter().enumerate() {
            if shutdown.is_cancelled() || !settle(handler, db, config, message, shutdown).await {
                return n;
            }
        }
        return messages.len();
    }
    let outcomes = handler
        .handle_batch(messages)
        .instrument(tracing::info_span!(
            "batch",
            topic = %messages.first().map_or("", |m| m.topic.as_str()),
            partition = messages.first().map_or(0, |m| m.partition),
            first_offset = messages.first().map_or(0, |m| m.offset),
            size = messages.len()
        ))
        .await;
    for (n, message) in messages.iter().enumerate() {
        let settled = match outcomes.get(n) {
            Some(Outcome::Done) => {
                count(config, message, "events_handled_total");
                true
            }
            Some(Outcome::Fail(reason)) => {
                // A dead letter that cannot be written falls back to the one-by-one path.
                dead_letter_once(db, config, message, reason).await
            }
            Some(Outcome::Retry(_)) | None => false,
        };
        if !settled && !settle(handler, db, config, message, shutdown).await {
            return n;
        }
    }
    messages.len()
}

fn count(config: &ConsumerConfig, message: &Message, name: &'static str) {
    metrics::counter!(name, "group" => config.group.clone(), "topic" => message.topic.clone())
        .increment(1);
}

/// Writes the dead letter of a failed message; false when it could not be written.
async fn dead_letter_once(
    db: &PgPool,
    config: &ConsumerConfig,
    message: &Message,
    reason: &str,
) -> bool {
    tracing::warn!(topic = %message.topic, offset = message.offset, %reason, "message dead-lettered");
    count(config, message, "events_dead_lettered_total");
    match dead_letter(db, &config.group, message, reason).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot write the dead letter; retrying");
            false
        }
    }
}

/// Calls the handler until it is done with the message or shutdown; returns whether the
/// message may be committed (false only when shutdown interrupted a retry).
async fn settle<H: Handler>(
    handler: &H,
    db: &PgPool,
    config: &ConsumerConfig,
    message: &Message,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = config.retry_base;
    loop {
        let outcome = handler
            .handle(message)
            .instrument(tracing::info_span!(
                "message",
                topic = %message.topic,
                partition = message.partition,
                offset = message.offset
            ))
            .await;
        match outcome {
            Outcome::Done => {
                count(config, message, "events_handled_total");
                return true;
            }
            Outcome::Fail(reason) => {
                if dead_letter_once(db, config, message, &reason).await {
                    return true;
                }
            }
            Outcome::Retry(reason) => {
                count(config, message, "events_retried_total");
                tracing::info!(topic = %message.topic, offset = message.offset, %reason, retry_in_ms = delay.as_millis() as u64, "message will be retried");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(config.retry_max);
    }
}

async fn dead_letter(
    db: &PgPool,
    group: &str,
    m: &Message,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let headers: Vec<[String; 2]> = m
        .headers
        .iter()
        .map(|(k, v)| [k.clone(), String::from_utf8_lossy(v).into_owned()])
        .collect();
    sqlx::query(
        "INSERT INTO keel_events.dead_letters (group_id, topic, partition, \"offset\", key, headers, payload, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(group)
    .bind(&m.topic)
    .bind(m.partition)
    .bind(m.offset)
    .bind(&m.key)
    .bind(sqlx::types::Json(headers))
    .bind(&m.payload)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kafka

fn to_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Message {
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
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        headers,
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

fn commit(consumer: &StreamConsumer, m: &Message, mode: CommitMode) {
    let mut tpl = TopicPartitionList::new();
    // The next offset to read: exactly the handled offset + 1.
    if tpl
        .add_partition_offset(&m.topic, m.partition, Offset::Offset(m.offset + 1))
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

async fn run_kafka<H: Handler>(
    brokers: &str,
    db: PgPool,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = Arc::new(crate::kafka::consumer(brokers, &config.group)?);
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
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
            Ok(m) => to_message(&m),
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let key = (message.topic.clone(), message.partition);
        let sender = workers.entry(key).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            let (consumer, handler, db, config, shutdown) = (
                consumer.clone(),
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
                            commit(&consumer, m, CommitMode::Async);
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
                    commit(&consumer, &m, CommitMode::Sync);
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

// ---------------------------------------------------------------------------------------------
// Embedded log

async fn load_position(
    db: impl sqlx::PgExecutor<'_>,
    group: &str,
    topic: &str,
) -> Result<Position, sqlx::Error> {
    let stored: Option<(i64, i64)> = sqlx::query_as(
        "SELECT txid, outbox_id FROM keel_events.consumer_positions WHERE group_id = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_optional(db)
    .await?;
    // A new group reads from the beginning, like `auto.offset.reset=earliest`.
    Ok(stored.map_or(Position::default(), |(txid, id)| Position { txid, id }))
}

async fn store_position(
    db: &PgPool,
    group: &str,
    topic: &str,
    p: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keel_events.consumer_positions (group_id, topic, txid, outbox_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic) DO UPDATE \
         SET txid = excluded.txid, outbox_id = excluded.outbox_id, updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(p.txid)
    .bind(p.id)
    .execute(db)
    .await?;
    Ok(())
}

/// Takes `pg_advisory_lock(group, topic)` on a dedicated connection, held for as long as the
/// returned connection lives; `None` on shutdown.
async fn hold_member_lock(
    db: &PgPool,
    group: &str,
    topic: &str,
    shutdown: &CancellationToken,
) -> Option<sqlx::PgConnection> {
    loop {
        let attempt = async {
            let mut conn = db.acquire().await?;
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))")
                    .bind(group)
                    .bind(topic)
                    .fetch_one(&mut *conn)
                    .await?;
            // Detached: the connection closes when dropped, which releases the lock, instead
            // of going back to the pool still holding it.
            Ok::<_, sqlx::Error>(got.then(|| conn.detach()))
        };
        match attempt.await {
            Ok(Some(conn)) => return Some(conn),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the group lock"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One member's run over one topic of the log, reading on its lock connection (set to walk the
/// outbox's indexes); returns on shutdown, or with the error that broke that connection.
async fn read_topic<H: Handler>(
    conn: &mut sqlx::PgConnection,
    db: &PgPool,
    outbox: Outbox,
    topic: &str,
    config: &ConsumerConfig,
    handler: &H,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    crate::outbox::walk_indexes(conn).await?;
    let mut position = load_position(&mut *conn, &config.group, topic).await?;
    let lag = metrics::gauge!(
        "events_consumer_lag",
        "group" => config.group.clone(),
        "topic" => topic.to_owned(),
        "partition" => "0"
    );
    let mut lag_measured: Option<std::time::Instant> = None;
    while !shutdown.is_cancelled() {
        let rows = outbox
            .read(&mut *conn, topic, position, BATCH as i64)
            .await?;
        // A batch shorter than asked for is the whole backlog; a full one is counted, at most
        // once per interval (the count walks the backlog's index entries).
        if rows.len() < BATCH {
            lag.set(rows.len() as f64);
        } else if lag_measured.is_none_or(|at| at.elapsed() >= config.lag_interval) {
            lag.set(outbox.backlog(&mut *conn, topic, position).await? as f64);
            lag_measured = Some(std::time::Instant::now());
        }
        if rows.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(config.poll_interval) => {}
            }
            continue;
        }
        let read = rows.len();
        let positions: Vec<Position> = rows.iter().map(OutboxRow::position).collect();
        let messages: Vec<Message> = rows
            .into_iter()
            .map(|row| Message {
                topic: row.topic,
                partition: 0,
                offset: row.id,
                key: Some(row.key.into_bytes()),
                headers: row
                    .headers
                    .0
                    .into_iter()
                    .map(|[k, v]| (k, v.into_bytes()))
                    .collect(),
                payload: row.payload.into_bytes(),
            })
            .collect();
        let settled = settle_batch(handler, db, config, &messages, shutdown).await;
        let Some(&last) = settled.checked_sub(1).and_then(|i| positions.get(i)) else {
            break;
        };
        position = last;
        // Committed after each batch: a restart repeats at most the batch in hand.
        while let Err(e) = store_position(db, &config.group, topic, position).await {
            tracing::warn!(error = %e, "cannot store the consumer position; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        if settled < read {
            break;
        }
    }
    Ok(())
}

async fn run_embedded<H: Handler>(
    db: PgPool,
    outbox: Outbox,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Each topic is one partition of the log, read by its own task.
    let mut tasks = tokio::task::JoinSet::new();
    let config = Arc::new(config);
    for topic in config.topics.clone() {
        let (db, handler, config, shutdown) = (
            db.clone(),
            handler.clone(),
            config.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            // A lost lock connection (the database restarted, say) ends a run; the member then
            // takes the lock again and goes on from the stored position.
            while !shutdown.is_cancelled() {
                let Some(mut conn) = hold_member_lock(&db, &config.group, &topic, &shutdown).await
                else {
                    return;
                };
                if let Err(e) =
                    read_topic(&mut conn, &db, outbox, &topic, &config, &*handler, &shutdown).await
                {
                    tracing::warn!(error = %e, %topic, "reading the log failed; taking the lock again");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("consumer stopped");
    Ok(())
}
