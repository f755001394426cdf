//! `estimatedMonthlyCost`: a documented price table (README, "Broker prices"), not a bill.
//! A medium PostgreSQL database costs 45.50 a month, as in the seed's example.

use super::spec::{Engine, Size, Spec};

/// Monthly price of one instance of a size, for a database.
fn base(size: Size) -> f64 {
    match size {
        Size::Small => 22.75,
        Size::Medium => 45.50,
        Size::Large => 91.00,
        Size::Xlarge => 182.00,
    }
}

/// Engines relative to a database: caches and message queues run lighter.
fn engine_factor(engine: Engine) -> f64 {
    match engine {
        Engine::Postgresql | Engine::Mysql | Engine::Mongodb => 1.0,
        Engine::Redis | Engine::Memcached => 0.8,
        Engine::Kafka | Engine::Rabbitmq | Engine::Nats => 0.5,
    }
}

/// The spec's monthly estimate: three instances when highly available, a tenth more with
/// backups, a twentieth more per Kafka partition beyond the first; rounded to cents.
pub fn monthly(spec: &Spec) -> f64 {
    let instances = if spec.high_availability { 3.0 } else { 1.0 };
    let mut cost = base(spec.size) * engine_factor(spec.engine) * instances;
    if spec.backup.enabled {
        cost *= 1.1;
    }
    if let Some(p) = spec.partitions {
        cost *= 1.0 + 0.05 * f64::from(p.saturating_sub(1));
    }
    (cost * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::{Backup, ResourceType, SpecRequest};

    fn spec(kind: ResourceType, engine: &str, size: &str) -> Spec {
        SpecRequest {
            engine: Some(engine.into()),
            size: Some(size.into()),
            ..SpecRequest::default()
        }
        .check(kind)
        .unwrap()
    }

    #[test]
    fn the_table() {
        let db = ResourceType::Database;
        assert_eq!(monthly(&spec(db, "postgresql", "medium")), 45.50);
        assert_eq!(monthly(&spec(db, "postgresql", "small")), 22.75);
        assert_eq!(monthly(&spec(ResourceType::Cache, "redis", "large")), 72.80);
        let ha = Spec {
            high_availability: true,
            backup: Backup {
                enabled: true,
                ..Backup::default()
            },
            ..spec(db, "postgresql", "medium")
        };
        assert_eq!(monthly(&ha), 150.15);
        let topic = Spec {
            partitions: Some(5),
            ..spec(ResourceType::Topic, "kafka", "small")
        };
        assert_eq!(monthly(&topic), 13.65);
    }
}
