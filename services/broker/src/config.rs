//! The broker's configuration: flags, each also read from the environment variable named
//! (the KIDP broker's names where it has one: BROKER_NAME, BROKER_PRIVATE_KEY(_PATH)).

use std::{path::PathBuf, time::Duration};

use keel_service::{CommonArgs, CommonConfig, Env, Listen, ListenArgs, config::Secret};

/// The seed's port.
pub const DEFAULT_PORT: u16 = 8082;
/// The seed serves the broker's metrics on 9090.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Provisions databases, caches and queues on shared servers or Kubernetes, watches them for drift, and reports each change to signed callbacks."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Name sent in `X-KIDP-Broker-Name` with every callback.
    #[arg(long, env = "BROKER_NAME", default_value = "keel-broker")]
    pub broker_name: String,
    /// Bearer tokens accepted on /v1 routes, comma-separated.
    #[arg(long, env = "BROKER_TOKENS", hide_env_values = true)]
    pub broker_tokens: Option<Secret>,
    /// Ed25519 key signing callbacks: base64 of the 32-byte seed, of Go's 64-byte private key,
    /// or of a PKCS#8 document.
    #[arg(long, env = "BROKER_PRIVATE_KEY", hide_env_values = true)]
    pub broker_private_key: Option<Secret>,
    /// File holding the key, as base64 or as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[arg(long, env = "BROKER_PRIVATE_KEY_PATH")]
    pub broker_private_key_path: Option<PathBuf>,
    /// Requests per minute per client address on /v1 routes.
    #[arg(long, env = "BROKER_RATE_LIMIT_PER_MINUTE", default_value_t = 100)]
    pub broker_rate_limit_per_minute: u32,
    /// Provisioning and deprovisioning operations run at once per namespace; more wait.
    #[arg(long, env = "BROKER_NAMESPACE_CONCURRENCY", default_value_t = 10)]
    pub broker_namespace_concurrency: u32,
    /// Operations run at once by this broker; 0 makes it answer the API only, leaving
    /// operations, drift checks and callbacks to replicas that run workers.
    #[arg(long, env = "BROKER_WORKERS", default_value_t = 16)]
    pub broker_workers: usize,
    /// Seconds an operation is leased: a killed broker's operation is resumed after this.
    #[arg(long, env = "BROKER_LEASE_SECONDS", default_value_t = 60)]
    pub broker_lease_seconds: u64,
    /// Seconds between drift checks of each Ready resource.
    #[arg(long, env = "BROKER_OBSERVE_INTERVAL_SECONDS", default_value_t = 60)]
    pub broker_observe_interval_seconds: u64,
    /// Attempts at delivering a callback before it becomes a dead letter.
    #[arg(long, env = "BROKER_CALLBACK_ATTEMPTS", default_value_t = 5)]
    pub broker_callback_attempts: i32,
    /// Seconds one callback attempt may take.
    #[arg(long, env = "BROKER_CALLBACK_TIMEOUT_SECONDS", default_value_t = 30)]
    pub broker_callback_timeout_seconds: u64,
    /// First retry delay of a callback in milliseconds, doubling with jitter (1 s, 2 s, 4 s…).
    #[arg(long, env = "BROKER_CALLBACK_BACKOFF_MS", default_value_t = 1000)]
    pub broker_callback_backoff_ms: u64,
    /// PostgreSQL server databases are provisioned on (a role that may create roles and
    /// databases). Unset: the server of DATABASE_URL.
    #[arg(long, env = "BROKER_POSTGRES_URL", hide_env_values = true)]
    pub broker_postgres_url: Option<String>,
    /// Host clients are told to connect to for PostgreSQL databases. Unset: the URL's host.
    #[arg(long, env = "BROKER_POSTGRES_HOST")]
    pub broker_postgres_host: Option<String>,
    /// MariaDB or MySQL server `mysql` databases are provisioned on, as a user that may create
    /// users and databases and grant on them (`mysql://root:password@host:3306`). Unset: no
    /// MySQL target.
    #[arg(long, env = "BROKER_MYSQL_URL", hide_env_values = true)]
    pub broker_mysql_url: Option<String>,
    /// Host clients are told to connect to for MySQL databases. Unset: the URL's host.
    #[arg(long, env = "BROKER_MYSQL_HOST")]
    pub broker_mysql_host: Option<String>,
    /// Redis server caches are provisioned on, as a user allowed `ACL SETUSER`
    /// (`redis://[user:password@]host:port`). Unset: no Redis target.
    #[arg(long, env = "BROKER_REDIS_URL", hide_env_values = true)]
    pub broker_redis_url: Option<String>,
    /// Host clients are told to connect to for Redis caches. Unset: the URL's host.
    #[arg(long, env = "BROKER_REDIS_HOST")]
    pub broker_redis_host: Option<String>,
    /// Kafka cluster topics are made on (`host:port,...`, reached with the KAFKA_SECURITY_PROTOCOL
    /// and SASL settings). Unset: the cluster of KAFKA_BROKERS, when there is one.
    #[arg(long, env = "BROKER_KAFKA_BROKERS")]
    pub broker_kafka_brokers: Option<String>,
    /// NATS server (with JetStream) streams are made on (`nats://[user:password@]host:4222`).
    /// Unset: no NATS target.
    #[arg(long, env = "BROKER_NATS_URL", hide_env_values = true)]
    pub broker_nats_url: Option<String>,
    /// Host clients are told to connect to for NATS streams. Unset: the URL's host.
    #[arg(long, env = "BROKER_NATS_HOST")]
    pub broker_nats_host: Option<String>,
    /// RabbitMQ management API vhosts are made through, with an administrator's credentials
    /// (`http://user:password@host:15672`). Unset: no RabbitMQ target.
    #[arg(long, env = "BROKER_RABBITMQ_URL", hide_env_values = true)]
    pub broker_rabbitmq_url: Option<String>,
    /// Host clients are told to connect to over AMQP. Unset: the URL's host.
    #[arg(long, env = "BROKER_RABBITMQ_HOST")]
    pub broker_rabbitmq_host: Option<String>,
    /// The AMQP port clients are told.
    #[arg(long, env = "BROKER_RABBITMQ_AMQP_PORT", default_value_t = 5672)]
    pub broker_rabbitmq_amqp_port: u16,
    /// Makes databases and caches on a Kubernetes cluster instead of shared servers:
    /// `statefulset` (a StatefulSet, Service, Secret and volumes each) or `cloudnativepg`
    /// (PostgreSQL as CloudNativePG Clusters, the other engines as StatefulSets). Unset: no
    /// Kubernetes target.
    #[arg(long, env = "BROKER_KUBERNETES", value_enum)]
    pub broker_kubernetes: Option<KubernetesMode>,
    /// The cluster's API server (`https://host:6443`, or `http://127.0.0.1:8001` behind
    /// `kubectl proxy`). Unset: KUBECONFIG, ~/.kube/config or the pod's service account.
    #[arg(long, env = "BROKER_KUBERNETES_API_URL")]
    pub broker_kubernetes_api_url: Option<String>,
    /// Engines made on the cluster, comma-separated (of postgresql, mysql, redis, mongodb).
    #[arg(
        long,
        env = "BROKER_KUBERNETES_ENGINES",
        default_value = "postgresql,mysql,redis,mongodb",
        value_delimiter = ','
    )]
    pub broker_kubernetes_engines: Vec<String>,
    /// Storage class of the volumes made. Unset: the cluster's default.
    #[arg(long, env = "BROKER_KUBERNETES_STORAGE_CLASS")]
    pub broker_kubernetes_storage_class: Option<String>,
    /// Seconds a new resource may take until every replica serves before the attempt fails
    /// (and is retried).
    #[arg(long, env = "BROKER_READY_TIMEOUT_SECONDS", default_value_t = 600)]
    pub broker_ready_timeout_seconds: u64,
    /// Replicas of each partition of the topics made.
    #[arg(long, env = "BROKER_KAFKA_REPLICATION", default_value_t = 1)]
    pub broker_kafka_replication: i32,
}

