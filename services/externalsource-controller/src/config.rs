//! The controller's configuration: flags, each also read from the environment variable named
//! (the original's names where it has one: STORAGE_BACKEND, HOOK_WHITELIST_PATH,
//! ARTIFACT_SERVER_PORT, HTTP_TIMEOUT…; Flux's STORAGE_ADV_ADDR).

use std::{path::PathBuf, time::Duration};

/// Where artifacts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Memory,
    Filesystem,
    S3,
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Turns HTTP data into Flux ExternalArtifacts: fetched on an interval, transformed by whitelisted hooks, packaged, stored and served."
)]
pub struct Config {
    /// Where the artifacts are kept.
    #[arg(long, env = "STORAGE_BACKEND", value_enum, default_value = "memory")]
    pub storage_backend: Backend,
    /// The directory of the filesystem backend.
    #[arg(long, env = "STORAGE_PATH", default_value = "/data")]
    pub storage_path: PathBuf,
    /// The S3 backend's bucket (credentials, region and endpoint from the usual AWS_*
    /// variables).
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// An S3-compatible endpoint (`http://minio:9000`).
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The S3 backend's credentials and region (unset: the instance's or pod's role).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,
    /// The address artifact URLs start with (`http://controller.flux-system.svc.cluster.local.`).
    /// Unset: the artifact server's own address.
    #[arg(long, env = "STORAGE_ADV_ADDR")]
    pub storage_adv_addr: Option<String>,
    /// The artifact server's port (probes and metrics are served there too).
    #[arg(long, env = "ARTIFACT_SERVER_PORT", default_value_t = 8080)]
    pub artifact_server_port: u16,
    /// Address the artifact server binds.
    #[arg(long, env = "ARTIFACT_SERVER_HOST", default_value = "0.0.0.0")]
    pub artifact_server_host: std::net::IpAddr,
    /// Artifacts kept per source (the current one included).
    #[arg(long, env = "ARTIFACT_RETENTION_RECORDS", default_value_t = 2)]
    pub artifact_retention_records: usize,
    /// Seconds one source request may take.
    #[arg(long, env = "HTTP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_timeout: Duration,
    /// The largest response a source may give, in bytes.
    #[arg(long, env = "HTTP_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub http_max_body_bytes: usize,
    #[arg(
        long,
        env = "HTTP_USER_AGENT",
        default_value = "keel-externalsource-controller"
    )]
    pub http_user_agent: String,
    /// The hook whitelist (YAML), read again when it changes. Unset: no hook may run.
    #[arg(long, env = "HOOK_WHITELIST_PATH")]
    pub hook_whitelist_path: Option<PathBuf>,
    /// The hook-executor sidecar (`http://localhost:8081`) hooks run in. Unset: hooks run in
    /// the controller's process (with the same checks).
    #[arg(long, env = "HOOK_EXECUTOR_ENDPOINT")]
    pub hook_executor_endpoint: Option<String>,
    /// Directories hook commands are looked up in, colon-separated.
    #[arg(
        long,
        env = "HOOK_PATH",
        default_value = "/usr/local/bin:/usr/bin:/bin",
        value_delimiter = ':'
    )]
    pub hook_path: Vec<PathBuf>,
    /// Sources reconciled at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub reconcile_concurrency: u16,
    /// The cluster's API server. Unset: KUBECONFIG or the pod's service account.
    #[arg(long, env = "KUBERNETES_API_URL")]
    pub kubernetes_api_url: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::domain::policy::duration(s).ok_or_else(|| format!("{s:?} is not a duration (30s, 1m)"))
}

impl Config {
    /// Defaults for tests: memory storage on a loopback port 0, no hooks.
    pub fn for_tests() -> Self {
        use clap::Parser as _;
        let mut c = Self::parse_from(["externalsource-controller"]);
        c.artifact_server_port = 0;
        c.artifact_server_host = std::net::Ipv4Addr::LOCALHOST.into();
        c
    }
}
