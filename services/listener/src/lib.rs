//! The listener: turns Platform Sources events into cost-management providers, as Koku's
//! sources listener does, without its weak points. The consumer only records events and
//! queues work in PostgreSQL; workers read the source from sources-api, build the provider in
//! the org's tenant schema and report the availability status back.
//!
//! `main.rs` only parses the configuration and calls [`App::build`] then [`App::run`]; tests
//! build the same `App` on port 0.

/// The read API: sources, providers and Koku's source-status.
pub mod api;
mod app;
/// Configuration from flags and environment variables.
pub mod config;
/// The event consumer: records events and queues operations.
pub mod consumer;
/// Events, provider types and their settings, the sync state machine; no I/O.
pub mod domain;
/// The service's error type and its one `IntoResponse`.
pub mod error;
/// Credential secrets at rest.
pub mod secrets;
/// The Sources REST API client.
pub mod sources_client;
/// Shared state of the HTTP handlers.
pub mod state;
/// Persistence: sync rows, the work queue, providers and the read API's queries.
pub mod store;
/// The workers that carry out queued operations.
pub mod worker;

pub use app::{
    App, MIGRATOR, OUTBOX, OWNER, TEMPLATE, TENANT_MIGRATOR, openapi_document, prepare_database,
    router,
};
pub use config::{
    Args, Config, CredentialKey, DEFAULT_SPARE_TENANTS, DEFAULT_WORKERS, ListenerArgs,
};
