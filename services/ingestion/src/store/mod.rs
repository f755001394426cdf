//! Persistence: the task queue and uploads (schema `ingestion`), the providers (`cost`), and
//! each tenant's manifests, line items and summaries (`org<org_id>`, through a `Tenant`).

pub mod providers;
pub mod queue;
pub mod read;
pub mod summary;
pub mod tenant;
pub mod uploads;
