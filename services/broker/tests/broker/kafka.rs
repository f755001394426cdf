//! Kafka topics on the tansu broker `scripts/test` starts (`KAFKA_BROKERS`): made with the
//! spec's partitions, usable with the handed-over bootstrap server and name, put back when
//! deleted behind the broker's back under the repair policy, and deleted with the deployment.

use std::time::Duration;

use broker::Config;
use keel_service::config::KafkaSettings;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions},
    client::DefaultClientContext,
    producer::{FutureProducer, FutureRecord},
};
use serde_json::{Value, json};

use crate::common::*;

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS")
        .expect("KAFKA_BROKERS names the Kafka-protocol broker (scripts/test starts tansu)")
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap()
}

/// The topic's partitions on the cluster, `None` when it has no such topic.
async fn partitions(topic: &str) -> Option<usize> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = admin()
            .inner()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        let t = metadata.topics().first()?;
        t.error().is_none().then(|| t.partitions().len())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_topic_is_made_with_its_partitions_repaired_and_deleted() {
    let db = database().await;
    let mut config = Config::for_database(&db.url);
    config.kafka = Some(KafkaSettings::plain(brokers()));
    config.observe_interval = Duration::from_secs(1);
    let app = start(&config).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "topic", "resourceName": "orders", "namespace": ns, "team": "shop",
        "callbackUrl": callback,
        "spec": {"engine": "kafka", "partitions": 3, "retention": "7d", "driftPolicy": "repair"},
    });
    let (status, accepted) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["deploymentId"].as_str().unwrap().to_owned();
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;

    let (status, secret) = call(
        reqwest::Method::GET,
        format!("{}/v1/secrets/orders-credentials?namespace={ns}", app.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    let topic = secret["topic"].as_str().unwrap().to_owned();
    assert!(
        secret.get("password").is_none() && secret.get("username").is_none(),
        "{secret}"
    );
    assert_eq!(
        format!("{}:{}", secret["host"].as_str().unwrap(), secret["port"]),
        brokers().split(',').next().unwrap()
    );
    assert_eq!(partitions(&topic).await, Some(3));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("hello"),
            Duration::from_secs(10),
        )
        .await
        .expect("the topic takes a message");

    // Deleted behind the broker's back: made again with its partitions.
    admin()
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await
        .unwrap();
    let mut last = Value::Null;
    for _ in 0..300 {
        last = resource(&app, &ns, "orders").await;
        if last["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Drift repaired: "))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last["message"],
        format!("Drift repaired: Missing: topic {topic} (removed outside the broker)"),
        "{last}"
    );
    assert_eq!(partitions(&topic).await, Some(3));
    assert_eq!(last["driftDetected"], false, "{last}");

    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", app.base),
        Some(json!({"deploymentId": id, "resourceType": "topic", "resourceName": "orders", "namespace": ns, "callbackUrl": callback})),
    )
    .await;
    assert_eq!(status, 202);
    eventually("Deleted", || async {
        phase(&app.base, &id).await == "Deleted"
    })
    .await;
    eventually("the topic gone", || async {
        partitions(&topic).await.is_none()
    })
    .await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
