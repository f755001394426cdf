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
/// Domain types of this service, parsed from requests; no I/O.
pub mod domain;
/// The service's error type and its one `IntoResponse`.
pub mod error;
/// The event outbox: events written in the same transaction as their change.
pub mod events;
/// The OpenAPI document and the routes that serve it.
pub mod openapi;
/// The outbox relay, retention and the status consumer, run beside the API.
mod relaying;
/// One module per resource, each owning its routes.
pub mod resources;
/// Seed data: source types, application types and their metadata.
pub mod seed;
/// Shared state handed to every handler.
pub mod state;
/// The outbox on the event stream, and the availability status consumer.
pub mod stream;
/// The tenant of a request, found or created from its identity.
pub mod tenant;
/// Wire formats: ids as strings, whole-second RFC 3339 timestamps.
pub mod wire;

pub use app::{App, MIGRATOR, OWNER, PREFIXES, openapi_document, prepare_database, router};
pub use config::{Args, Config, SourcesArgs};
/// Encryption of authentication passwords at rest (shared with the listener).
pub use keel_crypto as crypto;
