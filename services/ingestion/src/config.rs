use std::{path::PathBuf, time::Duration};

use chrono::TimeDelta;
use keel_service::{CommonArgs, CommonConfig, Env, Listen, ListenArgs, config::Secret};

use crate::domain::polling::Rules;

/// The upload endpoint's port when neither PORT nor INGRESS_PORT is set.
pub const DEFAULT_INGRESS_PORT: u16 = 8003;

/// Tasks run at the same time when INGESTION_WORKERS is unset.
pub const DEFAULT_WORKERS: usize = 4;

/// The ingress' default payload limit (100 MiB).
pub const DEFAULT_MAX_UPLOAD: usize = 100 * 1024 * 1024;

/// The `ingestion` binary's flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Loads cost reports (AWS CUR from S3, OpenShift operator uploads) into tenant schemas."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub ingestion: IngestionArgs,
}

/// How ingestion polls, where it reads and keeps reports; every flag can also be set by the
/// environment variable named (Koku's and the ingress' names where they have one).
#[derive(Debug, Clone, clap::Args)]
pub struct IngestionArgs {
    /// The upload endpoint's port (the Insights ingress'); PORT wins when set.
    #[arg(long, env = "INGRESS_PORT", default_value_t = DEFAULT_INGRESS_PORT)]
    pub ingress_port: u16,
    /// Largest payload accepted, in bytes.
    #[arg(long, env = "INGRESS_MAXSIZE", default_value_t = DEFAULT_MAX_UPLOAD)]
    pub max_upload: usize,
    /// Bucket uploaded payloads are kept in (on the S3 endpoint below). Unset: a directory.
    #[arg(long, env = "INGRESS_STAGEBUCKET")]
    pub stage_bucket: Option<String>,
    /// Directory uploaded payloads are kept in when no bucket is named (default
    /// `data/ingestion`; `<data dir>/ingestion` under `keel up`).
    #[arg(long, env = "INGESTION_DATA_DIR")]
    pub ingestion_data_dir: Option<PathBuf>,
    /// Run the periodic report check (Koku's SCHEDULE_REPORT_CHECKS).
    #[arg(long, env = "SCHEDULE_REPORT_CHECKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub schedule_report_checks: bool,
    /// Seconds between report checks (Koku's beat runs hourly).
    #[arg(long, env = "REPORT_CHECK_INTERVAL", default_value_t = 3600)]
    pub report_check_interval: u64,
    /// Seconds before a polled provider is polled again.
    #[arg(long, env = "POLLING_TIMER", default_value_t = 86_400)]
    pub polling_timer: i64,
    /// The providers due are spread over this many checks.
    #[arg(long, env = "POLLING_COUNT", default_value_t = 21)]
    pub polling_count: u32,
    /// Days a provider whose last poll has produced no data yet is left alone.
    #[arg(long, env = "PROCESSING_WAIT_TIMER", default_value_t = 3)]
    pub processing_wait_timer: i64,
    /// Months read until a provider is set up.
    #[arg(long, env = "INITIAL_INGEST_NUM_MONTHS", default_value_t = 3)]
    pub initial_ingest_num_months: u32,
    /// Always read INITIAL_INGEST_NUM_MONTHS months.
    #[arg(long, env = "INITIAL_INGEST_OVERRIDE", default_value_t = false, action = clap::ArgAction::Set)]
    pub initial_ingest_override: bool,
    /// Tasks (files, summaries, checks) run at the same time.
    #[arg(long, env = "INGESTION_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub ingestion_workers: usize,
    /// Seconds a claimed task is leased: a task of a worker that died is taken up again
    /// after this.
    #[arg(long, env = "INGESTION_LEASE_SECONDS", default_value_t = 300)]
    pub ingestion_lease_seconds: u64,
    /// An S3-compatible endpoint (moto, MinIO); unset: AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<Secret>,
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<Secret>,
    /// Region of buckets whose billing source names none.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
}

/// S3 access, as AWS tools read it from the environment.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
}

/// Where uploaded payloads are kept.
#[derive(Debug, Clone)]
pub enum PayloadStore {
    Bucket(String),
    Directory(PathBuf),
    Memory,
}

