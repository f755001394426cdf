//! `keel bench sources`: load on a running sources-api, measured, beside PostgreSQL's own
//! single-row insert speed (pgbench) at the same concurrency on the same server.
//!
//! Phase 1 drives `POST /sources` from `concurrency` workers for `duration` (closed loop).
//! Phase 2 sends `GET /sources` at a fixed rate (open loop: latency is measured from when each
//! request was due, so a stalled server cannot hide its queue). Phase 3 runs pgbench inserting
//! one row per transaction with the same number of clients.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct SourcesBench {
    /// Base URL of the running sources-api.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Pre-shared key for the writes.
    #[arg(long, env = "BENCH_PSK", default_value = "dev-psk")]
    pub psk: String,
    /// Concurrent writers (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Request rate of the GET phase.
    #[arg(long, default_value_t = 1000)]
    pub get_rate: u64,
    /// Sources of the tenant the GET phase lists (its first page of 100 is read).
    #[arg(long, default_value_t = 100)]
    pub list_size: usize,
    /// PostgreSQL server for the pgbench baseline (a scratch database `keel_bench` is used).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn report(name: &str, count: u64, errors: u64, elapsed: Duration, h: &Histogram<u64>) -> f64 {
    let rate = count as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "{name:<18} {count:>8} ok {errors:>5} errors  {rate:>9.1} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            ms(0.50),
            ms(0.95),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    rate
}

