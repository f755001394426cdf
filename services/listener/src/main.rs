use clap::Parser;

/// The cost-management sources listener.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    args: listener::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_telemetry::init("listener")?;
    let config = Cli::parse().args.into_config();
    let app = listener::App::build(&config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    app.run(shutdown).await
}
