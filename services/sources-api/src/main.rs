use clap::Parser as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_service::init_process("sources-api")?;
    let config = sources_api::Args::parse().resolve(&keel_service::Env::process())?;
    keel_service::run_binary(config.common.drain, sources_api::App::build(&config)).await
}
