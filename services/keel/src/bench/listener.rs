//! `keel bench listener`: sources-api and the listener in this process on a scratch database,
//! driven through sources-api's REST API, measured end to end.
//!
//! Phase 1 (live): `sources` AWS sources (application and role each, spread over `orgs`
//! tenants) are created with `bulk_create` from `concurrency` clients while the listener runs;
//! it ends when every source is linked. Create-to-provider latency is the time from the
//! source's row in sources-api to its `linked_timestamp`, both PostgreSQL clock readings.
//! Phase 2 (backlog): the listener is stopped, `backlog` more sources are created, and the
//! listener is started again: how fast it consumes the waiting events, and links them.
//! Phase 3: tenant schema clones from the migrated template, timed one by one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use anyhow::bail;
use hdrhistogram::Histogram;
use keel_service::{KafkaSettings, Shutdown, config::Secret};
use serde_json::json;
use sqlx::PgPool;

use super::{ScratchDatabase, histogram, latency_line, wait_until};
use crate::stack::StackConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct ListenerBench {
    /// PostgreSQL server (a scratch database `keel_bench_listener` is created and dropped).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    /// Carry events over Kafka; without it, the embedded log.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Sources created while the listener runs.
    #[arg(long, default_value_t = 2000)]
    pub sources: usize,
    /// Concurrent REST clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Tenants the sources are spread over (each gets its schema on its first source).
    #[arg(long, default_value_t = 50)]
    pub orgs: usize,
    /// Sources created while the listener is stopped, then consumed as a backlog.
    #[arg(long, default_value_t = 2000)]
    pub backlog: usize,
    /// Listener workers.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Tenant schemas cloned in the clone phase.
    #[arg(long, default_value_t = 50)]
    pub clones: usize,
}

const PSK: &str = "keel-bench-listener";

/// sources-api and a listener on the scratch database.
struct Services {
    sources_url: String,
    listener_config: listener::Config,
    stop: Shutdown,
    sources: tokio::task::JoinHandle<anyhow::Result<()>>,
    listener: Option<(
        String,
        Shutdown,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    http: reqwest::Client,
}

impl Services {
    async fn start(b: &ListenerBench, url: &str) -> anyhow::Result<Self> {
        let key = Secret::new(keel_crypto::SecretBox::generate_key());
        let kafka = b.kafka_brokers.clone().map(KafkaSettings::plain);
        let mut sources = sources_api::Config::for_database(url);
        sources.psks = vec![PSK.to_owned()];
        sources.common.encryption_key = Some(key.clone());
        sources.common.kafka = kafka.clone();
        sources.common.database_max_connections = 20;
        let mut config = listener::Config::for_database(url, "");
        config.common.encryption_key = Some(key.clone());
        config.credential_key = Some(listener::CredentialKey::Key(key));
        config.common.kafka = kafka;
        config.workers = b.workers;
        config.common.database_max_connections = (b.workers as u32 + 8).max(20);
        // Every run gets a group of its own: a Kafka group keeps its offsets across runs.
        config.consumer_group = format!("hccm-sources-bench-{}", uuid::Uuid::new_v4().simple());
        // Built together for the wiring; the listener is stopped and built again later.
        let stack = StackConfig {
            sources: Some(sources),
            listener: Some(config),
        }
        .build()
        .await?;
        let sources_url = format!(
            "http://{}",
            stack.sources_addr().context("sources-api built")?
        );
        let listener_config = stack
            .listener_config
            .clone()
            .context("listener configured")?;
        let first_listener = stack.listener.context("listener built")?;
        let app = stack.sources.context("sources-api built")?;
        let stop = Shutdown::default();
        let task = tokio::spawn(app.run(stop.clone()));
        let mut services = Self {
            sources_url,
            listener_config,
            stop,
            sources: task,
            listener: None,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(b.concurrency * 2)
                .build()?,
        };
        services.start_listener(Some(first_listener)).await?;
        Ok(services)
    }

