//! The servers resources are provisioned on. Each driver creates idempotently (what exists is
//! left or corrected), observes what exists, and deletes tolerating what is already gone.

pub mod kafka;
pub mod kubernetes;
pub mod mysql;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::domain::{
    drift::{Desired, Observed},
    spec::{Engine, ResourceType, Spec},
};

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The server could not be reached or answered with trouble: worth another try.
    #[error("{0}")]
    Transient(String),
    /// The server refused what was asked: retrying will not help.
    #[error("{0}")]
    Refused(String),
}

impl DriverError {
    pub fn unreachable(e: impl std::fmt::Display) -> Self {
        Self::Transient(e.to_string())
    }

    /// SQLSTATE classes 42 (syntax, privileges), 28 (authorization) and 54 (limits) are
    /// refusals; connection trouble and the rest are transient.
    pub fn from_sql(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d)
                if d.code()
                    .is_some_and(|c| ["42", "28", "54"].iter().any(|k| c.starts_with(k))) =>
            {
                Self::Refused(d.message().to_owned())
            }
            _ => Self::Transient(e.to_string()),
        }
    }

    /// Connection trouble is transient; what the server answered (a refused ACL rule, no
    /// permission) is a refusal.
    pub fn from_redis(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            Self::Transient(e.to_string())
        } else {
            Self::Refused(e.to_string())
        }
    }
}

mod identity;

pub use identity::{Credentials, Names};

/// `1.5 GiB`-style sizes in Kubernetes' units (`5Gi`, `512Mi`, `8Ki`).
pub(crate) fn human_bytes(bytes: i64) -> String {
    const UNITS: [(&str, i64); 3] = [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{}{unit}", (bytes + size - 1) / size);
        }
    }
    bytes.to_string()
}

/// The broker's own pool on a SQL target: lazy (a server that is down makes the broker not
/// ready, not fail to start), `connections` of them (one per worker and one for drift checks
/// and readiness, so no operation waits behind another's DROP DATABASE), statement logs off
/// (a slow CREATE ROLE would be logged whole, its password hash with it).
fn admin_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
    connections: u32,
) -> sqlx::Pool<DB> {
    use sqlx::ConnectOptions as _;
    let options = options
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::MAX);
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// How long a target's version is trusted before it is asked again.
const VERSION_TTL: Duration = Duration::from_secs(60);

/// The configured targets, by engine.
#[derive(Debug, Clone, Default)]
pub struct Drivers {
    pub postgres: Option<postgres::SharedPostgres>,
    pub mysql: Option<mysql::SharedMysql>,
    pub redis: Option<redis::SharedRedis>,
    pub kafka: Option<kafka::KafkaTopics>,
    pub nats: Option<nats::NatsStreams>,
    pub rabbitmq: Option<rabbitmq::SharedRabbitMq>,
    /// Databases and caches of the engines listed, on a cluster instead of shared servers.
    pub kubernetes: Option<(kubernetes::KubernetesDatabases, Vec<Engine>)>,
    /// Each target's version as last asked, and when.
    versions: Arc<Mutex<HashMap<&'static str, (Instant, String)>>>,
}

/// Where a spec would be provisioned, or why it cannot be.
pub fn target_for(
    drivers: &Drivers,
    kind: ResourceType,
    engine: Engine,
) -> Result<&'static str, String> {
    let on_cluster = drivers
        .kubernetes
        .as_ref()
        .is_some_and(|(_, engines)| engines.contains(&engine));
    match (kind, engine) {
        (ResourceType::Database | ResourceType::Cache, _) if on_cluster => Ok("kubernetes"),
        (ResourceType::Database, Engine::Postgresql) if drivers.postgres.is_some() => {
            Ok("postgresql")
        }
        (ResourceType::Database, Engine::Mysql) if drivers.mysql.is_some() => Ok("mysql"),
        (ResourceType::Topic | ResourceType::Queue, Engine::Kafka) if drivers.kafka.is_some() => {
            Ok("kafka")
        }
        (ResourceType::Queue, Engine::Nats) if drivers.nats.is_some() => Ok("nats"),
        (ResourceType::Queue, Engine::Rabbitmq) if drivers.rabbitmq.is_some() => Ok("rabbitmq"),
        (ResourceType::Database | ResourceType::Cache, Engine::Redis)
            if drivers.redis.is_some() =>
        {
            Ok("redis")
        }
        _ => Err(format!(
            "no target of this broker serves {kind} with engine {engine}; configured: {}",
            drivers.configured().join(", ")
        )),
    }
}

