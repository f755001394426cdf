//! The `keel` command line: `up`, `migrate`, `bench`, `chaos`.

use std::{
    fs,
    io::Write as _,
    net::{IpAddr, Ipv4Addr},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use keel_service::{CommonArgs, Env, Listen, Shutdown, config::Secret};

use crate::{
    bench,
    stack::{ServiceName, StackConfig},
};

#[derive(Parser)]
#[command(
    version,
    about = "Keel: Platform Sources and cost-management data sources, in one process"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Keel's services in one process on loopback until SIGTERM or Ctrl-C.
    Up(Box<UpArgs>),
    /// Create the database if needed, run every service's migrations and apply seed data.
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Measure a running service: throughput and latency percentiles.
    #[command(subcommand)]
    Bench(Bench),
    /// SIGKILL sources-api, the listener and the broker at random under a workload, then check
    /// that nothing acknowledged was lost (`scripts/chaos` sets it up).
    Chaos(Box<crate::chaos::ChaosArgs>),
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Services to run (comma-separated): all of them by default. Leave the listener out to
    /// serve sources-api to another listener (Koku's) without joining its consumer group.
    #[arg(
        long,
        env = "KEEL_SERVICES",
        value_enum,
        value_delimiter = ',',
        default_values_t = ServiceName::ALL
    )]
    services: Vec<ServiceName>,
    /// Where Keel keeps local state (the generated encryption key).
    #[arg(long, env = "KEEL_DATA_DIR", default_value = ".keel")]
    data_dir: PathBuf,
    /// Address every service listens on.
    #[arg(long, env = "HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// sources-api's port (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = sources_api::config::DEFAULT_PORT)]
    port: u16,
    /// The listener's port.
    #[arg(long, env = "LISTENER_PORT", default_value_t = listener::config::DEFAULT_PORT)]
    listener_port: u16,
    /// The broker's port.
    #[arg(long, env = "BROKER_PORT", default_value_t = broker::config::DEFAULT_PORT)]
    broker_port: u16,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sources: sources_api::SourcesArgs,
    #[command(flatten)]
    listener: listener::ListenerArgs,
    #[command(flatten)]
    ingestion: ingestion::IngestionArgs,
    #[command(flatten)]
    broker: broker::config::BrokerArgs,
}

#[derive(Subcommand)]
enum Bench {
    /// POST and GET /sources against a running sources-api, beside pgbench inserts.
    Sources(bench::SourcesBench),
    /// The event stream: relay throughput and publish-to-consume latency, both transports.
    Events(bench::EventsBench),
    /// Sources created through the REST API until linked by the listener: sources/s,
    /// create-to-provider latency, events/s, tenant schema clone time.
    Listener(bench::ListenerBench),
    /// A month of AWS CUR data (and OpenShift payloads) from nise, loaded through a source
    /// created in sources-api: rows/s beside psql's COPY, time to setup_complete, summary time.
    Ingestion(bench::IngestionBench),
    /// The broker provisioning PostgreSQL databases, beside the same SQL issued directly.
    Broker(bench::BrokerBench),
    /// Reconciles per second of the ExternalSource controller over a fake API server, and
    /// artifact packaging beside `tar czf`.
    Externalsource(bench::ExternalSourceBench),
}

/// Parses the command line and runs it.
pub async fn run() -> anyhow::Result<()> {
    keel_service::tls::install_crypto_provider();
    // Each command's future is boxed: together they would make one very large future.
    match Cli::parse().command {
        Command::Up(args) => Box::pin(up(*args)).await,
        Command::Bench(Bench::Sources(b)) => Box::pin(bench::run(b)).await,
        Command::Bench(Bench::Events(b)) => Box::pin(bench::events(b)).await,
        Command::Bench(Bench::Listener(b)) => Box::pin(bench::listener(b)).await,
        Command::Bench(Bench::Ingestion(b)) => Box::pin(bench::ingestion(b)).await,
        Command::Bench(Bench::Broker(b)) => Box::pin(bench::broker(b)).await,
        Command::Bench(Bench::Externalsource(b)) => Box::pin(bench::externalsource(b)).await,
        Command::Chaos(args) => Box::pin(crate::chaos::run(*args)).await,
        Command::Migrate { common } => {
            let env = Env::process();
            let common = common.resolve(&env)?;
            let sources = sources_api::Config::new(
                common.clone(),
                Listen::ephemeral(),
                default_sources_args(),
                &env,
            );
            Box::pin(sources_api::prepare_database(&sources))
                .await?
                .close()
                .await;
            let listener = listener::Config::for_database(common.database_url.clone(), "");
            Box::pin(listener::prepare_database(&listener))
                .await?
                .close()
                .await;
            keel_db::migrate(&common.database_url, ingestion::OWNER).await?;
            tracing::info!("database ready");
            Ok(())
        }
    }
}

fn default_sources_args() -> sources_api::SourcesArgs {
    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        sources: sources_api::SourcesArgs,
    }
    Only::parse_from(["keel"]).sources
}