    /// Runs `built`, or a listener built again from the wired configuration.
    async fn start_listener(&mut self, built: Option<listener::App>) -> anyhow::Result<()> {
        let app = match built {
            Some(app) => app,
            None => Box::pin(listener::App::build(&self.listener_config)).await?,
        };
        let base = format!("http://{}", app.local_addr());
        let stop = self.stop.child();
        let task = tokio::spawn(app.run(stop.clone()));
        let readiness = format!("{base}/readiness");
        let http = self.http.clone();
        let ready = wait_until(Duration::from_secs(60), || {
            let (http, readiness) = (http.clone(), readiness.clone());
            async move {
                Ok(http
                    .get(readiness)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()))
            }
        })
        .await?;
        if !ready {
            bail!("the listener did not become ready within a minute");
        }
        self.listener = Some((base, stop, task));
        Ok(())
    }

    async fn stop_listener(&mut self) -> anyhow::Result<()> {
        if let Some((_, stop, task)) = self.listener.take() {
            stop.trigger();
            task.await??;
        }
        Ok(())
    }

    /// `listener_events_total` summed over types and outcomes. Both services share this
    /// process's metrics recorder, so sources-api's /metrics serves it too, also while the
    /// listener is stopped.
    async fn events_consumed(&self) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.sources_url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("listener_events_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_listener().await?;
        self.stop.trigger();
        self.sources.await?
    }
}

pub async fn listener(b: ListenerBench) -> anyhow::Result<()> {
    if b.sources == 0 || b.concurrency == 0 || b.orgs == 0 {
        bail!("--sources, --concurrency and --orgs must be at least 1");
    }
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_listener").await?;
    let mut services = Services::start(&b, &scratch.url).await?;
    let db = keel_db::connect(&scratch.url, "cost", 4).await?;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "listener bench: {} sources at concurrency {} over {} tenants, {} workers, {}",
            b.sources,
            b.concurrency,
            b.orgs,
            b.workers,
            if b.kafka_brokers.is_some() {
                "Kafka"
            } else {
                "the embedded log"
            }
        );
    }

    // Phase 1: live.
    let events_before = event_rows(&db).await?;
    let consumed_before = services.events_consumed().await?;
    let start = Instant::now();
    let posts = create(&services, &b, 0, b.sources).await?;
    let posted = start.elapsed();
    wait_linked(&db, b.sources).await?;
    let elapsed = start.elapsed();
    // The status reports the last links sent add events of their own; let them be read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let consumed = services.events_consumed().await? - consumed_before;
    let events = event_rows(&db).await? - events_before;
    latency_line("POST bulk_create", "requests", &posts);
    latency_line("create -> provider", "sources ", &link_latency(&db).await?);
    #[expect(clippy::print_stdout)]
    {
        println!(
            "{:<24} {:>8} sources in {:.2} s = {:.0} sources/s (created in {:.2} s = {:.0} sources/s)",
            "linked (live)",
            b.sources,
            elapsed.as_secs_f64(),
            b.sources as f64 / elapsed.as_secs_f64(),
            posted.as_secs_f64(),
            b.sources as f64 / posted.as_secs_f64()
        );
        println!(
            "{:<24} {:>8} events in {:.2} s = {:.0} events/s ({} written to the event stream)",
            "events (live)",
            consumed,
            elapsed.as_secs_f64(),
            consumed / elapsed.as_secs_f64(),
            events
        );
    }

    // Phase 2: a backlog consumed at once.
    if b.backlog > 0 {
        services.stop_listener().await?;
        let waiting_before = event_rows(&db).await?;
        create(&services, &b, b.sources, b.backlog).await?;
        let waiting = event_rows(&db).await? - waiting_before;
        // Counted before the start: a small backlog is consumed before a later read.
        let base = services.events_consumed().await?;
        services.start_listener(None).await?;
        let start = Instant::now();
        let target = waiting as f64;
        let drained = wait_until(Duration::from_secs(600), || async {
            Ok(services.events_consumed().await? - base >= target)
        })
        .await?;
        let consumed_in = start.elapsed();
        wait_linked(&db, b.sources + b.backlog).await?;
        let linked_in = start.elapsed();
        if !drained {
            bail!("the listener did not consume the backlog within ten minutes");
        }
        #[expect(clippy::print_stdout)]
        {
            println!(
                "{:<24} {:>8} events in {:.2} s = {:.0} events/s (consumed: recorded and queued)",
                "events (backlog)",
                waiting,
                consumed_in.as_secs_f64(),
                target / consumed_in.as_secs_f64()
            );
            println!(
                "{:<24} {:>8} sources in {:.2} s = {:.0} sources/s",
                "linked (backlog)",
                b.backlog,
                linked_in.as_secs_f64(),
                b.backlog as f64 / linked_in.as_secs_f64()
            );
        }
    }

    // Phase 3: tenant schema clones.
    if b.clones > 0 {
        latency_line(
            "tenant schema clone",
            "clones  ",
            &clones(&db, b.clones).await?,
        );
    }
    let in_path: f64 = sqlx::query_scalar("SELECT count(*)::float8 FROM api_tenant")
        .fetch_one(&db)
        .await?;
    #[expect(clippy::print_stdout)]
    {
        println!("({in_path} tenant schemas were cloned while linking)");
    }
    db.close().await;
    services.stop().await?;
    scratch.remove()
}

