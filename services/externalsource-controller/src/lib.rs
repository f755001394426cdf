//! The ExternalSource controller: `ExternalSource` objects name HTTP data; the controller
//! fetches it (ETag-aware), runs whitelisted hooks on it, packages it as a deterministic
//! tarball, stores it, serves it over its own HTTP, and publishes a Flux `ExternalArtifact`.

mod app;
pub mod config;
pub mod controller;
pub mod crd;
pub mod domain;
pub mod error;
pub mod generator;
pub mod hooks;
pub mod server;
pub mod storage;

pub use app::App;
pub use config::Config;
