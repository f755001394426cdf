//! The Kafka member's lag, measured against the broker.

use std::{sync::Arc, time::Duration};

use rdkafka::{
    Offset,
    consumer::{Consumer as _, ConsumerContext, StreamConsumer},
};
use tokio_util::sync::CancellationToken;

/// Every `every`, `events_consumer_lag{group,topic,partition}` = high watermark - committed
/// offset (messages not yet handled and committed) for the partitions this member holds. The
/// client calls block, so they run on the blocking pool.
pub(super) async fn report_kafka_lag<C: ConsumerContext + 'static>(
    consumer: Arc<StreamConsumer<C>>,
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
