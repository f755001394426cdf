//! The seed's catalogue: resource types, the engines and versions each can be, sizes. No I/O.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The kinds of resource the broker provisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResourceType {
    Database,
    Cache,
    /// A Kafka topic.
    Topic,
    /// A message queue: a RabbitMQ vhost, a NATS JetStream stream or a Kafka topic.
    Queue,
}

impl ResourceType {
    pub const ALL: [Self; 4] = [Self::Database, Self::Cache, Self::Topic, Self::Queue];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Cache => "cache",
            Self::Topic => "topic",
            Self::Queue => "queue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The engines this type can be, each with the versions the broker accepts (the first is
    /// the default when none is given).
    pub fn engines(self) -> &'static [(Engine, &'static [&'static str])] {
        use Engine::*;
        match self {
            Self::Database => &[
                (Postgresql, &["16", "15", "14", "13", "12"]),
                // MySQL's releases, then MariaDB's (a MariaDB server reports its own).
                (Mysql, &["8.4", "8.0", "5.7", "11.4", "10.11", "10.6"]),
                (Mongodb, &["7.0", "6.0", "5.0"]),
                (Redis, &["7.2", "7.0", "6.2"]),
            ],
            Self::Cache => &[(Redis, &["7.2", "7.0", "6.2"]), (Memcached, &["1.6"])],
            Self::Topic => &[(Kafka, &["3", "4"])],
            Self::Queue => &[
                (Rabbitmq, &["3", "4"]),
                (Nats, &["2"]),
                (Kafka, &["3", "4"]),
            ],
        }
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version a request gets on a target that runs `served` (`15.19`): the one asked for
/// (`None`: the catalogue's version the target runs), refused when the target runs another,
/// so the request fails at once rather than after it was accepted.
pub fn served_version(
    kind: ResourceType,
    engine: Engine,
    asked: Option<&str>,
    served: &str,
) -> Result<String, String> {
    let versions = kind
        .engines()
        .iter()
        .find(|(e, _)| *e == engine)
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let runs = |v: &str| {
        matches!(
            super::drift::version_change(v, served),
            None | Some("patch update")
        )
    };
    match asked {
        Some(v) if runs(v) => Ok(v.to_owned()),
        Some(v) => Err(format!(
            "spec.version {v:?} cannot be served: the {engine} target runs {served}"
        )),
        None => versions.iter().find(|v| runs(v)).map(|v| (*v).to_owned()).ok_or_else(|| {
            format!(
                "the {engine} target runs {served}, which is not one of the versions offered: {}",
                versions.join(", ")
            )
        }),
    }
}

/// The engine behind a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgresql,
    Mysql,
    Mongodb,
    Redis,
    Memcached,
    Kafka,
    Rabbitmq,
    Nats,
}

impl Engine {
    pub const ALL: [Self; 8] = [
        Self::Postgresql,
        Self::Mysql,
        Self::Mongodb,
        Self::Redis,
        Self::Memcached,
        Self::Kafka,
        Self::Rabbitmq,
        Self::Nats,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Mongodb => "mongodb",
            Self::Redis => "redis",
            Self::Memcached => "memcached",
            Self::Kafka => "kafka",
            Self::Rabbitmq => "rabbitmq",
            Self::Nats => "nats",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The port clients connect to by default.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Postgresql => 5432,
            Self::Mysql => 3306,
            Self::Mongodb => 27017,
            Self::Redis => 6379,
            Self::Memcached => 11211,
            Self::Kafka => 9092,
            Self::Rabbitmq => 5672,
            Self::Nats => 4222,
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seed's size table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
    Xlarge,
}

impl Size {
    pub const ALL: [Self; 4] = [Self::Small, Self::Medium, Self::Large, Self::Xlarge];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Xlarge => "xlarge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|z| z.as_str() == s)
    }

    /// CPUs and memory (GiB): small 1/2Gi, medium 2/4Gi, large 4/8Gi, xlarge 8/16Gi.
    pub fn cpu_and_memory_gib(self) -> (u32, u32) {
        match self {
            Self::Small => (1, 2),
            Self::Medium => (2, 4),
            Self::Large => (4, 8),
            Self::Xlarge => (8, 16),
        }
    }

    /// Storage (GiB) of each instance a Kubernetes target makes: 10, 50, 100, 250.
    pub fn storage_gib(self) -> u32 {
        match self {
            Self::Small => 10,
            Self::Medium => 50,
            Self::Large => 100,
            Self::Xlarge => 250,
        }
    }

    /// Connections a shared-server database of this size may open (PostgreSQL's
    /// `CONNECTION LIMIT`, MariaDB's `MAX_USER_CONNECTIONS`).
    pub fn connection_limit(self) -> i32 {
        match self {
            Self::Small => 10,
            Self::Medium => 25,
            Self::Large => 50,
            Self::Xlarge => 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_fit_the_target() {
        use Engine::*;
        use ResourceType::*;
        let ok = |v: &str| Ok::<String, String>(v.to_owned());
        type Case<'a> = (
            ResourceType,
            Engine,
            Option<&'a str>,
            &'a str,
            Result<String, String>,
        );
        let table: [Case<'_>; 7] = [
            (Database, Postgresql, Some("15"), "15.19", ok("15")),
            (Database, Postgresql, None, "15.19", ok("15")),
            (
                Database,
                Postgresql,
                Some("16"),
                "15.19",
                Err("spec.version \"16\" cannot be served: the postgresql target runs 15.19".into()),
            ),
            (Database, Mysql, None, "10.11.19", ok("10.11")),
            (Database, Mysql, Some("8.0"), "8.0.36", ok("8.0")),
            (Cache, Redis, None, "7.0.15", ok("7.0")),
            (
                Database,
                Postgresql,
                None,
                "9.6.1",
                Err("the postgresql target runs 9.6.1, which is not one of the versions offered: 16, 15, 14, 13, 12".into()),
            ),
        ];
        for (kind, engine, asked, served, want) in table {
            assert_eq!(
                served_version(kind, engine, asked, served),
                want,
                "{engine} {asked:?} {served}"
            );
        }
    }
}
