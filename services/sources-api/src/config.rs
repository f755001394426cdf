use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
};

/// sources-api configuration. Every flag can also be set by the environment variable named.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,

    /// Most connections the pool opens (sources-api-go uses 20).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,

    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Pre-shared keys accepted in `x-rh-sources-psk` for writes (comma-separated).
    #[arg(
        long = "psks",
        env = "SOURCES_PSKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub psks: Vec<String>,

    /// Allow writes without a PSK (development only).
    #[arg(long, env = "BYPASS_RBAC", default_value_t = false, action = clap::ArgAction::Set)]
    pub bypass_rbac: bool,

    /// Source type names left out of the seed data (comma-separated).
    #[arg(long, env = "SOURCE_TYPE_SKIP_LIST", value_delimiter = ',')]
    pub source_type_skip_list: Vec<String>,

    /// Application type names left out of the seed data (comma-separated).
    #[arg(long, env = "APPLICATION_TYPE_SKIP_LIST", value_delimiter = ',')]
    pub application_type_skip_list: Vec<String>,

    /// Key that encrypts authentication passwords at rest: base64 of 32 bytes.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Kafka bootstrap servers. Unset: events stay in PostgreSQL and consumers read the outbox
    /// as a log (the embedded transport).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Partitions of the topics Keel creates when they are missing.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3)]
    pub kafka_topic_partitions: i32,

    /// Replication factor of the topics Keel creates.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION", default_value_t = 1)]
    pub kafka_topic_replication: i32,

    /// Outbox rows the relay reads and publishes per batch (one batch is acknowledged while
    /// the next is read).
    #[arg(long, env = "OUTBOX_RELAY_BATCH", default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub outbox_relay_batch: i64,

    /// Hours outbox rows are kept (like Kafka's `retention.ms`, 7 days by default); rows the
    /// relay has not published yet are kept whatever their age. 0 keeps every row.
    #[arg(long, env = "OUTBOX_RETENTION_HOURS", default_value_t = 168)]
    pub outbox_retention_hours: u64,

    /// Consumer group of the availability status consumer.
    #[arg(
        long,
        env = "STATUS_CONSUMER_GROUP",
        default_value = "sources-api-status-worker"
    )]
    pub status_consumer_group: String,

    /// `<APP>_AVAILABILITY_CHECK_URL` targets by `<APP>`; read from the environment at start
    /// and merged under these.
    #[arg(skip)]
    pub availability_check_urls: HashMap<String, String>,
}

impl Config {
    /// Defaults for a database URL, listening on an ephemeral loopback port: what tests use.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            database_max_connections: 5,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            psks: Vec::new(),
            bypass_rbac: false,
            source_type_skip_list: Vec::new(),
            application_type_skip_list: Vec::new(),
            encryption_key: None,
            kafka_brokers: None,
            kafka_topic_partitions: 3,
            kafka_topic_replication: 1,
            outbox_relay_batch: 10_000,
            outbox_retention_hours: 168,
            status_consumer_group: "sources-api-status-worker".to_owned(),
            availability_check_urls: HashMap::new(),
        }
    }
}
