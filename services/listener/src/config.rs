use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

/// Listener configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub host: IpAddr,
    pub port: u16,
    /// sources-api's address, `http://host:port`.
    pub sources_api_url: String,
    pub sources_api_prefix: String,
    pub sources_internal_api_prefix: String,
    /// Sent as `x-rh-sources-psk` on every call.
    pub sources_psk: Option<String>,
    pub sources_api_timeout: Duration,
    /// Unset: the embedded log (the outbox in the same database).
    pub kafka_brokers: Option<String>,
    pub topic: String,
    pub consumer_group: String,
    /// Koku's `SCHEMA_SUFFIX`, appended to org ids.
    pub schema_suffix: String,
    /// Operations run at the same time.
    pub workers: usize,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    /// Base64 of 32 bytes: seals credential secrets at rest.
    pub encryption_key: Option<String>,
}

pub const EVENT_STREAM_TOPIC: &str = "platform.sources.event-stream";

impl Config {
    /// Defaults for tests: loopback, port 0, fast retries.
    pub fn for_database(
        database_url: impl Into<String>,
        sources_api_url: impl Into<String>,
    ) -> Self {
        Self {
            database_url: database_url.into(),
            database_max_connections: 10,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            sources_api_url: sources_api_url.into(),
            sources_api_prefix: "/api/sources/v1.0".to_owned(),
            sources_internal_api_prefix: "/internal/v1.0".to_owned(),
            sources_psk: None,
            sources_api_timeout: Duration::from_secs(5),
            kafka_brokers: None,
            topic: EVENT_STREAM_TOPIC.to_owned(),
            consumer_group: "hccm-sources".to_owned(),
            schema_suffix: String::new(),
            workers: 4,
            max_attempts: 10,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            lease: Duration::from_secs(30),
            encryption_key: None,
        }
    }
}

/// The listener's flags; every one can also be set by the environment variable named.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// PostgreSQL URL; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,
    #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Port of the read API and the operational routes.
    #[arg(long, env = "PORT", default_value_t = 8001)]
    pub port: u16,
    #[command(flatten)]
    pub link: LinkArgs,
    /// Kafka bootstrap servers; unset: the embedded log in PostgreSQL.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Base64 of 32 bytes; seals credential secrets at rest.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
}

/// How the listener reaches sources-api and works its queue; shared by `listener` and `keel up`.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    /// sources-api's address.
    #[arg(long, env = "SOURCES_API_URL", default_value = "http://127.0.0.1:8000")]
    pub sources_api_url: String,
    /// Path of the public Sources API (Koku's default works with sources-api-go).
    #[arg(long, env = "SOURCES_API_PREFIX", default_value = "/api/sources/v1.0")]
    pub sources_api_prefix: String,
    #[arg(
        long,
        env = "SOURCES_INTERNAL_API_PREFIX",
        default_value = "/internal/v1.0"
    )]
    pub sources_internal_api_prefix: String,
    /// Pre-shared key sent as `x-rh-sources-psk`.
    #[arg(long, env = "SOURCES_PSK", hide_env_values = true)]
    pub sources_psk: Option<String>,
    /// Seconds one sources-api call may take.
    #[arg(long, env = "SOURCES_API_TIMEOUT", default_value_t = 10)]
    pub sources_api_timeout: u64,
    /// Consumer group on the event stream.
    #[arg(long, env = "SOURCES_CONSUMER_GROUP", default_value = "hccm-sources")]
    pub consumer_group: String,
    /// Appended to org ids (Koku's SCHEMA_SUFFIX).
    #[arg(long, env = "SCHEMA_SUFFIX", default_value = "")]
    pub schema_suffix: String,
    /// Provider operations run at the same time.
    #[arg(long, env = "LISTENER_WORKERS", default_value_t = 8)]
    pub workers: usize,
    /// Attempts before an operation is parked.
    #[arg(long, env = "LISTENER_MAX_ATTEMPTS", default_value_t = 12)]
    pub max_attempts: i32,
    /// First retry delay in milliseconds; doubles up to LISTENER_RETRY_MAX_SECONDS.
    #[arg(long, env = "LISTENER_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    #[arg(long, env = "LISTENER_RETRY_MAX_SECONDS", default_value_t = 300)]
    pub retry_max_seconds: u64,
}

impl Args {
    pub fn into_config(self) -> Config {
        let mut config =
            self.link
                .into_config(self.database_url, self.kafka_brokers, self.encryption_key);
        config.database_max_connections = self.database_max_connections;
        config.host = self.host;
        config.port = self.port;
        config
    }
}

impl LinkArgs {
    pub fn into_config(
        self,
        database_url: String,
        kafka_brokers: Option<String>,
        encryption_key: Option<String>,
    ) -> Config {
        let sanitized: String = self
            .schema_suffix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Config {
            database_url,
            database_max_connections: 20,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8001,
            sources_api_url: self.sources_api_url,
            sources_api_prefix: self.sources_api_prefix,
            sources_internal_api_prefix: self.sources_internal_api_prefix,
            sources_psk: self.sources_psk,
            sources_api_timeout: Duration::from_secs(self.sources_api_timeout),
            kafka_brokers,
            topic: EVENT_STREAM_TOPIC.to_owned(),
            consumer_group: self.consumer_group,
            schema_suffix: sanitized,
            workers: self.workers.max(1),
            max_attempts: self.max_attempts.max(1),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_secs(self.retry_max_seconds),
            lease: Duration::from_secs(60),
            encryption_key,
        }
    }
}
