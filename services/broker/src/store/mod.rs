//! Persistence in the `broker` schema: deployments (also the work queue), their sealed
//! credentials, the callback outbox and the audit trail.

pub mod audit;
pub mod callbacks;
pub mod credentials;
pub mod deployments;
