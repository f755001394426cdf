//! Kafka members under load: a slow or stuck handler holds a bounded number of messages, not
//! its topic's backlog, and a rebalance takes a partition from one member before another
//! starts on it.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use keel_events::{ConsumerConfig, Handler, Message, Outcome};
use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, OUTBOX, Via, unique};

/// `n` messages of ~200 bytes over `keys` keys, appended in one statement.
async fn backlog(h: &Harness, n: i64, keys: i64) {
    sqlx::query(
        "INSERT INTO outbox (topic, event_type, key, headers, payload) \
         SELECT $1, 'Test.event', 'key-' || (g % $3), '[]', \
           json_build_object('n', g, 'pad', repeat('p', 200)) \
         FROM generate_series(1, $2) g",
    )
    .bind(&h.topic)
    .bind(n)
    .bind(keys)
    .execute(&h.db)
    .await
    .unwrap();
    h.wait_published().await;
}

fn member(
    h: &Harness,
    group: &str,
    handler: Arc<impl Handler>,
    token: &CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(keel_events::consumer::run(
        Via::Kafka.transport(),
        h.db.clone(),
        OUTBOX,
        ConsumerConfig::new(group, &[h.topic.as_str()]),
        handler,
        token.clone(),
    ))
}

struct Stuck;

impl Handler for Stuck {
    async fn handle(&self, _: &Message) -> Outcome {
        Outcome::Retry("stuck".into())
    }
}

/// A handler retrying its first message (its database down) holds the member's buffer, then
/// its partition is paused: the member does not pull the whole backlog into memory.
#[tokio::test]
async fn a_stuck_partition_holds_a_bounded_number_of_messages() {
    let h = Harness::start(Via::Kafka).await;
    let total = 30_000;
    backlog(&h, total, 1).await;
    let group = unique("group");
    let token = CancellationToken::new();
    let run = member(&h, &group, Arc::new(Stuck), &token);
    let series = format!("events_consumer_buffered{{group=\"{group}\"}} ");
    let mut peak = 0.0f64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let rendered = keel_telemetry::prometheus().render();
        if let Some(v) = rendered
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse::<f64>().ok())
        {
            peak = peak.max(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();
    assert!(peak > 0.0, "messages reached the member");
    assert!(
        peak < 10_000.0,
        "at most {peak} of {total} messages held while the handler is stuck"
    );
}

/// (member, partition, offset, when its handling started)
type Entry = (&'static str, i32, i64, Instant);

/// Who handled what, and when it started.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<Entry>>>,
}

impl Handler for Recorder {
    async fn handle(&self, m: &Message) -> Outcome {
        let entry = (self.name, m.partition, m.offset, Instant::now());
        self.log.lock().unwrap().push(entry);
        tokio::time::sleep(Duration::from_millis(10)).await;
        Outcome::Done
    }
}

/// A second member joins while the first works through a backlog: every message is handled,
/// and on each partition the second member takes, the first starts nothing after the second
/// has begun (its buffered messages are dropped, what it handled committed at the revoke).
#[tokio::test]
async fn a_rebalance_stops_the_old_owner_before_the_new_one_starts() {
    let h = Harness::start(Via::Kafka).await;
    let total = 1_000;
    backlog(&h, total, 30).await;
    let group = unique("group");
    let log = Arc::new(Mutex::new(Vec::new()));
    let token = CancellationToken::new();
    let recorder = |name| {
        Arc::new(Recorder {
            name,
            log: log.clone(),
        })
    };
    let first = member(&h, &group, recorder("first"), &token);
    let count = |who: &str| log.lock().unwrap().iter().filter(|e| e.0 == who).count();
    while count("first") < 30 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = member(&h, &group, recorder("second"), &token);
    let handled =
        || -> BTreeSet<(i32, i64)> { log.lock().unwrap().iter().map(|e| (e.1, e.2)).collect() };
    let started = Instant::now();
    while handled().len() < total as usize && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();

    assert_eq!(
        handled().len(),
        total as usize,
        "every message handled at least once"
    );
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|e| e.0 == "second"),
        "the second member took partitions"
    );
    let mut second_began: HashMap<i32, Instant> = HashMap::new();
    for e in log.iter().filter(|e| e.0 == "second") {
        let at = second_began.entry(e.1).or_insert(e.3);
        *at = (*at).min(e.3);
    }
    for e in log.iter().filter(|e| e.0 == "first") {
        if let Some(began) = second_began.get(&e.1) {
            assert!(
                e.3 < *began,
                "the first member started offset {} of partition {} after the second began there",
                e.2,
                e.1
            );
        }
    }
}
