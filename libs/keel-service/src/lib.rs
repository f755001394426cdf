//! The Keel service kit: what every Keel service is built from, so the services share one
//! shape and a new one starts from it.
//!
//! - [`config`]: the settings every service shares, under the originals' names (sources-api-go,
//!   Koku, Clowder's `ACG_CONFIG`), Keel's own names winning.
//! - [`Shutdown`]: SIGTERM and SIGINT, and the drain deadline.
//! - [`http`]: the layers every router gets (panics, timeouts and oversized bodies answered
//!   in the service's own [`http::ErrorFormat`], request spans and metrics) and the servers
//!   that serve until shutdown, then drain.
//! - [`ops`]: `/health`, `/readiness`, `/metrics` (and Koku's `/livez`, `/readyz`).
//! - [`openapi`]: serving the OpenAPI document and its docs UI.
//! - [`periodic`] and [`retry`]: the "every N seconds" loop and backoff with jitter.
//! - [`Service`] and [`run_all`]: the interface every service exposes, and running several.
//! - [`tls`]: one rustls crypto provider and HTTP clients with extra CAs.

pub mod config;
pub mod http;
pub mod openapi;
pub mod ops;
pub mod periodic;
pub mod retry;
mod service;
mod shutdown;
pub mod tls;

/// What a binary does first: one rustls crypto provider for the process (before any HTTP
/// client exists, the OTLP exporter's included), then telemetry.
pub fn init_process(service: &'static str) -> anyhow::Result<keel_telemetry::TelemetryGuard> {
    tls::install_crypto_provider();
    keel_telemetry::init(service)
}

pub use config::{CommonArgs, CommonConfig, Env, KafkaSettings, Listen, ListenArgs};
pub use service::{Running, Service, run_all, run_binary};
pub use shutdown::{DEFAULT_DRAIN, Shutdown};
