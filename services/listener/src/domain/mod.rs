//! The listener's domain: events, provider types and their settings, the sync state machine
//! and status texts. No I/O.

pub mod echo;
pub mod event;
pub mod provider_type;
pub mod state;
pub mod status;

#[cfg(test)]
mod event_properties;

pub use event::{EventKind, Parsed, SourceEvent};
pub use provider_type::{CredentialParts, Object, ProviderType};
pub use state::{Desired, OpKind, Plan, Reread, SyncState, Synced, Truth};
pub use status::{Problem, StatusBody, too_long_message};