/// The broker's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub listen: Listen,
    pub name: String,
    pub tokens: Vec<Secret>,
    pub signing_key: Option<Secret>,
    pub signing_key_path: Option<PathBuf>,
    pub rate_limit_per_minute: u32,
    pub namespace_concurrency: u32,
    pub workers: usize,
    pub lease: Duration,
    pub observe_interval: Duration,
    pub callback_attempts: i32,
    pub callback_timeout: Duration,
    pub callback_backoff: Duration,
    pub postgres: Option<SharedTarget>,
    pub mysql: Option<SharedTarget>,
    pub redis: Option<SharedTarget>,
    pub kafka: Option<keel_service::config::KafkaSettings>,
    pub nats: Option<SharedTarget>,
    pub kafka_replication: i32,
    pub rabbitmq: Option<SharedTarget>,
    pub rabbitmq_amqp_port: u16,
    pub kubernetes: Option<KubernetesTarget>,
    pub ready_timeout: Duration,
}

/// How the Kubernetes target makes databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KubernetesMode {
    Statefulset,
    Cloudnativepg,
}

/// A cluster to provision on.
#[derive(Debug, Clone)]
pub struct KubernetesTarget {
    pub mode: KubernetesMode,
    /// `None`: the client's usual inference (KUBECONFIG, in-cluster).
    pub api_url: Option<String>,
    pub engines: Vec<String>,
    pub storage_class: Option<String>,
}

