//! `keel`: run every Keel service in one process, or prepare the database.

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

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
    /// Run every service in one process until Ctrl-C (sources-api on PORT).
    Up {
        #[command(flatten)]
        sources: sources_api::Config,
    },
    /// Create the database if needed, run every service's migrations and apply seed data.
    Migrate {
        #[command(flatten)]
        sources: sources_api::Config,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_telemetry::init("keel")?;
    match Cli::parse().command {
        Command::Up { sources } => up(sources).await,
        Command::Migrate { sources } => {
            sources_api::prepare_database(&sources).await?.close().await;
            tracing::info!("database ready");
            Ok(())
        }
    }
}

async fn up(sources: sources_api::Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let app = sources_api::App::build(&sources).await?;
    let base = format!("http://{}", app.local_addr());
    // Printed for the person at the terminal; the logs carry the same.
    #[expect(clippy::print_stdout)]
    {
        println!("Keel is up.");
        println!("  sources-api   {base}/api/sources/v3.1/sources");
        println!("  API docs      {base}/api/sources/v3.1/docs/");
        println!("  OpenAPI       {base}/api/sources/v3.1/openapi.json");
        println!("  health        {base}/health  {base}/readiness  {base}/metrics");
        println!("Press Ctrl-C to stop.");
    }
    let mut services = tokio::spawn(app.run(shutdown.clone().cancelled_owned()));
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
