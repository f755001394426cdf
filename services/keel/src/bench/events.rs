//! `keel bench events`: the event stream on a scratch database: the relay's throughput to
//! Kafka, and publish-to-consume latency over both transports.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::{ScratchDatabase, histogram};

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
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_events").await?;
    let url = scratch.url.clone();
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
    scratch.remove()
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
