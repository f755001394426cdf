//! Keel persistence: PostgreSQL pools, one schema and one migration history per owner, the
//! list query builder, and (feature `testing`) a database per test cloned from a migrated
//! template.

/// Turning a parsed `ListQuery` into SQL against a column whitelist.
pub mod listing;
/// Pools, database creation and per-owner migrations.
pub mod pool;
/// A fresh database per test, cloned from a migrated template.
#[cfg(feature = "testing")]
pub mod testing;

pub use listing::{Column, ColumnKind, Listing, ListingError, Page, Scope, Subresource, Table};
pub use pool::{
    Owner, PING_AFTER_IDLE, SessionLimits, connect, connect_limited, connect_unflushed,
    ensure_database, migrate, migrate_schema, quote_ident,
};
