//! `keel`: run every Keel service in one process, or prepare the database.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

mod bench;

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
    /// Run every service in one process until Ctrl-C (sources-api on PORT, the listener on
    /// LISTENER_PORT).
    Up {
        /// Where Keel keeps local state (the generated encryption key).
        #[arg(long, env = "KEEL_DATA_DIR", default_value = ".keel")]
        data_dir: PathBuf,
        #[command(flatten)]
        sources: Box<sources_api::Config>,
        /// Port of the listener's read API.
        #[arg(long, env = "LISTENER_PORT", default_value_t = 8001)]
        listener_port: u16,
        #[command(flatten)]
        listener: listener::LinkArgs,
    },
    /// Create the database if needed, run every service's migrations and apply seed data.
    Migrate {
        #[command(flatten)]
        sources: sources_api::Config,
    },
    /// Measure a running service: throughput and latency percentiles.
    #[command(subcommand)]
    Bench(Bench),
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_telemetry::init("keel")?;
    match Cli::parse().command {
        Command::Up {
            data_dir,
            mut sources,
            listener_port,
            listener,
        } => {
            if sources.encryption_key.is_none() {
                sources.encryption_key = Some(local_encryption_key(&data_dir)?);
            }
            up(*sources, listener_port, listener).await
        }
        Command::Bench(Bench::Sources(b)) => bench::run(b).await,
        Command::Bench(Bench::Events(b)) => bench::events(b).await,
        Command::Bench(Bench::Listener(b)) => bench::listener(b).await,
        Command::Migrate { sources } => {
            sources_api::prepare_database(&sources).await?.close().await;
            let listener = listener::Config::for_database(sources.database_url.clone(), "");
            listener::prepare_database(&listener).await?.close().await;
            tracing::info!("database ready");
            Ok(())
        }
    }
}

async fn up(
    mut sources: sources_api::Config,
    listener_port: u16,
    link: listener::LinkArgs,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    // The listener calls sources-api with a key of its own, made for this run unless given.
    let psk = link
        .sources_psk
        .clone()
        .unwrap_or_else(|| format!("keel-listener-{}", uuid::Uuid::new_v4().simple()));
    sources.psks.push(psk.clone());
    let app = sources_api::App::build(&sources).await?;
    let base = format!("http://{}", app.local_addr());
    let mut listener_config = link.into_config(
        sources.database_url.clone(),
        sources.kafka_brokers.clone(),
        sources.encryption_key.clone(),
    );
    listener_config.host = sources.host;
    listener_config.port = listener_port;
    listener_config.sources_api_url = base.clone();
    listener_config.sources_psk = Some(psk);
    let listener_app = listener::App::build(&listener_config).await?;
    let listener_base = format!("http://{}", listener_app.local_addr());
    // Printed for the person at the terminal; the logs carry the same.
    #[expect(clippy::print_stdout)]
    {
        println!("Keel is up.");
        println!("  sources-api   {base}/api/sources/v3.1/sources");
        println!("  API docs      {base}/api/sources/v3.1/docs/");
        println!("  OpenAPI       {base}/api/sources/v3.1/openapi.json");
        println!("  health        {base}/health  {base}/readiness  {base}/metrics");
        println!("  listener      {listener_base}/api/cost-management/v1/sources/");
        println!(
            "  listener ops  {listener_base}/health  {listener_base}/readiness  {listener_base}/metrics"
        );
        println!("Press Ctrl-C to stop.");
    }
    let mut services = tokio::spawn({
        let stop = shutdown.clone();
        async move {
            let (a, b) = tokio::join!(app.run(stop.clone()), async {
                let ended = listener_app.run(stop.clone()).await;
                // One service ending stops the other.
                stop.cancel();
                ended
            });
            a.and(b)
        }
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("Ctrl-C: shutting down");
            shutdown.cancel();
            services.await??;
        }
        // A service that stops by itself stops Keel, with its error.
        ended = &mut services => ended??,
    }
    tracing::info!("stopped");
    Ok(())
}

/// The key in `<data_dir>/encryption.key`, created (mode 0600) on first use, so `keel up`
/// works with nothing configured and keeps reading what it wrote earlier.
fn local_encryption_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("encryption.key");
    if let Ok(key) = fs::read_to_string(&path) {
        return Ok(key.trim().to_owned());
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let key = sources_api::crypto::SecretBox::generate_key();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "ENCRYPTION_KEY is not set: generated a new key for authentication passwords and saved it; keep this file, or set ENCRYPTION_KEY"
    );
    Ok(key)
}
