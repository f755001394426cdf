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
use keel_events::outbox::AppendColumns;
use keel_service::KafkaSettings;
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
    /// Only the producer and relay throughput phases: for a broker that acknowledges and keeps
    /// nothing (tansu's `null` storage engine), which measures the relay's own ceiling.
    #[arg(long)]
    pub relay_only: bool,
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

const OUTBOX: keel_events::Outbox = keel_events::Outbox::new("sources", "sources.outbox");

pub async fn events(b: EventsBench) -> anyhow::Result<()> {
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_events").await?;
    let url = scratch.url.clone();
    keel_db::migrate(&url, sources_api::OWNER).await?;
    keel_db::migrate(&url, keel_events::OWNER).await?;
    let db = keel_db::connect(&url, "sources", 10).await?;

    let mut transports = vec![keel_events::Transport::Embedded];
    if let Some(brokers) = b.kafka_brokers.as_deref().filter(|s| !s.is_empty()) {
        let kafka = KafkaSettings::plain(brokers);
        relay_throughput(&db, &kafka, &b).await?;
        if b.relay_only {
            transports.clear();
        } else {
            transports.insert(0, keel_events::Transport::Kafka(kafka));
        }
    }
    for transport in transports {
        latency(&db, &transport, &b).await?;
    }
    db.close().await;
    scratch.remove()
}

struct RunningRelay {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    status: Arc<keel_events::relay::RelayStatus>,
}

fn start_relay(
    db: &sqlx::PgPool,
    kafka: &KafkaSettings,
    batch: i64,
) -> anyhow::Result<RunningRelay> {
    let stop = CancellationToken::new();
    let status = Arc::new(keel_events::relay::RelayStatus::default());
    let relay = keel_events::Relay::new(db.clone(), OUTBOX, kafka, batch, status.clone())?;
    let task = tokio::spawn(relay.run(stop.clone()));
    Ok(RunningRelay { stop, task, status })
}

async fn relay_throughput(
    db: &sqlx::PgPool,
    kafka: &KafkaSettings,
    b: &EventsBench,
) -> anyhow::Result<()> {
    let (events, batch) = (b.events, b.relay_batch);
    let topic = format!("keel.bench.relay.{}", uuid::Uuid::new_v4().simple());
    let baseline_topic = format!("keel.bench.baseline.{}", uuid::Uuid::new_v4().simple());
    keel_events::kafka::ensure_topics(kafka, &[topic.as_str(), baseline_topic.as_str()], 3, 1)
        .await?;
    // Rows shaped like sources-api's: its five headers (the identity header base64 JSON, as
    // sent), ~500-byte payloads, 50 orgs as keys.
    let generated = "WITH g AS (SELECT (1000000 + n % 50)::text AS org, n \
                     FROM generate_series(1, $2) n) ";
    let append = OUTBOX.append_from(
        "g",
        AppendColumns {
            topic: "$1",
            event_type: "'Source.update'",
            key: "org",
            headers: "jsonb_build_array( \
               jsonb_build_array('x-rh-sources-account-number', 'acct' || org), \
               jsonb_build_array('x-rh-sources-org-id', org), \
               jsonb_build_array('x-rh-identity', replace(encode(convert_to(json_build_object( \
                 'identity', json_build_object('account_number', 'acct' || org, 'org_id', org, \
                 'type', 'User', 'internal', json_build_object('org_id', org)))::text, 'UTF8'), \
                 'base64'), E'\\n', '')), \
               jsonb_build_array('event_type', 'Source.update'), \
               jsonb_build_array('encoding', 'json'))",
            payload: "json_build_object('n', n, 'pad', repeat('x', 450))",
        },
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("{generated}{append}")))
        .bind(&topic)
        .bind(events)
        .execute(db)
        .await?;

    // The broker's own ceiling: the same messages from memory through the same producer
    // settings, no database involved.
    let mut rows = Vec::with_capacity(events as usize);
    let mut conn = db.acquire().await?;
    while (rows.len() as i64) < events {
        let after = rows.last().map(keel_events::outbox::OutboxRow::position);
        let batch = OUTBOX
            .unpublished(&mut conn, after, events - rows.len() as i64)
            .await?;
        if batch.is_empty() {
            break;
        }
        rows.extend(batch);
    }
    drop(conn);
    let producer = keel_events::kafka::producer(kafka)?;
    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in &rows {
        deliveries.push(keel_events::kafka::send(
            &producer,
            &baseline_topic,
            &row.key,
            &row.headers.0,
            &row.payload,
        )?);
    }
    for delivery in deliveries {
        delivery
            .await?
            .map_err(|(e, _)| anyhow::anyhow!("not acknowledged: {e}"))?;
    }
    let baseline = events as f64 / start.elapsed().as_secs_f64();
    drop(rows);
    #[expect(clippy::print_stdout)]
    {
        println!(
            "producer (kafka)   {events:>8} events in {:.2} s = {baseline:>9.0} events/s acknowledged (no database: the broker's ceiling)",
            start.elapsed().as_secs_f64(),
        );
    }

    let start = Instant::now();
    let relay = start_relay(db, kafka, batch)?;
    // The relay's own counter: polling the table would compete with it for the database.
    while relay.status.published.load(Ordering::Relaxed) < events as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    relay.stop.cancel();
    relay.task.await?;
    let rate = events as f64 / elapsed.as_secs_f64();
    #[expect(clippy::print_stdout)]
    {
        println!(
            "relay (kafka)      {events:>8} events in {:.2} s = {rate:>9.0} events/s acknowledged (acks=all), {:.0} % of the producer ceiling",
            elapsed.as_secs_f64(),
            100.0 * rate / baseline
        );
    }

    if b.relay_only {
        return Ok(());
    }

    // The same events read back by a new consumer group, from the earliest offset.
    let probe = Arc::new(LatencyProbe {
        hist: std::sync::Mutex::new(histogram()),
        seen: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    let start = Instant::now();
    let consumer = tokio::spawn(keel_events::consumer::run(
        keel_events::Transport::Kafka(kafka.clone()),
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
        keel_events::Transport::Kafka(kafka) => {
            keel_events::kafka::ensure_topics(kafka, &[topic.as_str()], 3, 1).await?;
            Some(start_relay(db, kafka, b.relay_batch)?)
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
    if matches!(transport, keel_events::Transport::Kafka(_)) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Writer: every 10 ms, one transaction with rate/100 events stamped with their write time.
    let per_tick = (b.rate / 100).max(1) as i64;
    let ticks = b.seconds * 100;
    let stamped = format!(
        "WITH g AS (SELECT n FROM generate_series(1, $3) n) {}",
        OUTBOX.append_from(
            "g",
            AppendColumns {
                topic: "$1",
                event_type: "'Bench.event'",
                key: "'org-' || (n % 50)",
                headers: r#"'[["event_type","Bench.event"]]'::jsonb"#,
                payload: "json_build_object('ts_us', $2::bigint, 'n', n)",
            },
        )
    );
    let start = Instant::now();
    let mut written = 0u64;
    for tick in 0..ticks {
        tokio::time::sleep_until((start + Duration::from_millis(10 * tick)).into()).await;
        sqlx::query(sqlx::AssertSqlSafe(stamped.clone()))
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
    if let Some(relay) = relay {
        relay.stop.cancel();
        relay.task.await?;
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
