//! A database with an outbox of its own (migrated by this library), a relay when the suite
//! runs over Kafka, and the helpers the contract tests share: writers, collectors, lock
//! inspection. No service is involved: these tests hold the library to its contract.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use keel_db::testing::TestDatabase;
use keel_events::{
    ConsumerConfig, Handler, KafkaSettings, Message, NewMessage, Outbox, Outcome, Relay, Transport,
    relay::RelayStatus,
};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The outbox under test, in a schema of its own.
pub const OUTBOX: Outbox = Outbox::new("events_test", "events_test.outbox");

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect(
        "KAFKA_BROKERS is not set: run the tests through scripts/test, which starts a Kafka-protocol broker",
    )
}

pub fn kafka() -> KafkaSettings {
    KafkaSettings::plain(brokers())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Kafka,
    Embedded,
}

pub const BOTH: [Via; 2] = [Via::Kafka, Via::Embedded];

impl Via {
    pub fn transport(self) -> Transport {
        match self {
            Self::Kafka => Transport::Kafka(kafka()),
            Self::Embedded => Transport::Embedded,
        }
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct Harness {
    /// `search_path` = the outbox's schema, then the library's.
    pub db: PgPool,
    /// One topic per harness: tests share the broker.
    pub topic: String,
    pub via: Via,
    relay: Option<(CancellationToken, JoinHandle<()>)>,
    pub relay_status: Arc<RelayStatus>,
    _database: TestDatabase,
}

impl Harness {
    /// A fresh database; over Kafka, the topic created and a relay of `batch` rows running.
    pub async fn start(via: Via) -> Self {
        Self::start_with(via, 10_000, (via == Via::Kafka).then(kafka)).await
    }

    /// The same, with the relay's batch size and the cluster (`None`: no relay) chosen.
    pub async fn start_with(via: Via, batch: i64, relay_to: Option<KafkaSettings>) -> Self {
        keel_telemetry::init_for_tests();
        // The recorder the lag test reads, installed before any metric is recorded.
        let _ = keel_telemetry::prometheus();
        let database = TestDatabase::create(&server_url(), &[OUTBOX.owner(), keel_events::OWNER])
            .await
            .expect("a test database (is PostgreSQL running?)");
        let db = keel_db::connect(&database.url, "events_test,keel_events", 8)
            .await
            .unwrap();
        let topic = unique("keel-contract");
        let relay_status = Arc::new(RelayStatus::default());
        let relay = match relay_to {
            Some(kafka) => {
                keel_events::kafka::ensure_topics(&kafka, &[topic.as_str()], 3, 1)
                    .await
                    .unwrap();
                let relay =
                    Relay::new(db.clone(), OUTBOX, &kafka, batch, relay_status.clone()).unwrap();
                let stop = CancellationToken::new();
                Some((stop.clone(), tokio::spawn(relay.run(stop))))
            }
            None => None,
        };
        Self {
            db,
            topic,
            via,
            relay,
            relay_status,
            _database: database,
        }
    }

    /// Appends one committed message per payload, keyed `key`, each in its own transaction.
    pub async fn write(&self, key: &str, payloads: &[String]) {
        for payload in payloads {
            let mut tx = self.db.begin().await.unwrap();
            self.append(&mut tx, key, payload).await;
            tx.commit().await.unwrap();
        }
    }

    /// `{"name": <name>}` per name: tests read the names back in order.
    pub async fn write_names(&self, key: &str, names: &[String]) {
        let payloads: Vec<String> = names
            .iter()
            .map(|n| serde_json::json!({ "name": n }).to_string())
            .collect();
        self.write(key, &payloads).await;
    }

    /// Appends one message inside `conn`'s transaction.
    pub async fn append(&self, conn: &mut sqlx::PgConnection, key: &str, payload: &str) {
        let headers = [("event_type".to_owned(), "Test.event".to_owned())];
        OUTBOX
            .append(
                conn,
                &[NewMessage {
                    topic: &self.topic,
                    event_type: "Test.event",
                    key,
                    headers: &headers,
                    payload,
                }],
            )
            .await
            .unwrap();
    }

    pub async fn pending(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits (generously: the test broker now and then leaves a request unanswered until it
    /// is retried) until the relay published every row.
    pub async fn wait_published(&self) {
        for _ in 0..1000 {
            if self.pending().await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the relay did not publish the outbox within 100 s ({} failures)",
            self.relay_status
                .failures
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    /// Over Kafka, waits for the relay; on the embedded log, until every row written is final
    /// (readers hold back rows behind transactions still open, other tests' among them).
    pub async fn delivered(&self) {
        if self.via == Via::Kafka {
            return self.wait_published().await;
        }
        for _ in 0..600 {
            let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE topic = $1")
                .bind(&self.topic)
                .fetch_one(&self.db)
                .await
                .unwrap();
            let readable = OUTBOX
                .backlog(&self.db, &self.topic, Default::default())
                .await
                .unwrap();
            if readable == written {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the outbox rows did not become final within 60 s");
    }

    /// Runs a consumer of `group` until `want` messages keyed `key` arrived (or 60 s passed).
    pub async fn collect(&self, group: &str, key: &str, want: usize) -> Vec<Message> {
        self.collect_from(self.via.transport(), group, key, want, None)
            .await
    }

    /// The same, over `transport`, stopping the consumer after `stop_after` messages.
    pub async fn collect_from(
        &self,
        transport: Transport,
        group: &str,
        key: &str,
        want: usize,
        stop_after: Option<usize>,
    ) -> Vec<Message> {
        let token = CancellationToken::new();
        let collector = Arc::new(Collector {
            key: key.to_owned(),
            seen: Mutex::new(Vec::new()),
            stop_after: stop_after.map(|n| (n, token.clone())),
        });
        let mut config = ConsumerConfig::new(group, &[self.topic.as_str()]);
        config.poll_interval = Duration::from_millis(20);
        let run = tokio::spawn(keel_events::consumer::run(
            transport,
            self.db.clone(),
            OUTBOX,
            config,
            collector.clone(),
            token.clone(),
        ));
        for _ in 0..600 {
            if collector.seen.lock().unwrap().len() >= want || token.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        token.cancel();
        run.await.unwrap().unwrap();
        collector.seen.lock().unwrap().clone()
    }

    /// Sessions holding the library's advisory locks: see [`advisory_lock_holders`].
    pub async fn lock_holders(&self, keys: i32, holders: usize, except: &[i32]) -> Vec<i32> {
        keel_events::testing::advisory_lock_holders(&self.db, keys, holders, except).await
    }

    /// Ends those sessions, as a database restart or a cut connection would.
    pub async fn cut_lock_holders(&self, keys: i32, holders: usize) -> Vec<i32> {
        let pids = self.lock_holders(keys, holders, &[]).await;
        for &pid in &pids {
            let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&self.db)
                .await
                .unwrap();
            assert!(cut, "session {pid} terminated");
        }
        pids
    }

    pub async fn stop(mut self) {
        if let Some((stop, task)) = self.relay.take() {
            stop.cancel();
            task.await.unwrap();
        }
    }
}

/// Collects the messages whose key is `key`; optionally stops the consumer after `stop_after`.
struct Collector {
    key: String,
    seen: Mutex<Vec<Message>>,
    stop_after: Option<(usize, CancellationToken)>,
}

impl Handler for Collector {
    async fn handle(&self, message: &Message) -> Outcome {
        if message.key_str() == Some(self.key.as_str()) {
            let mut seen = self.seen.lock().unwrap();
            seen.push(message.clone());
            if let Some((n, token)) = &self.stop_after
                && seen.len() >= *n
            {
                token.cancel();
            }
        }
        Outcome::Done
    }
}

/// The `name`s of the payloads, first deliveries only (Kafka may deliver twice).
pub fn first_names(messages: &[Message]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in messages {
        let name = serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:02}")).collect()
}
