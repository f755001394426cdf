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

mod embedded;
mod kafka;

use std::{future::Future, sync::Arc, time::Duration};

use keel_service::retry::BackoffBuilder as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{Transport, message::Message, outbox::Outbox};

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
    /// First retry delay; doubles (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Embedded log only: how long to wait before looking again after a look found nothing;
    /// doubled after each empty look up to `max_poll_interval`. A writer of this process that
    /// commits rows ([`crate::Outbox::committed`]) brings the next look forward to 10 ms later.
    pub poll_interval: Duration,
    /// Embedded log only: the longest wait between looks while idle.
    pub max_poll_interval: Duration,
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
            max_poll_interval: Duration::from_millis(100),
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
        Transport::Kafka(settings) => {
            kafka::run(&settings, db, config, handler, shutdown)
                .instrument(span)
                .await
        }
        Transport::Embedded => {
            embedded::run(db, outbox, config, handler, shutdown)
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
    let mut delays = keel_service::retry::backoff(config.retry_base, config.retry_max).build();
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
        let delay = delays.next().unwrap_or(config.retry_max);
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
    }
}

async fn dead_letter(
    db: &PgPool,
    group: &str,
    m: &Message,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let letter = crate::dead_letter::DeadLetter {
        group,
        topic: &m.topic,
        partition: m.partition,
        offset: m.offset,
        key: m.key.as_deref(),
        headers: m
            .headers
            .iter()
            .map(|(k, v)| [k.clone(), String::from_utf8_lossy(v).into_owned()])
            .collect(),
        payload: Some(&m.payload),
        reason,
    };
    crate::dead_letter::write(db, &letter).await
}