/// The stack `keel up` runs: the chosen services on loopback, sharing the common settings.
fn up_stack(args: UpArgs, env: &Env) -> anyhow::Result<(StackConfig, Shutdown)> {
    let mut common = args.common.resolve(env)?;
    if common.encryption_key.is_none() {
        common.encryption_key = Some(Secret::new(local_encryption_key(&args.data_dir)?));
    }
    let listen = |port| Listen {
        host: args.host,
        port,
        metrics_port: None,
    };
    let runs = |s| args.services.contains(&s);
    if runs(ServiceName::SourcesApi)
        && runs(ServiceName::Listener)
        && args.listener.sources_api_url.is_some()
    {
        anyhow::bail!(
            "SOURCES_API_URL names another sources-api while Keel's runs in this process; \
             leave sources-api out (--services listener) to use that one"
        );
    }
    let shutdown = Shutdown::on_signals(common.drain)?;
    let stack = StackConfig {
        sources: runs(ServiceName::SourcesApi).then(|| {
            sources_api::Config::new(common.clone(), listen(args.port), args.sources, env)
        }),
        listener: runs(ServiceName::Listener).then(|| {
            args.listener
                .into_config(common.clone(), listen(args.listener_port), env)
        }),
        ingestion: runs(ServiceName::Ingestion).then(|| {
            let port = args.ingestion.ingress_port;
            let mut ingestion = args.ingestion;
            ingestion
                .ingestion_data_dir
                .get_or_insert_with(|| args.data_dir.join("ingestion"));
            ingestion.into_config(common.clone(), listen(port), env)
        }),
        broker: runs(ServiceName::Broker)
            .then(|| {
                broker_config(
                    args.broker,
                    &args.data_dir,
                    common.clone(),
                    listen(args.broker_port),
                )
            })
            .transpose()?,
    };
    Ok((stack, shutdown))
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let (stack, shutdown) = up_stack(args, &Env::process())?;
    let stack = tokio::select! {
        built = stack.build() => built?,
        _ = shutdown.triggered() => return Ok(()),
    };
    // Printed for the person at the terminal; the logs carry the same.
    #[expect(clippy::print_stdout)]
    {
        println!("Keel is up.");
        if let Some(addr) = stack.sources_addr() {
            let base = format!("http://{addr}");
            println!("  sources-api   {base}/api/sources/v3.1/sources");
            println!("  API docs      {base}/api/sources/v3.1/docs/");
            println!("  OpenAPI       {base}/api/sources/v3.1/openapi.json");
            println!("  health        {base}/health  {base}/readiness  {base}/metrics");
        }
        if let Some(addr) = stack.listener_addr() {
            let base = format!("http://{addr}");
            println!("  listener      {base}/api/cost-management/v1/sources/");
            println!("  listener ops  {base}/health  {base}/readiness  {base}/metrics");
        }
        if let Some(addr) = stack.ingestion_addr() {
            let base = format!("http://{addr}");
            println!(
                "  uploads       {base}/api/ingress/v1/upload  (OpenShift cost operator payloads)"
            );
            println!("  ingestion     {base}/api/cost-management/v1/ingestion/providers");
            println!("  ingest. ops   {base}/health  {base}/readiness  {base}/metrics");
        }
        if let Some((addr, token)) = stack.broker_addr() {
            let base = format!("http://{addr}");
            println!("  broker        {base}/v1/resources?namespace=<namespace>");
            println!("  broker token  {token}  (Authorization: Bearer …)");
            println!("  broker ops    {base}/health  {base}/readiness  {base}/openapi.json");
        }
        println!("Press Ctrl-C to stop.");
    }
    stack.run(shutdown).await
}

/// The key in `<data_dir>/encryption.key`, created (mode 0600) on first use, so `keel up`
/// works with nothing configured and keeps reading what it wrote earlier.
fn local_encryption_key(data_dir: &Path) -> anyhow::Result<String> {
    local_secret(data_dir, "encryption.key", "ENCRYPTION_KEY", || {
        Ok(keel_crypto::SecretBox::generate_key())
    })
}

/// The secret in `<data_dir>/<file>`, made by `make` and saved (mode 0600) on first use.
fn local_secret(
    data_dir: &Path,
    file: &str,
    setting: &str,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(secret) = fs::read_to_string(&path) {
        if readable_by_others(&path) {
            tracing::warn!(
                path = %path.display(),
                "the {file} file can be read by other users: chmod 600 it"
            );
        }
        return Ok(secret.trim().to_owned());
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = make()?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "{setting} is not set: generated one and saved it; keep this file, or set {setting}"
    );
    Ok(secret)
}

/// The broker under `keel up`: a bearer token and a callback signing key of its own in the
/// data directory unless BROKER_TOKENS and BROKER_PRIVATE_KEY(_PATH) name them.
fn broker_config(
    mut args: broker::config::BrokerArgs,
    data_dir: &Path,
    common: keel_service::CommonConfig,
    listen: Listen,
) -> anyhow::Result<broker::Config> {
    if args.broker_tokens.is_none() {
        let token = local_secret(data_dir, "broker.token", "BROKER_TOKENS", || {
            Ok(format!("keel-{}", uuid::Uuid::new_v4().simple()))
        })?;
        args.broker_tokens = Some(Secret::new(token));
    }
    if args.broker_private_key.is_none() && args.broker_private_key_path.is_none() {
        let key = local_secret(data_dir, "broker.key", "BROKER_PRIVATE_KEY", || {
            Ok(broker::signing::SigningKey::generate()?.1)
        })?;
        args.broker_private_key = Some(Secret::new(key));
    }
    Ok(args.into_config(common, listen))
}

/// Whether users other than the owner may read or write the file at `path`.
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_key_file_others_can_read_is_noticed() {
        let dir = std::env::temp_dir().join(format!("keel-key-{}", std::process::id()));
        let key = local_encryption_key(&dir).unwrap();
        let path = dir.join("encryption.key");
        assert!(!readable_by_others(&path), "created 0600");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&path));
        assert_eq!(local_encryption_key(&dir).unwrap(), key, "still read");
        let _ = fs::remove_dir_all(dir);
    }
}