/// What a drift check compares on `target`: the version always, and the settings that
/// target sets from the spec.
pub fn desired<'a>(target: &str, spec: &'a Spec) -> Desired<'a> {
    let mut desired = Desired {
        version: &spec.version,
        ..Desired::default()
    };
    if matches!(target, "postgresql" | "mysql" | "rabbitmq") {
        desired.connection_limit = Some(spec.size.connection_limit());
    }
    if target == "kafka" {
        desired.partitions = spec.partitions;
    }
    if target == "kubernetes" {
        desired.replicas = Some(if spec.high_availability { 3 } else { 1 });
        desired.resources =
            kubernetes::objects::resources_text(&kubernetes::objects::resources(spec));
    }
    desired
}

/// One configured target.
enum Driver<'a> {
    Postgres(&'a postgres::SharedPostgres),
    Mysql(&'a mysql::SharedMysql),
    Redis(&'a redis::SharedRedis),
    Kafka(&'a kafka::KafkaTopics),
    Nats(&'a nats::NatsStreams),
    Rabbitmq(&'a rabbitmq::SharedRabbitMq),
    Kubernetes(&'a kubernetes::KubernetesDatabases),
}

impl Drivers {
    pub fn new(
        postgres: Option<postgres::SharedPostgres>,
        mysql: Option<mysql::SharedMysql>,
        redis: Option<redis::SharedRedis>,
        kafka: Option<kafka::KafkaTopics>,
        nats: Option<nats::NatsStreams>,
        rabbitmq: Option<rabbitmq::SharedRabbitMq>,
    ) -> Self {
        Self {
            postgres,
            mysql,
            redis,
            kafka,
            nats,
            rabbitmq,
            ..Self::default()
        }
    }

    /// Makes databases and caches of `engines` on a cluster.
    pub fn with_kubernetes(
        mut self,
        cluster: kubernetes::KubernetesDatabases,
        engines: Vec<Engine>,
    ) -> Self {
        self.kubernetes = Some((cluster, engines));
        self
    }

    pub fn configured(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.postgres.is_some() {
            out.push("database/postgresql");
        }
        if self.mysql.is_some() {
            out.push("database/mysql");
        }
        if self.redis.is_some() {
            out.push("cache/redis");
            out.push("database/redis");
        }
        if self.kafka.is_some() {
            out.push("topic/kafka");
            out.push("queue/kafka");
        }
        if self.nats.is_some() {
            out.push("queue/nats");
        }
        if self.rabbitmq.is_some() {
            out.push("queue/rabbitmq");
        }
        if let Some((_, engines)) = &self.kubernetes {
            for e in engines {
                out.push(match e {
                    Engine::Postgresql => "database/postgresql (kubernetes)",
                    Engine::Mysql => "database/mysql (kubernetes)",
                    Engine::Mongodb => "database/mongodb (kubernetes)",
                    _ => "database and cache/redis (kubernetes)",
                });
            }
        }
        out
    }

    fn driver(&self, target: &str) -> Result<Driver<'_>, DriverError> {
        let missing = || DriverError::Refused(format!("no {target} target is configured"));
        match target {
            "postgresql" => self
                .postgres
                .as_ref()
                .map(Driver::Postgres)
                .ok_or_else(missing),
            "mysql" => self.mysql.as_ref().map(Driver::Mysql).ok_or_else(missing),
            "redis" => self.redis.as_ref().map(Driver::Redis).ok_or_else(missing),
            "kafka" => self.kafka.as_ref().map(Driver::Kafka).ok_or_else(missing),
            "nats" => self.nats.as_ref().map(Driver::Nats).ok_or_else(missing),
            "rabbitmq" => self
                .rabbitmq
                .as_ref()
                .map(Driver::Rabbitmq)
                .ok_or_else(missing),
            "kubernetes" => self
                .kubernetes
                .as_ref()
                .map(|(k, _)| Driver::Kubernetes(k))
                .ok_or_else(missing),
            other => Err(DriverError::Refused(format!("unknown target {other}"))),
        }
    }

    /// Every configured target, for readiness.
    pub async fn check_all(&self) -> Result<(), String> {
        for target in [
            "postgresql",
            "mysql",
            "redis",
            "kafka",
            "nats",
            "rabbitmq",
            "kubernetes",
        ] {
            if let Ok(driver) = self.driver(target) {
                driver
                    .version()
                    .await
                    .map_err(|e| format!("{target} target not accessible: {e}"))?;
            }
        }
        Ok(())
    }

    /// The version `target`'s server runs (asked at most once a minute); `None` when the
    /// target runs whatever is asked (a cluster) or tells no version (Kafka); an error when
    /// it cannot be asked now.
    pub async fn served_version(&self, target: &'static str) -> Result<Option<String>, String> {
        let cached = self
            .versions
            .lock()
            .ok()
            .and_then(|v| v.get(target).cloned());
        if let Some((at, v)) = cached
            && at.elapsed() < VERSION_TTL
        {
            return Ok(Some(v));
        }
        let asked = self
            .driver(target)
            .map_err(|e| e.to_string())?
            .version()
            .await;
        let Some(version) = asked.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if let Ok(mut versions) = self.versions.lock() {
            versions.insert(target, (Instant::now(), version.clone()));
        }
        Ok(Some(version))
    }

    /// The credentials a new deployment on `target` gets.
    pub fn new_credentials(&self, target: &str, names: &Names, spec: &Spec) -> Credentials {
        match target {
            "kubernetes" => kubernetes::KubernetesDatabases::new_credentials(names, spec),
            "redis" => Credentials {
                key_prefix: Some(redis::SharedRedis::prefix(names)),
                ..Credentials::generate(&names.object, None)
            },
            // The cluster's own authentication applies; a topic or stream has no user of its own.
            "kafka" | "nats" => Credentials {
                username: String::new(),
                password: String::new(),
                database: None,
                key_prefix: (target == "nats").then(|| nats::NatsStreams::subjects(names)),
                topic: Some(names.object.clone()),
            },
            _ => Credentials::generate(&names.object, Some(&names.object)),
        }
    }

    /// Creates or corrects the resource. Returns the endpoint.
    pub async fn apply(
        &self,
        target: &str,
        names: &Names,
        spec: &Spec,
        credentials: &Credentials,
    ) -> Result<(String, u16), DriverError> {
        let (host, port) = match self.driver(target)? {
            Driver::Postgres(pg) => {
                pg.apply(names, credentials, spec.size.connection_limit())
                    .await?;
                pg.endpoint()
            }
            Driver::Mysql(my) => {
                my.apply(names, credentials, spec.size.connection_limit())
                    .await?;
                my.endpoint()
            }
            Driver::Redis(r) => {
                r.apply(names, credentials).await?;
                r.endpoint()
            }
            Driver::Kafka(k) => {
                k.apply(names, spec).await?;
                k.endpoint()
            }
            Driver::Nats(n) => {
                n.apply(names, spec).await?;
                n.endpoint()
            }
            Driver::Rabbitmq(r) => {
                r.apply(names, credentials, spec.size.connection_limit())
                    .await?;
                r.endpoint()
            }
            Driver::Kubernetes(k) => {
                k.apply(names, spec, credentials).await?;
                return Ok(k.endpoint(names, spec));
            }
        };
        Ok((host.to_owned(), port))
    }

    pub async fn observe(
        &self,
        target: &str,
        names: &Names,
        spec: &Spec,
    ) -> Result<Observed, DriverError> {
        match self.driver(target)? {
            Driver::Postgres(pg) => pg.observe(names).await,
            Driver::Mysql(my) => my.observe(names).await,
            Driver::Redis(r) => r.observe(names).await,
            Driver::Kafka(k) => k.observe(names).await,
            Driver::Nats(n) => n.observe(names).await,
            Driver::Rabbitmq(r) => r.observe(names).await,
            Driver::Kubernetes(k) => k.observe(names, spec).await,
        }
    }

    pub async fn delete(
        &self,
        target: &str,
        names: &Names,
        spec: &Spec,
    ) -> Result<(), DriverError> {
        match self.driver(target)? {
            Driver::Postgres(pg) => pg.delete(names).await,
            Driver::Mysql(my) => my.delete(names).await,
            Driver::Redis(r) => r.delete(names).await,
            Driver::Kafka(k) => k.delete(names).await,
            Driver::Nats(n) => n.delete(names).await,
            Driver::Rabbitmq(r) => r.delete(names).await,
            Driver::Kubernetes(k) => k.delete(names, spec).await,
        }
    }
}

impl Driver<'_> {
    /// The server's version; `None` when it answers but tells none (Kafka).
    async fn version(&self) -> Result<Option<String>, DriverError> {
        match self {
            Self::Postgres(pg) => pg.version().await.map(Some),
            Self::Mysql(my) => my.version().await.map(Some),
            Self::Redis(r) => r.version().await.map(Some),
            Self::Kafka(k) => k.ping().await.map(|()| None),
            Self::Nats(n) => n.version().await.map(Some),
            Self::Rabbitmq(r) => r.version().await.map(Some),
            // A cluster runs whichever image is asked for.
            Self::Kubernetes(k) => k.ping().await.map(|()| None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_kubernetes_units() {
        assert_eq!(human_bytes(7_000_000), "7Mi");
        assert_eq!(human_bytes(5 << 30), "5Gi");
        assert_eq!(human_bytes(512), "512");
    }
}