pub async fn run(b: SourcesBench) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency * 4)
        .build()?;
    let api = format!("{}/api/sources/v3.1", b.url.trim_end_matches('/'));
    let org = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let types: serde_json::Value = client
        .get(format!("{api}/source_types?filter[name]=amazon"))
        .send()
        .await
        .context("is sources-api running at --url?")?
        .json()
        .await?;
    let amazon = types["data"][0]["id"]
        .as_str()
        .context("no amazon source type")?
        .to_owned();

    // Phase 1: POST /sources, closed loop.
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(histogram()));
    let deadline = Instant::now() + Duration::from_secs(b.seconds);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..b.concurrency {
        let (client, api, org, amazon, psk) = (
            client.clone(),
            api.clone(),
            org.clone(),
            amazon.clone(),
            b.psk.clone(),
        );
        let (done, errors, hist) = (done.clone(), errors.clone(), hist.clone());
        workers.spawn(async move {
            let mut local = histogram();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let t = Instant::now();
                let res = client
                    .post(format!("{api}/sources"))
                    .header("x-rh-sources-org-id", &org)
                    .header("x-rh-sources-psk", &psk)
                    .json(&json!({"name": format!("bench-{worker}-{n}"), "source_type_id": amazon}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 201 => {
                        local.record(t.elapsed().as_micros() as u64).ok();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist.lock().await.add(&local).ok();
        });
    }
    while workers.join_next().await.is_some() {}
    let post_rate = report(
        "POST /sources",
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
        &*hist.lock().await,
    );

    // Phase 2: GET /sources at a fixed rate: the first page of a tenant with `list_size`
    // sources (the POST phase's tenant has far more than any real one).
    let list_org = format!("bench-list-{}", uuid::Uuid::new_v4().simple());
    for n in 0..b.list_size {
        let r = client
            .post(format!("{api}/sources"))
            .header("x-rh-sources-org-id", &list_org)
            .header("x-rh-sources-psk", &b.psk)
            .json(&json!({"name": format!("list-{n}"), "source_type_id": amazon}))
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("seeding the list tenant failed: {}", r.status());
        }
    }
    let org = list_org;
    let hist = Arc::new(Mutex::new(histogram()));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let interval = Duration::from_secs_f64(1.0 / b.get_rate as f64);
    let total = b.get_rate * b.seconds;
    let start = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, api, org) = (client.clone(), api.clone(), org.clone());
        let (hist, ok, failed) = (hist.clone(), ok.clone(), failed.clone());
        requests.spawn(async move {
            let res = client
                .get(format!("{api}/sources"))
                .header("x-rh-sources-org-id", &org)
                .send()
                .await;
            let good = match res {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if good {
                hist.lock()
                    .await
                    .record(due.elapsed().as_micros() as u64)
                    .ok();
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    report(
        &format!("GET /sources@{}", b.get_rate),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed(),
        &*hist.lock().await,
    );

    // Phase 3: pgbench single-row inserts, same clients, same server.
    let tps = pgbench(&b)?;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "pgbench insert     {tps:>9.1} tx/s  ({} clients, one INSERT per transaction)",
            b.concurrency
        );
        println!("POST / pgbench     {:>9.1} %", 100.0 * post_rate / tps);
    }
    Ok(())
}

fn pgbench(b: &SourcesBench) -> anyhow::Result<f64> {
    let admin = replace_database(&b.database_url, "postgres");
    let scratch = replace_database(&b.database_url, "keel_bench");
    let psql = |url: &str, sql: &str| {
        Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .status()
            .context("psql (PostgreSQL client) is needed for the pgbench baseline")
    };
    psql(&admin, "DROP DATABASE IF EXISTS keel_bench WITH (FORCE)")?;
    psql(&admin, "CREATE DATABASE keel_bench")?;
    psql(
        &scratch,
        "CREATE TABLE rows (id bigserial PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )?;
    let script = std::env::temp_dir().join(format!("keel-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO rows (name) VALUES ('bench-' || :client_id);\n",
    )?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &b.concurrency.to_string(),
            "-j",
            &b.concurrency.min(4).to_string(),
        ])
        .args(["-T", &b.seconds.to_string(), "-f"])
        .arg(&script)
        .arg(&scratch)
        .output()
        .context("pgbench is needed for the baseline (Debian: postgresql-contrib)")?;
    let _ = std::fs::remove_file(&script);
    psql(&admin, "DROP DATABASE IF EXISTS keel_bench WITH (FORCE)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    match tps {
        Some(tps) => Ok(tps),
        None => bail!(
            "could not read pgbench's tps from:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The same server URL with another database name.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/keel", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/keel?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}

/// `keel bench events`: the event stream on a scratch database `keel_bench_events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsBench {
    /// PostgreSQL server (a scratch database `keel_bench_events` is created and dropped).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    /// Kafka brokers; without them only the embedded transport is measured.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Outbox rows the relay throughput phase publishes.
    #[arg(long, default_value_t = 100_000)]
    pub events: i64,
    /// Length of each latency phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events written per second in the latency phases.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Outbox rows the relay publishes per round.
    #[arg(long, default_value_t = 10_000)]
    pub relay_batch: i64,
}

struct LatencyProbe {
    hist: std::sync::Mutex<Histogram<u64>>,
    seen: AtomicU64,
}

impl keel_events::Handler for LatencyProbe {
    async fn handle(&self, m: &keel_events::Message) -> keel_events::Outcome {
        let written: Option<i64> = serde_json::from_slice::<serde_json::Value>(&m.payload)
            .ok()
            .and_then(|v| v["ts_us"].as_i64());
        if let Some(ts) = written {
            let now = now_micros();
            self.hist
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record((now - ts).max(1) as u64)
                .ok();
        }
        self.seen.fetch_add(1, Ordering::Relaxed);
        keel_events::Outcome::Done
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

const OUTBOX: keel_events::Outbox = keel_events::Outbox {
    table: "sources.outbox",
};

pub async fn events(b: EventsBench) -> anyhow::Result<()> {
    let admin = replace_database(&b.database_url, "postgres");
    let url = replace_database(&b.database_url, "keel_bench_events");
    let psql = |sql: &str| {
        Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .status()
            .context("psql is needed to create the scratch database")
    };
    psql("DROP DATABASE IF EXISTS keel_bench_events WITH (FORCE)")?;
    keel_db::ensure_database(&url).await?;
    keel_db::migrate(&url, sources_api::OWNER).await?;
    keel_db::migrate(&url, keel_events::OWNER).await?;
    let db = keel_db::connect(&url, "sources", 10).await?;

    let mut transports = vec![keel_events::Transport::Embedded];
    if let Some(brokers) = b.kafka_brokers.as_deref().filter(|s| !s.is_empty()) {
        relay_throughput(&db, brokers, b.events, b.relay_batch).await?;
        transports.insert(
            0,
            keel_events::Transport::Kafka {
                brokers: brokers.to_owned(),
            },
        );
    }
    for transport in transports {
        latency(&db, &transport, &b).await?;
    }
    db.close().await;
    psql("DROP DATABASE IF EXISTS keel_bench_events WITH (FORCE)")?;
    Ok(())
}

fn start_relay(
    db: &sqlx::PgPool,
    brokers: &str,
    batch: i64,
) -> anyhow::Result<(CancellationToken, tokio::task::JoinHandle<()>)> {
    let stop = CancellationToken::new();
    let relay = keel_events::Relay {
        db: db.clone(),
        outbox: OUTBOX,
        producer: keel_events::kafka::producer(brokers)?,
        batch,
        status: Arc::default(),
    };
    let handle = tokio::spawn(relay.run(stop.clone()));
    Ok((stop, handle))
}

async fn pending(db: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(db)
            .await?,
    )
}

async fn relay_throughput(
    db: &sqlx::PgPool,
    brokers: &str,
    events: i64,
    batch: i64,
) -> anyhow::Result<()> {
    let topic = format!("keel.bench.relay.{}", uuid::Uuid::new_v4().simple());
    keel_events::kafka::ensure_topics(brokers, &[topic.as_str()], 3, 1).await?;
    // Realistic rows: ~500-byte payloads, 50 keys.
    sqlx::query(
        "INSERT INTO outbox (topic, event_type, key, headers, payload) \
         SELECT $1, 'Bench.event', 'org-' || (g % 50), \
           '[[\"event_type\",\"Bench.event\"],[\"encoding\",\"json\"]]'::jsonb, \
           json_build_object('n', g, 'pad', repeat('x', 450)) \
         FROM generate_series(1, $2) g",
    )
    .bind(&topic)
    .bind(events)
    .execute(db)
    .await?;
    let start = Instant::now();
    let (stop, relay) = start_relay(db, brokers, batch)?;
    while pending(db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    relay.await?;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "relay (kafka)      {events:>8} events in {:.2} s = {:>9.0} events/s acknowledged (acks=all)",
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64()
        );
    }

    // The same events read back by a new consumer group, from the earliest offset.
    let probe = Arc::new(LatencyProbe {
        hist: std::sync::Mutex::new(histogram()),
        seen: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    let start = Instant::now();
    let consumer = tokio::spawn(keel_events::consumer::run(
        keel_events::Transport::Kafka {
            brokers: brokers.to_owned(),
        },
        db.clone(),
        OUTBOX,
        keel_events::ConsumerConfig::new(
            format!("bench-{}", uuid::Uuid::new_v4().simple()),
            &[topic.as_str()],
        ),
        probe.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.seen.load(Ordering::Relaxed) < events as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    consumer.await??;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "consume (kafka)    {:>8} events in {:.2} s = {:>9.0} events/s (new group, from earliest, incl. joining)",
            probe.seen.load(Ordering::Relaxed),
            elapsed.as_secs_f64(),
            probe.seen.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

async fn latency(
    db: &sqlx::PgPool,
    transport: &keel_events::Transport,
    b: &EventsBench,
) -> anyhow::Result<()> {
    let topic = format!("keel.bench.latency.{}", uuid::Uuid::new_v4().simple());
    let relay = match transport {
        keel_events::Transport::Kafka { brokers } => {
            keel_events::kafka::ensure_topics(brokers, &[topic.as_str()], 3, 1).await?;
            Some(start_relay(db, brokers, b.relay_batch)?)
        }
        keel_events::Transport::Embedded => None,
    };
    let probe = Arc::new(LatencyProbe {
        hist: std::sync::Mutex::new(histogram()),
        seen: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(keel_events::consumer::run(
        transport.clone(),
        db.clone(),
        OUTBOX,
        keel_events::ConsumerConfig::new(
            format!("bench-{}", uuid::Uuid::new_v4().simple()),
            &[topic.as_str()],
        ),
        probe.clone(),
        stop.clone(),
    ));
    // Give a Kafka consumer time to join its group before measuring.
    if matches!(transport, keel_events::Transport::Kafka { .. }) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Writer: every 10 ms, one transaction with rate/100 events stamped with their write time.
    let per_tick = (b.rate / 100).max(1) as i64;
    let ticks = b.seconds * 100;
    let start = Instant::now();
    let mut written = 0u64;
    for tick in 0..ticks {
        tokio::time::sleep_until((start + Duration::from_millis(10 * tick)).into()).await;
        sqlx::query(
            "INSERT INTO outbox (topic, event_type, key, headers, payload) \
             SELECT $1, 'Bench.event', 'org-' || (g % 50), '[[\"event_type\",\"Bench.event\"]]'::jsonb, \
               json_build_object('ts_us', $2::bigint, 'n', g) \
             FROM generate_series(1, $3) g",
        )
        .bind(&topic)
        .bind(now_micros())
        .bind(per_tick)
        .execute(db)
        .await?;
        written += per_tick as u64;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe.seen.load(Ordering::Relaxed) < written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    consumer.await??;
    if let Some((stop, relay)) = relay {
        stop.cancel();
        relay.await?;
    }
    let h = probe.hist.lock().unwrap_or_else(|e| e.into_inner());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "latency ({:<8}) {:>8} events  {:>8.0} events/s  publish-to-consume p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            transport.name(),
            probe.seen.load(Ordering::Relaxed),
            probe.seen.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
            ms(0.50),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