/// A shared server to provision on: the broker's own connection, and the host clients are
/// told (`None`: the URL's host).
#[derive(Debug, Clone)]
pub struct SharedTarget {
    pub admin_url: Secret,
    pub host: Option<String>,
}

fn shared(url: Option<String>, host: Option<String>) -> Option<SharedTarget> {
    url.filter(|u| !u.is_empty()).map(|u| SharedTarget {
        admin_url: Secret::new(u),
        host: host.filter(|h| !h.is_empty()),
    })
}

impl Args {
    pub fn resolve(self, env: &Env) -> anyhow::Result<Config> {
        let common = self.common.resolve(env)?;
        let mut listen = self.listen.resolve(DEFAULT_PORT, &common);
        if self.listen.metrics_port.is_none() && common.clowder.is_none() {
            listen.metrics_port = Some(DEFAULT_METRICS_PORT);
        }
        Ok(self.broker.into_config(common, listen))
    }
}

impl BrokerArgs {
    /// The broker's settings over `common`, listening on `listen` (what `keel up` composes).
    pub fn into_config(self, common: CommonConfig, listen: Listen) -> Config {
        let b = self;
        let tokens = b
            .broker_tokens
            .map(|t| {
                t.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Secret::new(t.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let postgres_url = b
            .broker_postgres_url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| common.database_url.clone());
        Config {
            listen,
            name: b.broker_name,
            tokens,
            signing_key: b.broker_private_key,
            signing_key_path: b.broker_private_key_path,
            rate_limit_per_minute: b.broker_rate_limit_per_minute.max(1),
            namespace_concurrency: b.broker_namespace_concurrency.max(1),
            workers: b.broker_workers,
            lease: Duration::from_secs(b.broker_lease_seconds.max(1)),
            observe_interval: Duration::from_secs(b.broker_observe_interval_seconds.max(1)),
            callback_attempts: b.broker_callback_attempts.max(1),
            callback_timeout: Duration::from_secs(b.broker_callback_timeout_seconds.max(1)),
            callback_backoff: Duration::from_millis(b.broker_callback_backoff_ms.max(1)),
            postgres: shared(Some(postgres_url), b.broker_postgres_host),
            mysql: shared(b.broker_mysql_url, b.broker_mysql_host),
            redis: shared(b.broker_redis_url, b.broker_redis_host),
            kafka: match b.broker_kafka_brokers.filter(|k| !k.is_empty()) {
                // The event stream's security settings, on the brokers named.
                Some(brokers) => Some(keel_service::config::KafkaSettings {
                    brokers,
                    ..common.kafka.clone().unwrap_or_default()
                }),
                None => common.kafka.clone(),
            },
            kafka_replication: b.broker_kafka_replication.max(1),
            nats: shared(b.broker_nats_url, b.broker_nats_host),
            rabbitmq: shared(b.broker_rabbitmq_url, b.broker_rabbitmq_host),
            rabbitmq_amqp_port: b.broker_rabbitmq_amqp_port,
            kubernetes: b.broker_kubernetes.map(|mode| KubernetesTarget {
                mode,
                api_url: b.broker_kubernetes_api_url.filter(|u| !u.is_empty()),
                engines: b.broker_kubernetes_engines,
                storage_class: b.broker_kubernetes_storage_class.filter(|c| !c.is_empty()),
            }),
            ready_timeout: Duration::from_secs(b.broker_ready_timeout_seconds.max(1)),
            common,
        }
    }
}

impl Config {
    /// Defaults for tests: loopback, port 0, a PostgreSQL target on the same server, quick
    /// leases, checks and retries.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let url = database_url.into();
        let mut common = CommonConfig::for_database(url.clone());
        common.encryption_key = Some(Secret::new(keel_crypto::SecretBox::generate_key()));
        Self {
            common,
            listen: Listen::ephemeral(),
            name: "keel-broker".to_owned(),
            tokens: vec![Secret::new("test-token".to_owned())],
            signing_key: None,
            signing_key_path: None,
            rate_limit_per_minute: 10_000,
            namespace_concurrency: 10,
            workers: 4,
            lease: Duration::from_secs(30),
            observe_interval: Duration::from_secs(3600),
            callback_attempts: 5,
            callback_timeout: Duration::from_secs(5),
            callback_backoff: Duration::from_millis(50),
            postgres: shared(Some(url), None),
            mysql: None,
            redis: None,
            kafka: None,
            kafka_replication: 1,
            nats: None,
            rabbitmq: None,
            rabbitmq_amqp_port: 5672,
            kubernetes: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}
