//! The deployment broker: the KIDP broker's API, provisioning for real. A provision request
//! is checked and stored with its desired spec; workers create the resource on the target
//! its engine is configured for, drift checks compare it with the spec, and every phase
//! change is reported to the caller's callback URL, signed with Ed25519.

/// The HTTP API.
pub mod api;
mod app;
/// Configuration from flags and environment variables.
pub mod config;
/// Specs, lifecycle, drift, prices, callbacks; no I/O.
pub mod domain;
/// The servers resources are provisioned on.
pub mod drivers;
/// The broker's error type and its one `IntoResponse`.
pub mod error;
/// Callbacks: queued with each phase change, delivered signed.
pub mod notify;
/// The key that signs callbacks.
pub mod signing;
/// Persistence: deployments, credentials, callbacks, audit.
pub mod store;
/// The workers that provision and delete.
pub mod worker;

pub use api::openapi_document;
pub use app::{App, MIGRATOR, OWNER};
pub use config::{Args, Config};
