//! The Sources API's HTTP conventions, shared by sources-api and the listener's read API
//! (which answers in the same document): the `{"errors":[{"detail","status"}]}` error
//! document and its [`ErrorFormat`](keel_service::http::ErrorFormat) with echo-style 404/405
//! answers, identity and tenancy from the `x-rh-*` headers, the PSK write policy, strict JSON
//! bodies, path ids, list parameters and the collection envelope.
//!
//! Generic HTTP plumbing (layers, servers, operational routes) is in `keel-service`; a new
//! service with another wire format does not depend on this crate.

/// Identity, tenancy and write access from request headers.
pub mod auth;
/// The collection envelope `{data, meta, links}`.
pub mod collection;
/// The error document `{"errors":[{"detail","status"}]}` and the error type that renders it.
pub mod error;
/// Request extractors: strict JSON bodies, path ids, list parameters.
pub mod extract;

pub use auth::{AuthPolicy, Identified, Tenancy, WriteAccess};
pub use collection::Collection;
pub use error::{ErrorDocument, ErrorObject, HttpError, SourcesErrors};
pub use extract::{ListParams, ListQueryDoc, PathId, StrictJson, decode_strict};
