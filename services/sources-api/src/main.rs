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
    app.run(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
