//! Keel's domain types: identity, tenancy, ids, listings. Pure data and parsing; no I/O.
//!
//! Everything that crosses a wire is parsed into one of these types at the edge, so the code
//! behind the edge never sees an unchecked string.

/// Availability statuses shared by sources, applications, endpoints and authentications.
pub mod availability;
/// Path ids as the Sources API accepts them.
pub mod id;
/// Request identity: the `x-rh-identity` header and the Sources tenancy headers.
pub mod identity;
/// List queries: filters, sorting and paging, as the Sources API parses them.
pub mod listing;
/// The Sources event stream's topics and event types, shared by producer and consumers.
pub mod sources_events;

/// The PostgreSQL notification channel on which the listener announces a provider it created
/// (the payload is the provider's uuid); the ingestion service checks new providers at once
/// when told, and finds any it was not told of at its next sweep.
pub const PROVIDER_CREATED_CHANNEL: &str = "keel_provider_created";

pub use availability::AvailabilityStatus;
pub use id::{Id, IdError};
pub use identity::{Identity, IdentityError, RequestIdentity};
