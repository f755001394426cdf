//! The settings every service shares, under the originals' names. A service's own flags
//! flatten [`CommonArgs`] beside its specific ones; [`CommonArgs::resolve`] fills in what the
//! originals' variables and Clowder's `ACG_CONFIG` say, with Keel's own names winning.

pub mod clowder;
pub mod database;
mod env;
pub mod kafka;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::Duration,
};

mod secret;

pub use clowder::Clowder;
pub use env::Env;
pub use kafka::KafkaSettings;
pub use secret::Secret;

use crate::http::HttpOptions;

/// Flags and variables common to every service.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// PostgreSQL URL (created when missing). Unset: Clowder's database (ACG_CONFIG), else
    /// DATABASE_HOST/PORT/USER/PASSWORD/NAME, else Koku's DATABASE_SERVICE_NAME service
    /// variables, else postgres://postgres@127.0.0.1:5432/keel.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Most connections the pool opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,

    /// Kafka bootstrap servers. Unset: Clowder's brokers, else QUEUE_HOST:QUEUE_PORT, else
    /// INSIGHTS_KAFKA_HOST:INSIGHTS_KAFKA_PORT, else the embedded log in PostgreSQL.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Key that encrypts secrets at rest: base64 (padded or not) of 16, 24 or 32 bytes.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<Secret>,

    /// Seconds one SQL statement may run (`statement_timeout`).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_SECONDS", default_value_t = 30)]
    pub database_statement_timeout_seconds: u64,

    /// Seconds a session may sit idle inside a transaction (`idle_in_transaction_session_timeout`):
    /// an open transaction holds back every outbox reader on the cluster.
    #[arg(
        long,
        env = "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub database_idle_in_transaction_timeout_seconds: u64,

    /// Seconds in-flight requests, batches and leases get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", default_value_t = 20)]
    pub shutdown_drain_seconds: u64,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, env = "REQUEST_BODY_LIMIT_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub request_body_limit_bytes: usize,

    /// PEM file of extra certificate authorities trusted for outgoing HTTPS (beside the
    /// system's); REQUESTS_CA_BUNDLE is read too.
    #[arg(long, env = "CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
}

/// Where a service listens.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Address to listen on (the originals listen on every interface).
    #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,
    /// Port of the API; 0 picks a free one. Unset: Clowder's publicPort, else the service's
    /// own port.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// A second port serving only /metrics, /livez and /readyz (where the originals' probes
    /// and scrapers look). Unset: Clowder's metricsPort, else 9000; 0 picks one.
    #[arg(long, env = "METRICS_PORT")]
    pub metrics_port: Option<u16>,
}

/// The common settings, resolved.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub database_url: String,
    pub database_max_connections: u32,
    pub session_limits: keel_db::SessionLimits,
    /// `None`: the embedded log.
    pub kafka: Option<KafkaSettings>,
    pub encryption_key: Option<Secret>,
    pub drain: Duration,
    pub http: HttpOptions,
    pub ca_bundle: Option<PathBuf>,
    /// Clowder's app config, when `ACG_CONFIG` names one.
    pub clowder: Option<Clowder>,
}

/// Where a service listens, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub host: IpAddr,
    pub port: u16,
    /// `None`: no separate operations port.
    pub metrics_port: Option<u16>,
}

impl Listen {
    /// Loopback, a free port, no operations port: what tests use.
    pub fn ephemeral() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            metrics_port: None,
        }
    }
}

/// The operations port of a standalone binary when nothing names one (sources-api-go's and
/// Koku's).
pub const DEFAULT_METRICS_PORT: u16 = 9000;

impl CommonArgs {
    /// Reads `ACG_CONFIG` when set and resolves every setting.
    pub fn resolve(&self, env: &Env) -> anyhow::Result<CommonConfig> {
        let clowder = env
            .get("ACG_CONFIG")
            .map(|path| Clowder::load(path.as_ref()))
            .transpose()?;
        Ok(CommonConfig {
            database_url: database::resolve_url(
                self.database_url.as_deref(),
                env,
                clowder.as_ref(),
            )?,
            database_max_connections: self.database_max_connections,
            session_limits: keel_db::SessionLimits {
                statement: Duration::from_secs(self.database_statement_timeout_seconds.max(1)),
                idle_in_transaction: Duration::from_secs(
                    self.database_idle_in_transaction_timeout_seconds.max(1),
                ),
            },
            kafka: kafka::resolve(self.kafka_brokers.as_deref(), env, clowder.as_ref()),
            encryption_key: self.encryption_key.clone(),
            drain: Duration::from_secs(self.shutdown_drain_seconds),
            http: HttpOptions {
                request_timeout: Duration::from_secs(self.request_timeout_seconds),
                body_limit: self.request_body_limit_bytes,
                ..HttpOptions::default()
            },
            ca_bundle: self
                .ca_bundle
                .clone()
                .or_else(|| env.get("REQUESTS_CA_BUNDLE").map(PathBuf::from)),
            clowder,
        })
    }
}

impl ListenArgs {
    /// The port from PORT, Clowder's publicPort or `default_port`; the operations port from
    /// METRICS_PORT, Clowder's metricsPort or [`DEFAULT_METRICS_PORT`].
    pub fn resolve(&self, default_port: u16, common: &CommonConfig) -> Listen {
        let clowder = common.clowder.as_ref();
        Listen {
            host: self.host,
            port: self
                .port
                .or_else(|| clowder.and_then(|c| c.public_port))
                .unwrap_or(default_port),
            metrics_port: Some(
                self.metrics_port
                    .or_else(|| clowder.and_then(|c| c.metrics_port))
                    .unwrap_or(DEFAULT_METRICS_PORT),
            ),
        }
    }
}

impl CommonConfig {
    /// Defaults around a database URL: what tests and `keel up` start from.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            database_max_connections: 5,
            session_limits: keel_db::SessionLimits::default(),
            kafka: None,
            encryption_key: None,
            drain: crate::shutdown::DEFAULT_DRAIN,
            http: HttpOptions::default(),
            ca_bundle: None,
            clowder: None,
        }
    }

    /// The HTTP client for outgoing calls: rustls, the system's roots plus [`Self::ca_bundle`].
    pub fn http_client(&self, timeout: Duration) -> anyhow::Result<reqwest::Client> {
        crate::tls::http_client(self.ca_bundle.as_deref(), timeout)
    }
}
