//! `keel bench externalsource`: the controller in this process over the fake Kubernetes API
//! server, `sources` ExternalSources served by a local HTTP origin. Reconciles per second for
//! a first pass (every body new: fetched, packaged, stored, published), an unchanged pass
//! (every answer 304) and a changed pass (every body new again); then artifact packaging in
//! MB/s beside `tar czf` of the same data (the floor), in the same run.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use externalsource_controller::{App, Config, domain::artifact};
use keel_kube_fake::FakeApiServer;
use keel_service::Shutdown;
use serde_json::{Value, json};

#[derive(Debug, Clone, clap::Args)]
pub struct ExternalSourceBench {
    /// ExternalSources reconciled in each pass.
    #[arg(long, default_value_t = 1000)]
    pub sources: usize,
    /// Sources reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Bytes of each source's body.
    #[arg(long, default_value_t = 4096)]
    pub body_bytes: usize,
    /// Megabytes of data packaged in the packaging phase.
    #[arg(long, default_value_t = 64)]
    pub package_mb: usize,
}

const API: &str = "source.flux.oddkin.co/v1alpha1";

/// The origin: `/data/{i}` of the current generation, ETag `"{generation}-{i}"`.
struct Origin {
    generation: AtomicU64,
    requests: AtomicU64,
    body_bytes: usize,
}

fn body(generation: u64, i: &str, size: usize) -> Vec<u8> {
    let line = format!("{{\"generation\": {generation}, \"source\": \"{i}\", \"padding\": \"");
    let mut out = line.into_bytes();
    while out.len() + 3 < size {
        out.push(b'a' + (out.len() % 26) as u8);
    }
    out.extend_from_slice(b"\"}\n");
    out
}

async fn serve(origin: Arc<Origin>) -> anyhow::Result<String> {
    let app = Router::new().route(
        "/data/{i}",
        get(move |Path(i): Path<String>, headers: HeaderMap| {
            let origin = origin.clone();
            async move {
                origin.requests.fetch_add(1, Ordering::Relaxed);
                let generation = origin.generation.load(Ordering::Relaxed);
                let etag = format!("\"{generation}-{i}\"");
                if headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    == Some(etag.as_str())
                {
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                (
                    [(header::ETAG, etag)],
                    body(generation, &i, origin.body_bytes),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/data", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Waits until `done` holds for the sources (polled); answers the time taken.
async fn wait(
    fake: &FakeApiServer,
    started: Instant,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Duration> {
    loop {
        if done(&fake.list(API, "externalsources", Some("bench"))) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the pass did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sources whose status holds the ETag of `generation` (written with Ready, last).
fn ready_at(sources: &[Value], generation: u64) -> usize {
    let prefix = format!("\"{generation}-");
    sources
        .iter()
        .filter(|s| {
            s["status"]["lastHandledETag"]
                .as_str()
                .is_some_and(|e| e.starts_with(&prefix))
        })
        .count()
}

#[expect(clippy::print_stdout)]
fn line(name: &str, n: usize, took: Duration) {
    println!(
        "{name:<28} {n:>6} sources  {:>8.1} reconciles/s  ({:.2} s)",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
}

pub async fn externalsource(b: ExternalSourceBench) -> anyhow::Result<()> {
    keel_service::tls::install_crypto_provider();
    let fake = FakeApiServer::start().await;
    let origin = Arc::new(Origin {
        generation: AtomicU64::new(1),
        requests: AtomicU64::new(0),
        body_bytes: b.body_bytes,
    });
    let url = serve(origin.clone()).await?;
    let mut config = Config::for_tests();
    config.reconcile_concurrency = b.concurrency;
    let app = App::build(&config, Some(fake.client())).await?;
    let shutdown = Shutdown::default();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let n = b.sources;

    let started = Instant::now();
    for i in 0..n {
        fake.create(API, "externalsources", "bench", json!({"metadata": {"name": format!("s{i}")},
            "spec": {"interval": "1h", "generator": {"type": "http", "http": {"url": format!("{url}/{i}")}}}}));
    }
    let took = wait(&fake, started, |all| ready_at(all, 1) == n).await?;
    line("first (all new)", n, took);

    let poke = |round: u32| {
        for i in 0..n {
            fake.edit(API, "externalsources", "bench", &format!("s{i}"), |o| {
                o["metadata"]["annotations"] = json!({"bench/round": round.to_string()});
            });
        }
    };
    let before = origin.requests.load(Ordering::Relaxed);
    let started = Instant::now();
    poke(1);
    loop {
        if origin.requests.load(Ordering::Relaxed) >= before + n as u64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the unchanged pass did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    line("unchanged (304)", n, started.elapsed());

    origin.generation.store(2, Ordering::Relaxed);
    let started = Instant::now();
    poke(2);
    let took = wait(&fake, started, |all| ready_at(all, 2) == n).await?;
    line("changed (new revision)", n, took);
    shutdown.trigger();
    let _ = running.await;

    packaging(b.package_mb)
}

/// Packaging `mb` MB of JSON-like text, beside `tar czf` of the same file.
#[expect(clippy::print_stdout)]
fn packaging(mb: usize) -> anyhow::Result<()> {
    let mut data = Vec::with_capacity(mb << 20);
    let mut i = 0u64;
    while data.len() < mb << 20 {
        data.extend_from_slice(
            format!(
                "{{\"id\": {i}, \"name\": \"item-{}\", \"value\": {}}}\n",
                i % 977,
                i.wrapping_mul(2_654_435_761) % 100_000
            )
            .as_bytes(),
        );
        i += 1;
    }
    let best = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    let ours = best(&mut || {
        artifact::package(&data, "data.json")
            .map(|_| ())
            .map_err(anyhow::Error::msg)
    })?;
    let dir = std::env::temp_dir().join(format!("keel-bench-package-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("data.json"), &data)?;
    let floor = best(&mut || {
        let status = Command::new("tar")
            .args(["czf", "out.tar.gz", "data.json"])
            .current_dir(&dir)
            .status()
            .context("tar is needed for the packaging floor")?;
        anyhow::ensure!(status.success(), "tar czf failed");
        Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let rate = |d: Duration| data.len() as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "packaging {:>4} MB            {:>8.1} MB/s   tar czf (floor) {:>8.1} MB/s   {:.0} % of the floor",
        mb,
        rate(ours),
        rate(floor),
        100.0 * rate(ours) / rate(floor)
    );
    Ok(())
}
