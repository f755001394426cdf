//! The Platform Sources REST API, wire-compatible with sources-api-go: every version prefix,
//! string ids, the `{errors:[…]}` document, the list query language, tenancy from
//! `x-rh-identity`, and PSK-guarded writes.
//!
//! `main.rs` only parses the configuration and calls [`App::build`] then [`App::run`]; tests
//! build the same `App` on port 0 against a database of their own.

mod app;
/// Availability checks requested of applications.
pub mod availability;
/// Configuration from flags and environment variables.
pub mod config;
/// Source creates committed in batches.
pub mod creates;
/// Domain types of this service, parsed from requests; no I/O.
pub mod domain;
/// The service's error type and its one `IntoResponse`.
pub mod error;
/// The caller's tenant as handlers take it.
pub mod extract;
/// The OpenAPI document and the routes that serve it.
pub mod openapi;
/// The outbox relay, retention and the status consumer, run beside the API.
mod relaying;
/// One module per resource, each with its handlers and routes.
pub mod resources;
/// Seed data: source types, application types and their metadata.
pub mod seed;
/// Shared state handed to every handler.
pub mod state;
/// Persistence: one module per resource, behind tenant-scoped accessors.
pub mod store;
/// The availability status consumer.
pub mod stream;
/// Wire formats: each resource's JSON shapes, ids as strings, whole-second timestamps.
pub mod wire;

pub use app::{App, MIGRATOR, OWNER, PREFIXES, openapi_document, prepare_database, router};
pub use config::{Args, Config, SourcesArgs};
/// Encryption of authentication passwords at rest (shared with the listener).
pub use keel_crypto as crypto;
