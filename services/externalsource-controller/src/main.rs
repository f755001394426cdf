use clap::Parser as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_service::init_process("externalsource-controller")?;
    let config = externalsource_controller::Config::parse();
    keel_service::run_binary(
        keel_service::DEFAULT_DRAIN,
        externalsource_controller::App::build(&config, None),
    )
    .await
}
