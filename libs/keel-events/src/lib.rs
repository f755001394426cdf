//! Keel's event stream: one way to publish and consume, over two transports chosen by
//! configuration.
//!
//! - **Kafka** (`KAFKA_BROKERS` set): an outbox relay moves committed outbox rows to Kafka,
//!   keyed so one org's events stay in one partition; consumer groups commit exactly the
//!   handled offset + 1.
//! - **Embedded log** (no Kafka, `keel up` on PostgreSQL alone): consumers read the outbox table
//!   itself as a log, with per-group positions stored in PostgreSQL.
//!
//! Both read the outbox in transaction order and only past finished transactions, so a row that
//! commits late is never skipped. Handlers see the same [`Message`] and return the same
//! [`Outcome`] either way: at-least-once, in order within a partition.

/// Consumers: the handler API, retries, dead letters and commits.
pub mod consumer;
/// Messages given up on, with their reasons.
pub mod dead_letter;
/// Kafka clients: producer, consumer and admin settings.
pub mod kafka;
/// Messages as handlers see them.
pub mod message;
/// The outbox table read as a log.
pub mod outbox;
/// The relay from the outbox to Kafka.
pub mod relay;
/// A Kafka-protocol broker of a test's own.
#[cfg(feature = "testing")]
pub mod testing;

use keel_db::Owner;
use sqlx::migrate::Migrator;

pub use consumer::{ConsumerConfig, Handler, Outcome};
pub use message::Message;
pub use outbox::{NewMessage, OUTBOX_MIGRATOR, Outbox};
pub use relay::Relay;

/// Consumer positions and dead letters, in schema `keel_events`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/events");

pub const OWNER: Owner = Owner::new("keel_events", &MIGRATOR);

pub use keel_service::KafkaSettings;

/// Which transport carries events.
#[derive(Debug, Clone)]
pub enum Transport {
    Kafka(KafkaSettings),
    Embedded,
}

impl Transport {
    /// Kafka when settings are given, else the embedded log.
    pub fn from_settings(kafka: Option<KafkaSettings>) -> Self {
        kafka.map_or(Self::Embedded, Self::Kafka)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Kafka(_) => "kafka",
            Self::Embedded => "embedded",
        }
    }
}
