//! The event stream, one suite over both transports: Kafka (the tansu broker `scripts/test`
//! starts, `KAFKA_BROKERS`) and the embedded log (the outbox read from PostgreSQL).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use keel_events::{ConsumerConfig, Handler, KafkaSettings, Message, Outcome, Transport};
use keel_service::{Shutdown, config::Secret};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sources_api::stream::OUTBOX;
use tokio_util::sync::CancellationToken;

use crate::helpers::{As, COST, TestApp};

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect(
        "KAFKA_BROKERS is not set: run the tests through scripts/test, which starts a Kafka-protocol broker",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Kafka,
    Embedded,
}

const BOTH: [Via; 2] = [Via::Kafka, Via::Embedded];

impl Via {
    fn transport(self) -> Transport {
        match self {
            Self::Kafka => Transport::Kafka(kafka()),
            Self::Embedded => Transport::Embedded,
        }
    }
}

fn kafka() -> KafkaSettings {
    KafkaSettings::plain(brokers())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn spawn(via: Via) -> TestApp {
    TestApp::spawn_with(|c| {
        c.status_consumer_group = unique("status");
        if via == Via::Kafka {
            c.common.kafka = Some(kafka());
        }
    })
    .await
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

/// Runs a consumer of `group` until `want` messages keyed `key` arrived (or 60 s passed).
async fn collect(
    app: &TestApp,
    via: Via,
    group: &str,
    topics: &[&str],
    key: &str,
    want: usize,
) -> Vec<Message> {
    collect_until(app, via, group, topics, key, want, None).await
}

async fn collect_until(
    app: &TestApp,
    via: Via,
    group: &str,
    topics: &[&str],
    key: &str,
    want: usize,
    stop_after: Option<usize>,
) -> Vec<Message> {
    collect_from(app, via.transport(), group, topics, key, want, stop_after).await
}

async fn collect_from(
    app: &TestApp,
    transport: Transport,
    group: &str,
    topics: &[&str],
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
    let mut config = ConsumerConfig::new(group, topics);
    config.poll_interval = Duration::from_millis(20);
    let run = tokio::spawn(keel_events::consumer::run(
        transport,
        app.db.clone(),
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

async fn wait_published(app: &TestApp) {
    // Generous: the test broker now and then leaves a request unanswered until it is retried.
    for _ in 0..1000 {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = app.get("/readiness", As::Raw(&[])).await;
    let rows: Vec<(i64, String, bool)> =
        sqlx::query_as("SELECT id, txid::text, published_at IS NOT NULL FROM outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    panic!(
        "the relay did not publish the outbox within 100 s; readiness: {}; rows (id, txid, published): {rows:?}",
        ready.body
    );
}

/// A few writes of every kind for one org; returns the org id.
async fn some_writes(app: &TestApp) -> String {
    let org = unique("org");
    let s = app.create_source(&org, "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    app.patch(
        &format!("/sources/{sid}"),
        As::Org(&org),
        &json!({"name": "aws-2"}),
    )
    .await;
    let a = app
        .create_application(&org, sid, COST, json!({"bucket": "b"}))
        .await;
    app.create_authentication(&org, json!({"resource_type": "Application", "resource_id": a["id"], "authtype": "arn", "username": "arn:aws:iam::1:role/r"}))
        .await;
    app.request(
        reqwest::Method::POST,
        &format!("/sources/{sid}/pause"),
        As::Org(&org),
        None,
    )
    .await;
    // Refused: records nothing.
    app.post(
        "/sources",
        As::Org(&org),
        &json!({"name": "aws-2", "source_type_id": s["source_type_id"]}),
    )
    .await;
    assert_eq!(
        app.delete(&format!("/sources/{sid}"), As::Org(&org))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    org
}

#[tokio::test]
async fn every_write_arrives_with_its_key_headers_and_payload_in_order() {
    for via in BOTH {
        let app = spawn(via).await;
        let org = some_writes(&app).await;
        let expected = app.outbox().await;
        let types: Vec<&str> = expected.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "Source.create",
                "Source.update",
                "Application.create",
                "Authentication.create",
                "Source.pause",
                "Application.pause",
                "Application.destroy",
                "Source.destroy",
                "Authentication.destroy"
            ],
            "{via:?}: the events of the writes above"
        );
        if via == Via::Kafka {
            wait_published(&app).await;
            let ready = app.get("/readiness", As::Raw(&[])).await;
            assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
            let detail = ready.body["checks"]["event_stream"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(detail.starts_with("kafka: 0 rows pending"), "{detail}");
            let metrics = app.metrics().await;
            assert!(
                metrics.contains("outbox_relay_published_total"),
                "published/s is exported"
            );
        }

        let got = collect(
            &app,
            via,
            &unique("group"),
            &["platform.sources.event-stream"],
            &org,
            expected.len(),
        )
        .await;

        assert_eq!(
            got.len(),
            expected.len(),
            "{via:?}: every committed event, and nothing else"
        );
        for (m, e) in got.iter().zip(&expected) {
            assert_eq!(m.topic, "platform.sources.event-stream");
            assert_eq!(m.key_str(), Some(org.as_str()), "{via:?}: keyed by org id");
            let headers: Vec<(String, String)> = m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
                .collect();
            assert_eq!(headers, e.headers, "{via:?}: {} headers", e.event_type);
            let payload: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(payload, e.payload, "{via:?}: {} payload", e.event_type);
        }
        let partitions: BTreeSet<i32> = got.iter().map(|m| m.partition).collect();
        assert_eq!(
            partitions.len(),
            1,
            "{via:?}: one org's events share a partition"
        );
        let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{via:?}: in order");
    }
}

/// The names in Source.create payloads (and the late row's), first deliveries only.
fn first_names(messages: &[Message]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in messages {
        let name = serde_json::from_slice::<Value>(&m.payload).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[tokio::test]
async fn a_late_commit_holds_back_later_events_and_is_never_skipped() {
    for via in BOTH {
        // Batches of 3 rows: the relay pipelines several while the late row waits.
        let app = TestApp::spawn_with(|c| {
            c.status_consumer_group = unique("status");
            c.outbox_relay_batch = 3;
            if via == Via::Kafka {
                c.common.kafka = Some(kafka());
            }
        })
        .await;
        let org = unique("org");
        // A transaction takes its txid with this row, then stays open while later ones commit.
        let mut held = app.db.begin().await.unwrap();
        OUTBOX
            .append(
                &mut held,
                "platform.sources.event-stream",
                &org,
                &[("event_type".to_owned(), "Late.event".to_owned())],
                r#"{"name":"late"}"#,
            )
            .await
            .unwrap();
        for n in 0..10 {
            app.create_source(&org, &format!("after-{n}"), "amazon")
                .await;
        }
        if via == Via::Kafka {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let published: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&app.db)
                    .await
                    .unwrap();
            assert_eq!(
                published, 0,
                "rows after an open transaction are not final: publishing them could skip its row"
            );
        }
        held.commit().await.unwrap();
        if via == Via::Kafka {
            wait_published(&app).await;
        }
        let got = collect(
            &app,
            via,
            &unique("group"),
            &["platform.sources.event-stream"],
            &org,
            11,
        )
        .await;
        let want: Vec<String> = std::iter::once("late".to_owned())
            .chain((0..10).map(|n| format!("after-{n}")))
            .collect();
        assert_eq!(
            first_names(&got),
            want,
            "{via:?}: every event, in transaction order"
        );
    }
}

/// Waits until `holders` sessions other than `except` hold advisory locks with `keys` keys in
/// this database (1: the relay's, 2: embedded-log members'); returns their pids.
async fn lock_holders(app: &TestApp, keys: i32, holders: usize, except: &[i32]) -> Vec<i32> {
    for _ in 0..200 {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = $1 \
             AND granted AND pid <> ALL($2) \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(keys)
        .bind(except)
        .fetch_all(&app.db)
        .await
        .unwrap();
        if pids.len() == holders {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{holders} sessions never held advisory locks with {keys} keys together");
}

/// Ends those sessions, as a database restart or a cut connection would.
async fn cut_lock_holders(app: &TestApp, keys: i32, holders: usize) -> Vec<i32> {
    let pids = lock_holders(app, keys, holders, &[]).await;
    for &pid in &pids {
        let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert!(cut, "session {pid} terminated");
    }
    pids
}

#[tokio::test]
async fn the_relay_takes_its_lock_again_after_losing_its_connection() {
    let app = spawn(Via::Kafka).await;
    let org = unique("org");
    app.create_source(&org, "before", "amazon").await;
    wait_published(&app).await;
    // One relay per database: its lock is the only one-key advisory lock.
    let cut = cut_lock_holders(&app, 1, 1).await;
    // Fails (times out) unless the relay takes its lock again on a new session.
    lock_holders(&app, 1, 1, &cut).await;
    app.create_source(&org, "after", "amazon").await;
    wait_published(&app).await;
    let got = collect(
        &app,
        Via::Kafka,
        &unique("group"),
        &["platform.sources.event-stream"],
        &org,
        2,
    )
    .await;
    assert_eq!(first_names(&got), ["before", "after"]);
}

#[tokio::test]
async fn an_embedded_member_takes_its_lock_again_after_losing_its_connection() {
    let app = spawn(Via::Embedded).await;
    let org = unique("org");
    for n in 0..3 {
        app.create_source(&org, &format!("before-{n}"), "amazon")
            .await;
    }
    let group = unique("group");
    let (got, ()) = tokio::join!(
        collect(
            &app,
            Via::Embedded,
            &group,
            &["platform.sources.event-stream"],
            &org,
            6,
        ),
        async {
            // Members hold their lock while reading: this reader's and sources-api's status
            // consumer's. Cutting those sessions makes them take the lock again and go on from
            // their stored positions.
            let cut = cut_lock_holders(&app, 2, 2).await;
            // Fails (times out) unless both take their locks again on new sessions.
            lock_holders(&app, 2, 2, &cut).await;
            for n in 0..3 {
                app.create_source(&org, &format!("after-{n}"), "amazon")
                    .await;
            }
        }
    );
    let want: Vec<String> = (0..3)
        .map(|n| format!("before-{n}"))
        .chain((0..3).map(|n| format!("after-{n}")))
        .collect();
    assert_eq!(first_names(&got), want);
}

#[tokio::test]
async fn a_second_replica_is_ready_as_the_relays_standby() {
    let app = spawn(Via::Kafka).await;
    let org = unique("org");
    app.create_source(&org, "first", "amazon").await;
    // Published: the first replica's relay holds the lock.
    wait_published(&app).await;

    let mut config = sources_api::Config::for_database(app.database_url.clone());
    config.psks = vec![crate::helpers::PSK.to_owned()];
    config.common.encryption_key = Some(Secret::new(app.encryption_key.clone()));
    config.common.kafka = Some(kafka());
    config.status_consumer_group = unique("status");
    let second = sources_api::App::build(&config).await.unwrap();
    let base = format!("http://{}", second.local_addr());
    let stop = Shutdown::default();
    let run = tokio::spawn(second.run(stop.clone()));

    let mut last = (0, Value::Null);
    for _ in 0..100 {
        let reply = app
            .client
            .get(format!("{base}/readiness"))
            .send()
            .await
            .unwrap();
        last = (reply.status().as_u16(), reply.json().await.unwrap());
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = last.1["checks"]["event_stream"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(last.0, 200, "the standby replica is ready: {}", last.1);
    assert!(detail.starts_with("kafka: standby"), "{detail}");
    // The replica relaying is still the first one: its lock is the only relay lock.
    assert_eq!(lock_holders(&app, 1, 1, &[]).await.len(), 1);
    stop.trigger();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_restarted_group_resumes_after_its_last_commit() {
    for via in BOTH {
        let app = spawn(via).await;
        let org = unique("org");
        for n in 0..12 {
            app.create_source(&org, &format!("s{n:02}"), "amazon").await;
        }
        if via == Via::Kafka {
            wait_published(&app).await;
        }
        let group = unique("group");
        let topics = ["platform.sources.event-stream"];

        let first = collect_until(&app, via, &group, &topics, &org, 12, Some(5)).await;
        assert_eq!(first.len(), 5, "{via:?}: stopped after five");
        let rest = collect(&app, via, &group, &topics, &org, 7).await;

        let name = |m: &Message| {
            serde_json::from_slice::<Value>(&m.payload).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            rest.len(),
            7,
            "{via:?}: resumed after the last commit, nothing repeated or lost"
        );
        assert_eq!(name(&rest[0]), "s05", "{via:?}");
        let all: Vec<String> = first.iter().chain(&rest).map(name).collect();
        let want: Vec<String> = (0..12).map(|n| format!("s{n:02}")).collect();
        assert_eq!(all, want);
    }
}

/// Handles by payload: `fail` is dead-lettered, `retry` fails twice before succeeding.
struct Picky {
    handled: Mutex<Vec<String>>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Handler for Picky {
    async fn handle(&self, message: &Message) -> Outcome {
        let body = String::from_utf8_lossy(&message.payload).into_owned();
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(body.clone()).or_default();
            *n += 1;
            *n
        };
        match body.as_str() {
            "\"fail\"" => Outcome::Fail("nope".into()),
            "\"retry\"" if attempt < 3 => Outcome::Retry("not yet".into()),
            _ => {
                self.handled.lock().unwrap().push(body);
                Outcome::Done
            }
        }
    }
}

async fn publish(
    app: &TestApp,
    via: Via,
    topic: &str,
    key: &str,
    headers: &[(&str, &str)],
    payloads: &[String],
) {
    match via {
        Via::Kafka => {
            keel_events::kafka::ensure_topics(&kafka(), &[topic], 3, 1)
                .await
                .unwrap();
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .create()
                .unwrap();
            for p in payloads {
                let hs = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(*v),
                    })
                });
                producer
                    .send(
                        FutureRecord::to(topic).key(key).payload(p).headers(hs),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
        Via::Embedded => {
            let mut conn = app.db.acquire().await.unwrap();
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            for p in payloads {
                OUTBOX
                    .append(&mut conn, topic, key, &headers, p)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Picky taking whole batches: stops at its first retry, as the contract allows.
struct Batched {
    picky: Picky,
    sizes: Mutex<Vec<usize>>,
}

impl Handler for Batched {
    const TAKES_BATCHES: bool = true;

    async fn handle(&self, message: &Message) -> Outcome {
        self.picky.handle(message).await
    }

    async fn handle_batch(&self, messages: &[Message]) -> Vec<Outcome> {
        self.sizes.lock().unwrap().push(messages.len());
        let mut outcomes = Vec::new();
        for m in messages {
            let outcome = self.picky.handle(m).await;
            let retry = matches!(outcome, Outcome::Retry(_));
            outcomes.push(outcome);
            if retry {
                break;
            }
        }
        outcomes
    }
}

impl AsRef<Picky> for Picky {
    fn as_ref(&self) -> &Picky {
        self
    }
}

impl AsRef<Picky> for Batched {
    fn as_ref(&self) -> &Picky {
        &self.picky
    }
}

fn picky() -> Picky {
    Picky {
        handled: Mutex::default(),
        attempts: Mutex::default(),
    }
}

#[tokio::test]
async fn failures_are_dead_lettered_and_retries_hold_the_partition() {
    for via in BOTH {
        dead_letters_and_retries(via, Arc::new(picky())).await;
    }
}

/// The same contract when the handler takes batches: the messages before a retry are not
/// handled again, the retried one and those after it are, in order.
#[tokio::test]
async fn batches_keep_the_contract_of_single_messages() {
    for via in BOTH {
        let handler = Arc::new(Batched {
            picky: picky(),
            sizes: Mutex::default(),
        });
        dead_letters_and_retries(via, handler.clone()).await;
        let sizes = handler.sizes.lock().unwrap().clone();
        if via == Via::Embedded {
            // All four were in the log before the consumer started: one batch.
            assert_eq!(sizes.first(), Some(&4), "{sizes:?}");
        }
        assert!(!sizes.is_empty(), "{via:?}: batches were used");
    }
}

async fn dead_letters_and_retries<H: Handler + AsRef<Picky>>(via: Via, handler: Arc<H>) {
    {
        let app = spawn(via).await;
        let topic = unique("keel-test");
        let payloads: Vec<String> = ["a", "retry", "fail", "b"]
            .iter()
            .map(|p| json!(p).to_string())
            .collect();
        publish(&app, via, &topic, "k", &[("event_type", "test")], &payloads).await;

        let token = CancellationToken::new();
        let group = unique("group");
        let mut config = ConsumerConfig::new(&group, &[topic.as_str()]);
        config.retry_base = Duration::from_millis(10);
        config.poll_interval = Duration::from_millis(20);
        let run = tokio::spawn(keel_events::consumer::run(
            via.transport(),
            app.db.clone(),
            OUTBOX,
            config,
            handler.clone(),
            token.clone(),
        ));
        for _ in 0..600 {
            if AsRef::<Picky>::as_ref(&*handler)
                .handled
                .lock()
                .unwrap()
                .len()
                >= 3
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        token.cancel();
        run.await.unwrap().unwrap();

        assert_eq!(
            *AsRef::<Picky>::as_ref(&*handler).handled.lock().unwrap(),
            ["\"a\"", "\"retry\"", "\"b\""],
            "{via:?}: in order, b after the retried one"
        );
        assert_eq!(
            AsRef::<Picky>::as_ref(&*handler).attempts.lock().unwrap()["\"retry\""],
            3,
            "{via:?}"
        );
        let dead: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT topic, error, payload FROM keel_events.dead_letters WHERE group_id = $1",
        )
        .bind(&group)
        .fetch_all(&app.db)
        .await
        .unwrap();
        assert_eq!(
            dead,
            vec![(topic.clone(), "nope".to_owned(), b"\"fail\"".to_vec())],
            "{via:?}"
        );
    }
}

#[tokio::test]
async fn two_consumers_in_one_group_split_the_partitions() {
    let app = spawn(Via::Kafka).await;
    let topic = unique("keel-split");
    keel_events::kafka::ensure_topics(&kafka(), &[topic.as_str()], 3, 1)
        .await
        .unwrap();
    let group = unique("group");

    struct Member {
        seen: Mutex<Vec<(i32, String)>>,
    }
    impl Handler for Member {
        async fn handle(&self, m: &Message) -> Outcome {
            self.seen
                .lock()
                .unwrap()
                .push((m.partition, m.key_str().unwrap_or_default().to_owned()));
            Outcome::Done
        }
    }
    let token = CancellationToken::new();
    let members: Vec<Arc<Member>> = (0..2)
        .map(|_| {
            Arc::new(Member {
                seen: Mutex::default(),
            })
        })
        .collect();
    let runs: Vec<_> = members
        .iter()
        .map(|m| {
            tokio::spawn(keel_events::consumer::run(
                Via::Kafka.transport(),
                app.db.clone(),
                OUTBOX,
                ConsumerConfig::new(&group, &[topic.as_str()]),
                m.clone(),
                token.clone(),
            ))
        })
        .collect();
    // Let the group settle on both members before producing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for n in 0..60 {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("key-{n}"))
                    .payload("x"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    for _ in 0..300 {
        let total: usize = members.iter().map(|m| m.seen.lock().unwrap().len()).sum();
        if total >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let partitions: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| m.seen.lock().unwrap().iter().map(|(p, _)| *p).collect())
        .collect();
    let keys: BTreeSet<String> = members
        .iter()
        .flat_map(|m| {
            m.seen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, k)| k.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(keys.len(), 60, "every message handled");
    assert!(
        !partitions[0].is_empty() && !partitions[1].is_empty(),
        "both members work: {partitions:?}"
    );
    assert!(
        partitions[0].is_disjoint(&partitions[1]),
        "each partition has one member: {partitions:?}"
    );
}

#[tokio::test]
async fn status_messages_update_resources_and_announce_it() {
    for via in BOTH {
        let app = spawn(via).await;
        let org = unique("org");
        let s = app.create_source(&org, "aws", "amazon").await;
        let sid = s["id"].as_str().unwrap();
        let a = app.create_application(&org, sid, COST, json!({})).await;
        let aid = a["id"].as_str().unwrap();
        app.clear_outbox().await;

        let status = json!({"resource_type": "Application", "resource_id": aid, "status": "unavailable", "error": "bucket missing"}).to_string();
        let bad = json!({"resource_type": "Application", "resource_id": aid, "status": "sideways"})
            .to_string();
        publish(
            &app,
            via,
            "platform.sources.status",
            &org,
            &[
                ("event_type", "availability_status"),
                ("x-rh-sources-org-id", &org),
            ],
            &[bad, status],
        )
        .await;

        let mut app_now = Value::Null;
        for _ in 0..600 {
            app_now = app
                .get(&format!("/applications/{aid}"), As::Org(&org))
                .await
                .body;
            if app_now["availability_status"] == "unavailable" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(app_now["availability_status"], "unavailable", "{via:?}");
        assert_eq!(app_now["availability_status_error"], "bucket missing");
        assert!(app_now["last_checked_at"].is_string());
        let source = app
            .get(&format!("/sources/{sid}"), As::Org(&org))
            .await
            .body;
        assert_eq!(
            source["availability_status"], "unavailable",
            "{via:?}: the source follows its application"
        );

        let events: Vec<_> = app
            .outbox()
            .await
            .into_iter()
            .filter(|e| e.topic == "platform.sources.event-stream")
            .collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["Application.update", "Records.update"], "{via:?}");
        let records = &events[1].payload;
        assert_eq!(records["source"]["id"], sid.parse::<i64>().unwrap());
        assert_eq!(
            records["applications"][0]["availability_status"],
            "unavailable"
        );
        assert_eq!(
            records["updated"]["Application"][aid],
            json!([
                "availability_status",
                "availability_status_error",
                "last_available_at",
                "last_checked_at"
            ])
        );
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM keel_events.dead_letters WHERE topic = 'platform.sources.status' AND error LIKE 'invalid status%'")
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(
            dead, 1,
            "{via:?}: the invalid message is dead-lettered, the next one still handled"
        );
    }
}

/// A broker of this test's own, so it can be stopped and started again.
struct OwnBroker {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnBroker {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("tansu"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = Self {
            dir,
            port,
            child: None,
        };
        broker.up().await;
        broker
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let bin = std::env::var("TANSU_BIN")
            .expect("TANSU_BIN is not set: run the tests through scripts/test");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = tokio::process::Command::new(bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tansu did not listen");
    }

    async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_relay_survives_a_broker_restart_without_losing_events() {
    let mut broker = OwnBroker::start().await;
    let brokers = broker.brokers();
    let app = TestApp::spawn_with(|c| {
        c.status_consumer_group = unique("status");
        c.common.kafka = Some(KafkaSettings::plain(brokers.clone()));
    })
    .await;
    let org = unique("org");
    for n in 0..20 {
        app.create_source(&org, &format!("before-{n}"), "amazon")
            .await;
    }
    wait_published(&app).await;

    broker.down().await;
    for n in 0..20 {
        // The API keeps accepting writes while Kafka is down: the events wait in the outbox.
        app.create_source(&org, &format!("during-{n}"), "amazon")
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        pending > 0,
        "nothing can be acknowledged while the broker is down"
    );

    broker.up().await;
    wait_published(&app).await;

    let transport = Transport::Kafka(KafkaSettings::plain(brokers.clone()));
    let got = collect_from(
        &app,
        transport,
        &unique("group"),
        &["platform.sources.event-stream"],
        &org,
        40,
        None,
    )
    .await;
    let deliveries = got.len();
    let first_seen = first_names(&got);
    assert_eq!(first_seen.len(), 40, "no event lost across the restart");
    eprintln!(
        "duplicates after the broker restart: {}",
        deliveries - first_seen.len()
    );
    // Order per key holds for first deliveries.
    let want: Vec<String> = (0..20)
        .map(|n| format!("before-{n}"))
        .chain((0..20).map(|n| format!("during-{n}")))
        .collect();
    assert_eq!(first_seen, want, "in order");
}

/// Never finishes the first message, so nothing is ever committed.
struct Stuck;

impl Handler for Stuck {
    async fn handle(&self, _: &Message) -> Outcome {
        Outcome::Retry("stuck".into())
    }
}

#[tokio::test]
async fn consumer_lag_counts_what_is_not_handled_yet() {
    // Kafka: high watermark - committed offset. Embedded log: rows past the group's position,
    // taken from a short read, or counted when a read comes back full (more than 500).
    for (via, waiting) in [(Via::Kafka, 5), (Via::Embedded, 5), (Via::Embedded, 600)] {
        let app = spawn(via).await;
        let topic = unique("keel-lag");
        let payloads: Vec<String> = (0..waiting).map(|n| n.to_string()).collect();
        publish(
            &app,
            via,
            &topic,
            "one-key",
            &[("event_type", "test")],
            &payloads,
        )
        .await;
        let group = unique("group");
        let mut config = ConsumerConfig::new(&group, &[topic.as_str()]);
        config.lag_interval = Duration::from_millis(300);
        let token = CancellationToken::new();
        let run = tokio::spawn(keel_events::consumer::run(
            via.transport(),
            app.db.clone(),
            OUTBOX,
            config,
            Arc::new(Stuck),
            token.clone(),
        ));

        let series = format!("events_consumer_lag{{group=\"{group}\",topic=\"{topic}\"");
        let mut line = String::new();
        for _ in 0..300 {
            let metrics = app.metrics().await;
            if let Some(l) = metrics
                .lines()
                .find(|l| l.starts_with(&series) && !l.ends_with(" 0"))
            {
                line = l.to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        token.cancel();
        run.await.unwrap().unwrap();
        assert!(
            line.ends_with(&format!(" {waiting}")),
            "{via:?}: {waiting} messages wait on one partition: {line:?}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_old_rows_but_never_unpublished_ones_under_kafka() {
    // The app's own retention task is off: the test calls the pruning itself.
    let app = TestApp::spawn_with(|c| {
        c.status_consumer_group = unique("status");
        c.outbox_retention_hours = 0;
    })
    .await;
    let org = unique("org");
    for n in 0..4 {
        app.create_source(&org, &format!("s{n}"), "amazon").await;
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    // Two rows eight days old, one of them published; two recent ones, one published.
    sqlx::query("UPDATE outbox SET created_at = now() - interval '8 days' WHERE id = ANY($1)")
        .bind(&ids[..2])
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind([ids[0], ids[2]])
        .execute(&app.db)
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let left = || async {
        sqlx::query_scalar::<_, i64>("SELECT id FROM outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap()
    };

    // Kafka: only what the relay already published goes.
    assert_eq!(OUTBOX.prune(&app.db, week, true).await.unwrap(), 1);
    assert_eq!(left().await, ids[1..]);
    // Embedded log: age alone decides, as Kafka's log retention does.
    assert_eq!(OUTBOX.prune(&app.db, week, false).await.unwrap(), 1);
    assert_eq!(left().await, ids[2..]);
    assert_eq!(OUTBOX.prune(&app.db, week, false).await.unwrap(), 0);
}
