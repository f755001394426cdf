use std::collections::HashMap;

use keel_service::{CommonArgs, CommonConfig, Env, Listen, ListenArgs};

/// sources-api's port when PORT is unset (sources-api-go's).
pub const DEFAULT_PORT: u16 = 8000;

/// The `sources-api` binary's flags: the common ones and sources-api's own.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "The Platform Sources REST API.")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub sources: SourcesArgs,
}

/// sources-api's own flags; every one can also be set by the environment variable named.
#[derive(Debug, Clone, clap::Args)]
pub struct SourcesArgs {
    /// Pre-shared keys accepted in `x-rh-sources-psk` for writes (comma-separated).
    #[arg(
        long = "psks",
        env = "SOURCES_PSKS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub psks: Vec<String>,

    /// Allow writes without a PSK (development only). The internal API still needs one.
    #[arg(long, env = "BYPASS_RBAC", default_value_t = false, action = clap::ArgAction::Set)]
    pub bypass_rbac: bool,

    /// Open the internal API (plaintext credentials, every tenant's sources) to callers
    /// without a PSK (development only).
    #[arg(
        long,
        env = "SOURCES_INTERNAL_API_OPEN",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub internal_api_open: bool,

    /// Source type names left out of the seed data (comma-separated).
    #[arg(long, env = "SOURCE_TYPE_SKIP_LIST", value_delimiter = ',')]
    pub source_type_skip_list: Vec<String>,

    /// Application type names left out of the seed data (comma-separated).
    #[arg(long, env = "APPLICATION_TYPE_SKIP_LIST", value_delimiter = ',')]
    pub application_type_skip_list: Vec<String>,

    /// Availability-check calls in flight at once; checks beyond them are skipped and counted
    /// (`sources_availability_checks_skipped_total`).
    #[arg(long, env = "AVAILABILITY_CHECK_CONCURRENCY", default_value_t = 64)]
    pub availability_check_concurrency: usize,

    /// Most source creates committed together (`POST /sources` requests arriving at once share
    /// one statement and one commit); 1 commits each on its own.
    #[arg(long, env = "SOURCES_CREATE_BATCH", default_value_t = 64)]
    pub create_batch: usize,

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
}

/// sources-api's configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub listen: Listen,
    pub psks: Vec<String>,
    pub bypass_rbac: bool,
    pub internal_api_open: bool,
    pub availability_check_concurrency: usize,
    /// Most source creates committed together.
    pub create_batch: usize,
    pub source_type_skip_list: Vec<String>,
    pub application_type_skip_list: Vec<String>,
    pub kafka_topic_partitions: i32,
    pub kafka_topic_replication: i32,
    pub outbox_relay_batch: i64,
    pub outbox_retention_hours: u64,
    pub status_consumer_group: String,
    /// `<APP>_AVAILABILITY_CHECK_URL` targets by `<APP>` (e.g. `COST_MANAGEMENT`).
    pub availability_check_urls: HashMap<String, String>,
}

impl Args {
    /// The standalone binary's configuration: flags, then the environment's aliases.
    pub fn resolve(self, env: &Env) -> anyhow::Result<Config> {
        let common = self.common.resolve(env)?;
        let listen = self.listen.resolve(DEFAULT_PORT, &common);
        Ok(Config::new(common, listen, self.sources, env))
    }
}

impl Config {
    pub fn new(common: CommonConfig, listen: Listen, args: SourcesArgs, env: &Env) -> Self {
        Self {
            common,
            listen,
            psks: args.psks,
            bypass_rbac: args.bypass_rbac,
            internal_api_open: args.internal_api_open,
            availability_check_concurrency: args.availability_check_concurrency.max(1),
            create_batch: args.create_batch.max(1),
            source_type_skip_list: args.source_type_skip_list,
            application_type_skip_list: args.application_type_skip_list,
            kafka_topic_partitions: args.kafka_topic_partitions,
            kafka_topic_replication: args.kafka_topic_replication,
            outbox_relay_batch: args.outbox_relay_batch,
            outbox_retention_hours: args.outbox_retention_hours,
            status_consumer_group: args.status_consumer_group,
            availability_check_urls: crate::availability::urls_from_env(env),
        }
    }

    /// Defaults for a database URL, listening on an ephemeral loopback port: what tests use.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            common: CommonConfig::for_database(database_url),
            listen: Listen::ephemeral(),
            psks: Vec::new(),
            bypass_rbac: false,
            internal_api_open: false,
            availability_check_concurrency: 64,
            create_batch: 64,
            source_type_skip_list: Vec::new(),
            application_type_skip_list: Vec::new(),
            kafka_topic_partitions: 3,
            kafka_topic_replication: 1,
            outbox_relay_batch: 10_000,
            outbox_retention_hours: 168,
            status_consumer_group: "sources-api-status-worker".to_owned(),
            availability_check_urls: HashMap::new(),
        }
    }
}
