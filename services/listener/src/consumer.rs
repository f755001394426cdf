//! The event consumer: reads `platform.sources.event-stream` (group `hccm-sources`), records
//! each relevant event in the sync table and queues an operation, in one transaction. It never
//! calls sources-api or a cloud: the workers do, so a slow or failing source never holds the
//! partition.

use std::{sync::Arc, time::Instant};

use keel_events::{Handler, Message, Outcome};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    domain::{Parsed, SourceEvent, event},
    store::{self, Recorded},
};

pub struct SourcesHandler {
    pub db: PgPool,
    pub cost_type_id: i64,
    pub schema_suffix: String,
    pub wake: Arc<Notify>,
}

fn count(event_type: &str, outcome: &'static str) {
    metrics::counter!("listener_events_total", "event_type" => event_type.to_owned(), "outcome" => outcome)
        .increment(1);
}

impl Handler for SourcesHandler {
    const TAKES_BATCHES: bool = true;

    async fn handle(&self, message: &Message) -> Outcome {
        self.handle_batch(std::slice::from_ref(message))
            .await
            .pop()
            .unwrap_or(Outcome::Retry("no outcome".to_owned()))
    }

    /// Parses every message, then records the relevant ones in one transaction: one commit
    /// for the whole batch instead of one per event.
    async fn handle_batch(&self, messages: &[Message]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut relevant = Vec::new();
        for (n, message) in messages.iter().enumerate() {
            let event_type = message.header("event_type").unwrap_or("");
            match event::parse(message, self.cost_type_id, &self.schema_suffix) {
                Parsed::Relevant(e) => {
                    relevant.push((n, (e, message.offset)));
                    outcomes.push(Outcome::Done);
                }
                Parsed::Skip(reason) => {
                    tracing::debug!(%event_type, %reason, "skipped");
                    count(event_type, "skipped");
                    outcomes.push(Outcome::Done);
                }
                Parsed::Invalid(reason) => {
                    count(event_type, "invalid");
                    outcomes.push(Outcome::Fail(reason));
                }
            }
        }
        if relevant.is_empty() {
            return outcomes;
        }
        let started = Instant::now();
        let events: Vec<(SourceEvent, i64)> = relevant.iter().map(|(_, e)| e.clone()).collect();
        match store::record_events(&self.db, &events).await {
            Ok(recorded) => {
                let seconds = started.elapsed().as_secs_f64();
                for ((event, _), result) in events.iter().zip(recorded) {
                    let event_type = event.kind.as_str();
                    match result {
                        Recorded::Queued(op) => {
                            tracing::info!(%event_type, source_id = event.source_id, operation = op.as_str(), "queued");
                            count(event_type, "queued");
                        }
                        Recorded::Unchanged => {
                            tracing::debug!(%event_type, source_id = event.source_id, "changes nothing");
                            count(event_type, "unchanged");
                        }
                        Recorded::UnknownSource => {
                            tracing::debug!(%event_type, source_id = event.source_id, "event for a source not followed");
                            count(event_type, "unknown_source");
                        }
                    }
                }
                metrics::histogram!("listener_batch_seconds").record(seconds);
                // Every idle worker looks at the queue.
                self.wake.notify_waiters();
                outcomes
            }
            Err(e) => {
                // Nothing of the batch was written: from its first relevant event on, it is
                // handled again.
                let first = relevant[0].0;
                for (_, (event, _)) in &relevant {
                    count(event.kind.as_str(), "retried");
                }
                outcomes.truncate(first);
                outcomes.push(Outcome::Retry(format!("recording the events: {e}")));
                outcomes
            }
        }
    }
}
