//! What the controller decides, without I/O: whitelists, hook policies, artifacts, garbage
//! collection, backoff, conditions.

pub mod artifact;
pub mod conditions;
pub mod policy;
pub mod whitelist;
