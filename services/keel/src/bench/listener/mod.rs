//! `keel bench listener`: sources-api and the listener in this process on a scratch database,
//! driven through sources-api's REST API, measured end to end.
//!
//! Phase 1 (live): `sources` sources (`--source-type`: AWS with an application and a role, or
//! OpenShift with a cluster id, spread over `orgs` tenants) are created with `bulk_create` from
//! `concurrency` clients while the listener runs; it ends when every source is linked. With
//! `--tenants existing` every tenant gets a first source, linked before the phase starts; with
//! `new` (the default) the phase starts with no tenant. Create-to-provider latency is the time
//! from the source's row in sources-api to its `linked_timestamp`, both PostgreSQL clock
//! readings. The phase's SQL statements (by the outermost span they ran in) and the HTTP calls
//! between the services are counted per linked source.
//! Phase 2 (backlog): the listener is stopped, `backlog` more sources are created, and the
//! listener is started again: how fast it consumes the waiting events, and links them.
//! Phase 3: tenant schema clones from the migrated template, timed one by one.

mod latency;
mod services;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::PgPool;

use self::{
    latency::{acknowledged_to_linked, link_latency, timeline},
    services::{PSK, Services},
};
use super::{ScratchDatabase, histogram, latency_line, wait_until};

/// Whether the phase's tenants exist when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tenants {
    /// No tenant exists: each org's first source makes its customer and schema.
    New,
    /// Every org already has a linked source.
    Existing,
}

/// What the bench's sources are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// AWS: cost management with a bucket, and a role (its own settings rows per source).
    Amazon,
    /// OpenShift: cost management with a cluster id (every provider shares one billing source).
    Openshift,
}

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
    /// Tenants the sources are spread over.
    #[arg(long, default_value_t = 50)]
    pub orgs: usize,
    /// Whether the tenants exist before the live phase.
    #[arg(long, value_enum, default_value_t = Tenants::New)]
    pub tenants: Tenants,
    /// The type of the sources created.
    #[arg(long, value_enum, default_value_t = SourceKind::Amazon)]
    pub source_type: SourceKind,
    /// Sources created while the listener is stopped, then consumed as a backlog.
    #[arg(long, default_value_t = 2000)]
    pub backlog: usize,
    /// Listener workers.
    #[arg(long, default_value_t = listener::DEFAULT_WORKERS)]
    pub workers: usize,
    /// Spare tenant schemas the listener keeps; the live phase starts once they are cloned,
    /// as in a deployment that has been running.
    #[arg(long, default_value_t = listener::DEFAULT_SPARE_TENANTS)]
    pub spare_tenants: usize,
    /// With `--tenants new`, start the live phase on a listener that has done nothing yet:
    /// its pooled connections, their prepared statements and the server's caches all cold. By
    /// default a source in each of as many other orgs is linked first, as in a deployment that
    /// has been running, and the live phase's orgs stay new. (With `--tenants existing` the
    /// listener always links the orgs' first sources before the phase.)
    #[arg(long)]
    pub cold: bool,
    /// Also print both parts of create-to-provider by quarter second of creation in the live
    /// phase: where in the run a tail comes from.
    #[arg(long)]
    pub timeline: bool,
    /// Tenant schemas cloned in the clone phase.
    #[arg(long, default_value_t = 50)]
    pub clones: usize,
}

