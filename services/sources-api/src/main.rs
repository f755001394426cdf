use clap::Parser;

/// The Platform Sources REST API.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: sources_api::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_telemetry::init("sources-api")?;
    let args = Args::parse();
    let app = sources_api::App::build(&args.config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    app.run(shutdown).await
}
