//! The hook-executor sidecar: runs whitelisted hook commands for the controller over HTTP
//! (`POST /execute`), checking its own whitelist before it runs anything.

use clap::Parser as _;
use externalsource_controller::{
    domain::whitelist::Whitelist,
    hooks::{Runner, sidecar},
};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Runs whitelisted hook commands for the ExternalSource controller."
)]
struct Args {
    /// The whitelist (YAML), read again when it changes.
    #[arg(
        long,
        env = "HOOK_WHITELIST_PATH",
        default_value = "/etc/hooks/whitelist.yaml"
    )]
    hook_whitelist_path: std::path::PathBuf,
    /// Directories commands are looked up in, colon-separated.
    #[arg(
        long,
        env = "HOOK_PATH",
        default_value = "/usr/local/bin:/usr/bin:/bin",
        value_delimiter = ':'
    )]
    hook_path: Vec<std::path::PathBuf>,
    #[arg(long, env = "HOOK_EXECUTOR_ADDR", default_value = "127.0.0.1:8081")]
    addr: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = keel_service::init_process("externalsource-hook-executor")?;
    let args = Args::parse();
    let read = std::fs::read(&args.hook_whitelist_path)?;
    let whitelist = Whitelist::parse(&String::from_utf8_lossy(&read))?;
    let runner = Runner::new(whitelist, args.hook_path);
    let _reload = runner.watch(
        args.hook_whitelist_path,
        Some(read),
        std::time::Duration::from_secs(2),
    );
    let shutdown = keel_service::Shutdown::on_signals(keel_service::DEFAULT_DRAIN)?;
    let server = keel_service::http::HttpServer::bind(
        args.addr,
        sidecar::router(runner),
        &Default::default(),
    )
    .await?;
    tracing::info!(address = %server.local_addr(), "hook executor listening");
    server.serve(&shutdown).await
}
