//! The listener's persistence, in the `cost` schema and the tenant schemas: every query the
//! listener makes lives here. Reads for the API are scoped to one org.

/// Provider rows and their shared settings rows.
pub mod providers;
/// The durable work queue.
pub mod queue;
/// What the read API shows, one org at a time.
pub mod read;
/// The sync rows of followed sources.
pub mod sources;
/// Spare tenant schemas, cloned ahead of time.
pub mod spares;
/// A followed source's sync row.
mod sync_row;
/// Customers and tenant schemas, and the spare schemas new tenants take.
pub mod tenants;

pub use queue::{
    Claim, Claimed, claim, complete, enqueue, fail, next_due, postpone, queue_depth, release,
};
pub use sources::{Recorded, SourceRow, enqueue_check, record_events, source, source_for_update};