#[expect(clippy::print_stdout)]
pub async fn listener(b: ListenerBench) -> anyhow::Result<()> {
    if b.sources == 0 || b.concurrency == 0 || b.orgs == 0 {
        bail!("--sources, --concurrency and --orgs must be at least 1");
    }
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_listener").await?;
    let mut services = Box::pin(Services::start(&b, &scratch.url)).await?;
    let db = keel_db::connect(&scratch.url, "cost", 4).await?;
    println!(
        "listener bench: {} {:?} sources at concurrency {} over {} {:?} tenants, {} workers, {} spare tenants, {} listener, {}",
        b.sources,
        b.source_type,
        b.concurrency,
        b.orgs,
        b.tenants,
        services.workers,
        b.spare_tenants,
        if b.cold { "a cold" } else { "a warmed-up" },
        if b.kafka_brokers.is_some() {
            "Kafka"
        } else {
            "the embedded log"
        }
    );
    wait_for_spares(&db, b.spare_tenants).await?;
    let mut next = 0;
    if b.tenants == Tenants::Existing || !b.cold {
        let orgs = match b.tenants {
            Tenants::Existing => PHASE_ORGS,
            Tenants::New => WARM_UP_ORGS,
        };
        create(&services, &b, next, b.orgs, orgs).await?;
        next += b.orgs;
        wait_linked(&db, next).await?;
        // The warm-up's orgs took spares: the live phase starts with the pool full again.
        wait_for_spares(&db, b.spare_tenants).await?;
    }

    // Phase 1: live.
    let events_before = event_rows(&db).await?;
    let consumed_before = services.events_consumed().await?;
    let calls_before = services.http_calls().await?;
    let operations_before = services.operations().await?;
    let statements_before = keel_telemetry::statements::counted();
    let durability_before = Durability::read(&db).await?;
    let linked_before = next;
    let start = Instant::now();
    let posts = create(&services, &b, next, b.sources, PHASE_ORGS).await?;
    let posted = start.elapsed();
    next += b.sources;
    wait_linked(&db, next).await?;
    let elapsed = start.elapsed();
    // The status reports the last links sent add events of their own; let them be read.
    // PostgreSQL reports a backend's counters within a second of its transactions.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let durability = Durability::read(&db).await?.since(&durability_before);
    let consumed = services.events_consumed().await? - consumed_before;
    let events = event_rows(&db).await? - events_before;
    latency_line("POST bulk_create", "requests", &posts.latencies);
    let [whole, delivered, worked] = link_latency(&db, linked_before).await?;
    latency_line(
        "201 -> provider",
        "sources ",
        &acknowledged_to_linked(&db, &posts.acknowledged).await?,
    );
    latency_line("create -> provider", "sources ", &whole);
    latency_line("  create -> followed", "sources ", &delivered);
    latency_line("  followed -> provider", "sources ", &worked);
    if b.timeline {
        timeline(&db, linked_before).await?;
    }
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
    let as_f64 = |m: BTreeMap<String, u64>| -> BTreeMap<String, f64> {
        m.into_iter().map(|(k, v)| (k, v as f64)).collect()
    };
    let mut statements = difference(
        &as_f64(keel_telemetry::statements::counted()),
        &as_f64(statements_before),
    );
    statements.remove(BENCH_SPAN);
    per_source("statements per source", &statements, b.sources);
    println!(
        "{:<24} {:>8.1} (WAL flushes {:.1})",
        "commits per source",
        durability.commits / b.sources as f64,
        durability.wal_flushes / b.sources as f64,
    );
    per_source(
        "HTTP calls per source",
        &difference(&services.http_calls().await?, &calls_before),
        b.sources,
    );
    per_source(
        "operations per source",
        &difference(&services.operations().await?, &operations_before),
        b.sources,
    );

    // Phase 2: a backlog consumed at once.
    if b.backlog > 0 {
        services.stop_listener().await?;
        let waiting_before = event_rows(&db).await?;
        create(&services, &b, next, b.backlog, PHASE_ORGS).await?;
        next += b.backlog;
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
        wait_linked(&db, next).await?;
        let linked_in = start.elapsed();
        if !drained {
            bail!("the listener did not consume the backlog within ten minutes");
        }
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

    // Phase 3: tenant schema clones.
    if b.clones > 0 {
        latency_line(
            "tenant schema clone",
            "clones  ",
            &clones(&db, b.clones).await?,
        );
    }
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db)
    .await?;
    println!("(deadlocks reported by PostgreSQL in the scratch database so far: {deadlocks})");
    db.close().await;
    services.stop().await?;
    scratch.remove()
}

/// The scratch database's commits and the server's WAL flushes: what durability costs.
struct Durability {
    commits: f64,
    wal_flushes: f64,
}

impl Durability {
    #[tracing::instrument(name = "bench", skip_all)]
    async fn read(db: &PgPool) -> anyhow::Result<Self> {
        let mut conn = db.acquire().await?;
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *conn)
            .await?;
        let (commits, wal_flushes): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
               (SELECT wal_sync FROM pg_stat_wal)",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            commits: commits as f64,
            wal_flushes: wal_flushes as f64,
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            commits: self.commits - before.commits,
            wal_flushes: self.wal_flushes - before.wal_flushes,
        }
    }
}

