//! sources-api's background work on the event stream: the outbox relay to Kafka (with topic
//! creation and its lag gauges), outbox retention, and the availability status consumer.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use keel_events::{ConsumerConfig, Relay, Transport, relay::RelayStatus};
use keel_service::{Shutdown, periodic, retry};
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::{config::Config, state::AppState, stream};

/// Starts the relay (Kafka only), retention and the status consumer on `tasks`.
pub fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    config: &Config,
    transport: &Transport,
    db: &PgPool,
    relay: &Arc<RelayStatus>,
    state: &AppState,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    if let Transport::Kafka(kafka) = transport {
        let relay = Relay::new(
            db.clone(),
            stream::OUTBOX,
            kafka,
            config.outbox_relay_batch,
            relay.clone(),
        )?;
        let (kafka, partitions, replication) = (
            kafka.clone(),
            config.kafka_topic_partitions,
            config.kafka_topic_replication,
        );
        let stop = shutdown.clone();
        tasks.spawn(async move {
            // The test broker never creates topics on its own; keep asking until it answers.
            let topics = [stream::EVENT_STREAM_TOPIC, stream::STATUS_TOPIC];
            let policy = retry::backoff(Duration::from_millis(200), Duration::from_secs(10));
            retry::until_ok("creating topics", policy, &stop, || {
                keel_events::kafka::ensure_topics(&kafka, &topics, partitions, replication)
            })
            .await;
            relay.run(stop.token().clone()).await;
            Ok(())
        });
        let (db, stop) = (db.clone(), shutdown.clone());
        tasks.spawn(async move {
            periodic::every("relay_lag", Duration::from_secs(5), stop, move || {
                report_lag(db.clone())
            })
            .await;
            Ok(())
        });
    }
    if config.outbox_retention_hours > 0 {
        let retention = Duration::from_secs(config.outbox_retention_hours.saturating_mul(3600));
        let keep_unpublished = matches!(transport, Transport::Kafka(_));
        let (db, stop) = (db.clone(), shutdown.clone());
        tasks.spawn(async move {
            periodic::every(
                "outbox_retention",
                Duration::from_secs(60),
                stop,
                move || prune(db.clone(), retention, keep_unpublished),
            )
            .await;
            Ok(())
        });
    }
    let handler = Arc::new(stream::StatusHandler {
        state: state.clone(),
    });
    tasks.spawn(keel_events::consumer::run(
        transport.clone(),
        db.clone(),
        stream::OUTBOX,
        ConsumerConfig::new(&config.status_consumer_group, &[stream::STATUS_TOPIC]),
        handler,
        shutdown.token().clone(),
    ));
    Ok(())
}

/// Ready while the relay keeps up: it must have succeeded within the last 30 seconds. The
/// detail shows the lag: rows pending and the age of the oldest.
pub async fn health(
    transport: &Transport,
    relay: &RelayStatus,
    db: &PgPool,
) -> Result<String, String> {
    if matches!(transport, Transport::Embedded) {
        return Ok("embedded log (PostgreSQL)".to_owned());
    }
    let (pending, oldest) = stream::OUTBOX
        .relay_lag(db)
        .await
        .map_err(|e| format!("cannot measure the relay lag: {e}"))?;
    let lag = format!(
        "{pending} rows pending, oldest {oldest:.1}s, {} published",
        relay.published.load(Ordering::Relaxed)
    );
    // A replica waiting for the relay lock serves the API like any other; its writes wait in
    // the outbox for the replica that relays.
    if relay.standby.load(Ordering::Relaxed) {
        return Ok(format!("kafka: standby, another replica relays; {lag}"));
    }
    let last = relay.last_success.load(Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp();
    let failures = relay.failures.load(Ordering::Relaxed);
    if last == 0 {
        return Err(format!("the outbox relay has not reached Kafka yet; {lag}"));
    }
    if now - last > 30 {
        return Err(format!(
            "the outbox relay has failed for {}s ({failures} attempts); {lag}",
            now - last
        ));
    }
    Ok(format!("kafka: {lag}"))
}

/// Deletes outbox rows older than `retention` (see [`keel_events::Outbox::prune`]).
async fn prune(db: PgPool, retention: Duration, keep_unpublished: bool) -> anyhow::Result<()> {
    let n = stream::OUTBOX
        .prune(&db, retention, keep_unpublished)
        .await?;
    if n > 0 {
        tracing::info!(rows = n, "outbox rows past retention deleted");
        metrics::counter!("outbox_pruned_rows_total").increment(n);
    }
    Ok(())
}

/// Publishes the relay's lag as gauges: rows pending and the age of the oldest.
async fn report_lag(db: PgPool) -> anyhow::Result<()> {
    let (pending, oldest) = stream::OUTBOX.relay_lag(&db).await?;
    metrics::gauge!("outbox_relay_pending_rows").set(pending as f64);
    metrics::gauge!("outbox_relay_oldest_seconds").set(oldest);
    Ok(())
}
