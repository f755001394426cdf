//! The event consumer: reads `platform.sources.event-stream` (group `hccm-sources`), records
//! each relevant event in the sync table and queues an operation, in one transaction. It never
//! calls sources-api or a cloud: the workers do, so a slow or failing source never holds the
//! partition.

use std::{sync::Arc, time::Instant};

use keel_events::{Handler, Message, Outcome};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    domain::{Parsed, event},
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
    async fn handle(&self, message: &Message) -> Outcome {
        let event_type = message.header("event_type").unwrap_or("").to_owned();
        let event = match event::parse(message, self.cost_type_id, &self.schema_suffix) {
            Parsed::Relevant(e) => e,
            Parsed::Skip(reason) => {
                tracing::debug!(%event_type, %reason, "skipped");
                count(&event_type, "skipped");
                return Outcome::Done;
            }
            Parsed::Invalid(reason) => {
                count(&event_type, "invalid");
                return Outcome::Fail(reason);
            }
        };
        let started = Instant::now();
        match store::record_event(&self.db, &event, message.offset).await {
            Ok(Recorded::Queued(op)) => {
                tracing::info!(%event_type, source_id = event.source_id, operation = op.as_str(), "queued");
                count(&event_type, "queued");
                metrics::histogram!("listener_event_seconds")
                    .record(started.elapsed().as_secs_f64());
                self.wake.notify_one();
                Outcome::Done
            }
            Ok(Recorded::UnknownSource) => {
                tracing::debug!(%event_type, source_id = event.source_id, "event for a source not followed");
                count(&event_type, "unknown_source");
                Outcome::Done
            }
            Err(e) => {
                count(&event_type, "retried");
                Outcome::Retry(format!("recording the event: {e}"))
            }
        }
    }
}
