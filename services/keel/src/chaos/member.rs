//! A rebalance of the listener's consumer group: a member joins, holds its share of the
//! partitions for a moment without handling or committing anything, and leaves. What it read
//! comes again to the listener from the listener's last commit.
//!
//! Besides being a fault of its own (a pod scaled up and down), it is how the quiet phase gets
//! past a defect of tansu 0.6: when a SIGKILLed member's session ends just after a rebalance,
//! tansu keeps the generation and answers the remaining member's SyncGroup with the previous
//! round's assignment, so the partitions the dead member held stay unowned until the next
//! rebalance.

use std::time::Duration;

use anyhow::Context as _;
use keel_domain::sources_events::EVENT_STREAM_TOPIC;
use keel_service::KafkaSettings;
use rdkafka::consumer::{Consumer as _, StreamConsumer};

/// Joins `group`, stays `hold`, and leaves.
pub async fn join_and_leave(
    kafka: &KafkaSettings,
    group: &str,
    hold: Duration,
) -> anyhow::Result<()> {
    let member: StreamConsumer = keel_events::kafka::client_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .context("a Kafka consumer to join the listener's group")?;
    member.subscribe(&[EVENT_STREAM_TOPIC])?;
    // Joining happens while the member polls; what it receives is dropped uncommitted.
    let deadline = tokio::time::Instant::now() + hold;
    while tokio::time::timeout_at(deadline, member.recv())
        .await
        .is_ok()
    {}
    member.unsubscribe();
    // Dropping the consumer closes it, which leaves the group.
    tokio::task::spawn_blocking(move || drop(member)).await?;
    Ok(())
}
