use clap::Parser as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_service::init_process("broker")?;
    let config = broker::Args::parse().resolve(&keel_service::Env::process())?;
    keel_service::run_binary(config.common.drain, broker::App::build(&config)).await
}