/// What each count grew by (counts are whole numbers, exact in an f64).
fn difference<K: Ord + Clone, V: Copy + Into<f64>>(
    after: &BTreeMap<K, V>,
    before: &BTreeMap<K, V>,
) -> BTreeMap<K, f64> {
    after
        .iter()
        .map(|(k, v)| {
            let was = before.get(k).map_or(0.0, |b| (*b).into());
            (k.clone(), (*v).into() - was)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// One line with the total per source, then one per key.
#[expect(clippy::print_stdout)]
fn per_source<K: std::fmt::Display>(what: &str, counts: &BTreeMap<K, f64>, sources: usize) {
    let n = sources as f64;
    println!("{what:<24} {:>8.1}", counts.values().sum::<f64>() / n);
    for (key, count) in counts {
        println!("    {:>8.2}  {key}", count / n);
    }
}

/// Sources created: the request latencies, and when each source's creation was acknowledged
/// (its id and the wall clock at the `201`).
struct Created {
    latencies: Histogram<u64>,
    acknowledged: Vec<(i64, chrono::DateTime<chrono::Utc>)>,
}

/// The org ids of the measured sources: `PHASE_ORGS + i % b.orgs`.
const PHASE_ORGS: usize = 900_000;
/// The org ids of the warm-up with `--tenants new`: none of them is a live phase's org.
const WARM_UP_ORGS: usize = 800_000;

/// Creates `n` sources numbered from `first` in the orgs from `org_base`, `b.concurrency`
/// requests at a time.
async fn create(
    services: &Services,
    b: &ListenerBench,
    first: usize,
    n: usize,
    org_base: usize,
) -> anyhow::Result<Created> {
    let url = format!("{}/api/sources/v3.1/bulk_create", services.sources_url);
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..b.concurrency {
        let (http, url, next) = (services.http.clone(), url.clone(), next.clone());
        let (orgs, kind) = (b.orgs, b.source_type);
        clients.spawn(async move {
            let mut h = histogram();
            let mut acknowledged = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>((h, acknowledged));
                }
                let i = first + i;
                let t = Instant::now();
                let reply = http
                    .post(&url)
                    .header("x-rh-sources-org-id", format!("{}", org_base + i % orgs))
                    .header("x-rh-sources-psk", PSK)
                    .json(&bulk_body(kind, i))
                    .send()
                    .await?;
                if reply.status().as_u16() != 201 {
                    bail!(
                        "bulk_create answered {}: {}",
                        reply.status(),
                        reply.text().await.unwrap_or_default()
                    );
                }
                let at = chrono::Utc::now();
                h.record(t.elapsed().as_micros().max(1) as u64).ok();
                let body: Value = reply.json().await?;
                let id = body["sources"][0]["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("bulk_create answered no source id: {body}"))?;
                acknowledged.push((id, at));
            }
        });
    }
    let mut all = Created {
        latencies: histogram(),
        acknowledged: Vec::with_capacity(n),
    };
    while let Some(done) = clients.join_next().await {
        let (h, acknowledged) = done??;
        all.latencies.add(&h).ok();
        all.acknowledged.extend(acknowledged);
    }
    Ok(all)
}

/// A source of `kind` numbered `i`, with its cost-management application (and role).
fn bulk_body(kind: SourceKind, i: usize) -> Value {
    let name = format!("bench {i}");
    match kind {
        SourceKind::Amazon => json!({
            "sources": [{"name": name, "source_type_name": "amazon"}],
            "applications": [{"application_type_name": "cost-management", "source_name": name,
                              "extra": {"bucket": format!("bucket-{i}"), "bucket_region": "eu-west-1"}}],
            "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                 "authtype": "arn", "username": format!("arn:aws:iam::{:012}:role/Cost", i),
                                 "extra": {"external_id": format!("ext-{i}")}}]
        }),
        SourceKind::Openshift => json!({
            "sources": [{"name": name, "source_type_name": "openshift",
                         "source_ref": format!("cluster-{i}")}],
            "applications": [{"application_type_name": "cost-management", "source_name": name}]
        }),
    }
}

#[tracing::instrument(name = "bench", skip_all)]
async fn event_rows(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM sources.outbox WHERE topic = 'platform.sources.event-stream'",
    )
    .fetch_one(db)
    .await?)
}

#[tracing::instrument(name = "bench", skip_all)]
async fn wait_for_spares(db: &PgPool, n: usize) -> anyhow::Result<()> {
    let full = wait_until(Duration::from_secs(600), || async {
        let spares: i64 = sqlx::query_scalar("SELECT count(*) FROM spare_tenants")
            .fetch_one(db)
            .await?;
        Ok(spares >= n as i64)
    })
    .await?;
    anyhow::ensure!(
        full,
        "the listener did not clone {n} spare tenants within ten minutes"
    );
    Ok(())
}

/// The bench's own statements run in this span, left out of the counts.
const BENCH_SPAN: &str = "bench";

#[tracing::instrument(name = "bench", skip_all)]
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
