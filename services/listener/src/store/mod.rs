//! The listener's persistence, in the `cost` schema and the tenant schemas: every query the
//! listener makes lives here. Reads for the API are scoped to one org.

/// Customers, tenant schemas, provider rows and their settings.
pub mod providers;
/// The durable work queue.
pub mod queue;
/// What the read API shows, one org at a time.
pub mod read;
/// The sync rows of followed sources.
pub mod sources;

pub use queue::{Claim, claim, complete, enqueue, fail, next_due, queue_depth, release};
pub use sources::{Recorded, SourceRow, enqueue_check, record_events, source, source_for_update};
