//! End to end: sources are created through sources-api's REST API, their events reach the
//! listener (embedded log, or Kafka on the tansu broker), and the listener builds providers in
//! tenant schemas and reports the status back through the same REST API. Real PostgreSQL,
//! real HTTP.

mod batches;
mod contention;
mod lifecycle;
mod ordering;
mod resilience;
mod spares;
mod stack;
mod types;
