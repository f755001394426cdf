//! Keel's HTTP kit: what every Keel HTTP service shares. The Sources error document, identity,
//! tenancy and write-access extractors, strict JSON bodies, path ids, list parameters and the
//! collection envelope, and the operational routes and middleware (`/health`, `/readiness`,
//! `/metrics`, request spans, request ids, timing, trailing slashes).

/// Identity, tenancy and write access from request headers.
pub mod auth;
/// The collection envelope `{data, meta, links}`.
pub mod collection;
/// The error document `{"errors":[{"detail","status"}]}` and the error type that renders it.
pub mod error;
/// Request extractors: strict JSON bodies, path ids, list parameters.
pub mod extract;
/// `/health`, `/readiness`, `/metrics` and the middleware every service runs.
pub mod ops;

pub use auth::{AuthPolicy, Identified, Tenancy, WriteAccess};
pub use collection::Collection;
pub use error::{ErrorDocument, ErrorObject, HttpError};
pub use extract::{ListParams, ListQueryDoc, PathId, StrictJson, decode_strict};
