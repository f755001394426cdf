//! sources-api on the event stream, over both transports: Kafka (the tansu broker
//! `scripts/test` starts, `KAFKA_BROKERS`) and the embedded log. What every write announces,
//! a standby replica's readiness, and the status consumer. The event library's own contract
//! (ordering, commits, retries, dead letters, the relay's lock, retention) is tested in
//! `libs/keel-events/tests/contract`.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use keel_events::{
    ConsumerConfig, Handler, KafkaSettings, Message, NewMessage, Outcome, Transport,
};
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

/// Collects the messages whose key is `key`.
struct Collector {
    key: String,
    seen: Mutex<Vec<Message>>,
}

impl Handler for Collector {
    async fn handle(&self, message: &Message) -> Outcome {
        if message.key_str() == Some(self.key.as_str()) {
            self.seen.lock().unwrap().push(message.clone());
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
    let token = CancellationToken::new();
    let collector = Arc::new(Collector {
        key: key.to_owned(),
        seen: Mutex::new(Vec::new()),
    });
    let mut config = ConsumerConfig::new(group, topics);
    config.poll_interval = Duration::from_millis(20);
    let run = tokio::spawn(keel_events::consumer::run(
        via.transport(),
        app.db.clone(),
        OUTBOX,
        config,
        collector.clone(),
        token.clone(),
    ));
    for _ in 0..600 {
        if collector.seen.lock().unwrap().len() >= want {
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
    assert_eq!(
        keel_events::testing::advisory_lock_holders(&app.db, 1, 1, &[])
            .await
            .len(),
        1
    );
    stop.trigger();
    run.await.unwrap().unwrap();
}

/// Sends what an application sends on `topic`: straight to Kafka, or into the outbox (the
/// embedded log).
async fn publish(
    app: &TestApp,
    via: Via,
    topic: &str,
    key: &str,
    headers: &[(&str, &str)],
    payloads: &[String],
) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
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
                        value: Some(v.as_str()),
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
            for p in payloads {
                let message = NewMessage {
                    topic,
                    event_type: "availability_status",
                    key,
                    headers: &headers,
                    payload: p,
                };
                OUTBOX.append(&mut conn, &[message]).await.unwrap();
            }
        }
    }
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
        let too_long = json!({"resource_type": "Application", "resource_id": aid,
            "status": "available", "error": "e".repeat(4097)})
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
            &[bad, too_long, status],
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
        let capped: i64 = sqlx::query_scalar("SELECT count(*) FROM keel_events.dead_letters WHERE topic = 'platform.sources.status' AND error = 'the provided error is longer than 4096 characters'")
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(
            capped, 1,
            "{via:?}: an over-long error is dead-lettered, not stored"
        );
    }
}
