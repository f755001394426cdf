#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_telemetry::init("keel")?;
    keel::cli::run().await
}
