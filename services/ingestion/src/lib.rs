//! Ingestion: what a new cost-management provider triggers (Koku's masu). AWS providers are
//! polled for Cost and Usage Reports in their S3 bucket; OpenShift clusters push operator
//! payloads to the ingress upload endpoint. Each report file is streamed into the tenant's
//! line items with COPY by a durable task queue, each finished manifest is summarized per day,
//! and the provider is marked set up.
//!
//! `main.rs` only parses the configuration and calls [`App::build`] then [`App::run`]; tests
//! build the same `App` on port 0.

/// The upload endpoint and the read API.
pub mod api;
mod app;
/// Configuration from flags and environment variables.
pub mod config;
/// Polling rules, manifests, report layouts; no I/O.
pub mod domain;
/// The service's error type and its one `IntoResponse`.
pub mod error;
/// A report file streamed into PostgreSQL with COPY.
pub mod load;
/// The object stores reports are read from and payloads kept in.
pub mod objects;
/// What queues work: new providers, the sweep, the periodic poll.
pub mod poller;
/// Shared state of the HTTP handlers.
pub mod state;
/// Persistence: queue, uploads, providers, tenant bookkeeping and summaries.
pub mod store;
/// The workers that run queued tasks.
pub mod worker;

pub use app::{App, MIGRATOR, OWNER, openapi_document, router};
pub use config::{Args, Config, DEFAULT_INGRESS_PORT, IngestionArgs, PayloadStore, S3Settings};
