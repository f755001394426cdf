//! keel-events held to its contract, over both transports: Kafka (the tansu broker
//! `scripts/test` starts, `KAFKA_BROKERS`) and the embedded log. Real PostgreSQL, a real
//! Kafka-protocol broker, no service.

mod consumers;
mod harness;
mod rebalance;
mod relay;
