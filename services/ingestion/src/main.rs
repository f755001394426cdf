use clap::Parser as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_service::init_process("ingestion")?;
    let config = ingestion::Args::parse().resolve(&keel_service::Env::process())?;
    keel_service::run_binary(config.common.drain, ingestion::App::build(&config)).await
}
