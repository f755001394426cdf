//! Kafka topics on the tansu broker `scripts/test` starts (`KAFKA_BROKERS`): made with the
//! spec's partitions, usable with the handed-over bootstrap server and name, put back when
//! deleted behind the broker's back under the repair policy, and deleted with the deployment.

use std::time::Duration;

use keel_service::config::KafkaSettings;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions},
    client::DefaultClientContext,
    producer::{FutureProducer, FutureRecord},
};
use serde_json::json;

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
    let app = watching(&db.url, |c| c.kafka = Some(KafkaSettings::plain(brokers()))).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "topic", "resourceName": "orders", "namespace": ns, "team": "shop",
        "callbackUrl": callback,
        "spec": {"engine": "kafka", "partitions": 3, "retention": "7d", "driftPolicy": "repair"},
    });
    let id = provision_ready(&app, request).await;

    let secret = take_secret(&app, &ns, "orders").await;
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
    let last = repaired(&app, &ns, "orders").await;
    assert_eq!(
        last["message"],
        format!("Drift repaired: Missing: topic {topic} (removed outside the broker)"),
        "{last}"
    );
    assert_eq!(partitions(&topic).await, Some(3));
    assert_eq!(last["driftDetected"], false, "{last}");

    deprovision(&app, &id, "topic", "orders", &ns, &callback).await;
    eventually("the topic gone", || async {
        partitions(&topic).await.is_none()
    })
    .await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