/// Creates `n` AWS sources numbered from `first`, `b.concurrency` requests at a time; returns
/// the request latencies.
async fn create(
    services: &Services,
    b: &ListenerBench,
    first: usize,
    n: usize,
) -> anyhow::Result<Histogram<u64>> {
    let url = format!("{}/api/sources/v3.1/bulk_create", services.sources_url);
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..b.concurrency {
        let (http, url, next) = (services.http.clone(), url.clone(), next.clone());
        let orgs = b.orgs;
        clients.spawn(async move {
            let mut h = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(h);
                }
                let i = first + i;
                let name = format!("bench {i}");
                let body = json!({
                    "sources": [{"name": name, "source_type_name": "amazon"}],
                    "applications": [{"application_type_name": "cost-management", "source_name": name,
                                      "extra": {"bucket": format!("bucket-{i}"), "bucket_region": "eu-west-1"}}],
                    "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                         "authtype": "arn", "username": format!("arn:aws:iam::{:012}:role/Cost", i),
                                         "extra": {"external_id": format!("ext-{i}")}}]
                });
                let t = Instant::now();
                let reply = http
                    .post(&url)
                    .header("x-rh-sources-org-id", format!("{}", 900_000 + i % orgs))
                    .header("x-rh-sources-psk", PSK)
                    .json(&body)
                    .send()
                    .await?;
                if reply.status().as_u16() != 201 {
                    bail!(
                        "bulk_create answered {}: {}",
                        reply.status(),
                        reply.text().await.unwrap_or_default()
                    );
                }
                h.record(t.elapsed().as_micros().max(1) as u64).ok();
            }
        });
    }
    let mut all = histogram();
    while let Some(done) = clients.join_next().await {
        all.add(&done??).ok();
    }
    Ok(all)
}

async fn event_rows(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM sources.outbox WHERE topic = 'platform.sources.event-stream'",
    )
    .fetch_one(db)
    .await?)
}

async fn wait_linked(db: &PgPool, n: usize) -> anyhow::Result<()> {
    let linked = wait_until(Duration::from_secs(600), || async {
        let linked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM api_sources WHERE state = 'linked'")
                .fetch_one(db)
                .await?;
        Ok(linked >= n as i64)
    })
    .await?;
    if !linked {
        let states: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM api_sources GROUP BY state")
                .fetch_all(db)
                .await?;
        bail!("not every source was linked within ten minutes: {states:?}");
    }
    Ok(())
}

/// Source row written in sources-api to provider linked, per linked source.
async fn link_latency(db: &PgPool) -> anyhow::Result<Histogram<u64>> {
    let micros: Vec<i64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM a.linked_timestamp - s.created_at) * 1e6)::bigint \
         FROM api_sources a JOIN sources.sources s ON s.id = a.source_id \
         WHERE a.linked_timestamp IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let mut h = histogram();
    for m in micros {
        h.record(m.max(1) as u64).ok();
    }
    Ok(h)
}

/// Clones the template `n` times into scratch schemas, each timed, then drops them.
async fn clones(db: &PgPool, n: usize) -> anyhow::Result<Histogram<u64>> {
    let mut h = histogram();
    for i in 0..n {
        let name = format!("keel_bench_clone_{i}");
        let t = Instant::now();
        sqlx::query("SELECT clone_schema($1, $2)")
            .bind(listener::TEMPLATE.schema)
            .bind(&name)
            .execute(db)
            .await?;
        h.record(t.elapsed().as_micros().max(1) as u64).ok();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
            .execute(db)
            .await?;
    }
    Ok(h)
}