/// Ingestion configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub listen: Listen,
    pub max_upload: usize,
    pub payloads: PayloadStore,
    pub s3: S3Settings,
    /// `None`: no periodic check (new providers are still checked).
    pub report_check_interval: Option<Duration>,
    pub rules: Rules,
    pub workers: usize,
    /// How long a claimed task is leased.
    pub lease: Duration,
    /// Transient failures of a task before it counts as failed.
    pub max_attempts: i32,
    pub retry_base: Duration,
    /// How often new providers and waiting uploads are looked for besides notifications.
    pub sweep_interval: Duration,
}

impl Args {
    pub fn resolve(self, env: &Env) -> anyhow::Result<Config> {
        let common = self.common.resolve(env)?;
        let listen = self.listen.resolve(self.ingestion.ingress_port, &common);
        Ok(self.ingestion.into_config(common, listen, env))
    }
}

impl IngestionArgs {
    /// `env` supplies the AWS tools' aliases (`S3_ENDPOINT`, `AWS_DEFAULT_REGION`).
    pub fn into_config(self, common: CommonConfig, listen: Listen, env: &Env) -> Config {
        let endpoint = self
            .aws_endpoint_url
            .filter(|e| !e.is_empty())
            .or_else(|| env.get("S3_ENDPOINT").map(str::to_owned))
            .map(|e| e.trim_end_matches('/').to_owned());
        let region = self
            .aws_region
            .filter(|r| !r.is_empty())
            .or_else(|| env.get("AWS_DEFAULT_REGION").map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let payloads = match self.stage_bucket.filter(|b| !b.is_empty()) {
            Some(bucket) => PayloadStore::Bucket(bucket),
            None => PayloadStore::Directory(
                self.ingestion_data_dir
                    .unwrap_or_else(|| PathBuf::from("data/ingestion")),
            ),
        };
        Config {
            common,
            listen,
            max_upload: self.max_upload,
            payloads,
            s3: S3Settings {
                endpoint,
                region,
                access_key_id: self.aws_access_key_id.filter(|k| !k.is_empty()),
                secret_access_key: self.aws_secret_access_key,
                session_token: self.aws_session_token,
            },
            report_check_interval: self
                .schedule_report_checks
                .then(|| Duration::from_secs(self.report_check_interval.max(1))),
            rules: Rules {
                timer: TimeDelta::seconds(self.polling_timer.max(0)),
                count: self.polling_count.max(1),
                processing_wait: TimeDelta::days(self.processing_wait_timer.max(0)),
                initial_months: self.initial_ingest_num_months.max(1),
                initial_override: self.initial_ingest_override,
            },
            workers: self.ingestion_workers.max(1),
            lease: Duration::from_secs(self.ingestion_lease_seconds.max(1)),
            max_attempts: 5,
            retry_base: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Defaults for tests: loopback, port 0, payloads in memory, quick sweeps and retries.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut common = CommonConfig::for_database(database_url);
        common.database_max_connections = 10;
        Self {
            common,
            listen: Listen::ephemeral(),
            max_upload: DEFAULT_MAX_UPLOAD,
            payloads: PayloadStore::Memory,
            s3: S3Settings {
                region: "us-east-1".to_owned(),
                ..S3Settings::default()
            },
            report_check_interval: None,
            rules: Rules::default(),
            workers: 4,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            retry_base: Duration::from_millis(200),
            sweep_interval: Duration::from_millis(200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(pairs: &[(&str, &str)]) -> Config {
        let env: Env = pairs.iter().copied().collect();
        let mut args = <Args as clap::Parser>::parse_from(["ingestion"]);
        // What clap would have read from the process environment.
        args.ingestion.aws_endpoint_url = None;
        args.ingestion.aws_region = None;
        args.ingestion.stage_bucket = None;
        args.ingestion.ingestion_data_dir = None;
        args.listen.port = None;
        args.resolve(&env).unwrap()
    }

    #[test]
    fn aws_tools_aliases_and_kokus_defaults() {
        let c = resolved(&[
            ("S3_ENDPOINT", "http://minio:9000/"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(c.s3.region, "eu-west-1");
        assert_eq!(c.listen.port, DEFAULT_INGRESS_PORT);
        assert_eq!(c.rules, Rules::default());
        assert_eq!(c.report_check_interval, Some(Duration::from_secs(3600)));
        assert!(matches!(c.payloads, PayloadStore::Directory(_)));
    }
}
