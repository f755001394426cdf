//! The ExternalSource controller: `ExternalSource` objects name HTTP data; the controller
//! fetches it (ETag-aware), runs whitelisted hooks on it, packages it as a deterministic
//! tarball, stores it, serves it over its own HTTP, and publishes a Flux `ExternalArtifact`.

pub mod crd;
pub mod domain;
