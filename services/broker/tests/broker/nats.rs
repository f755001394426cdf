//! NATS JetStream streams on the real local server: made with the spec's retention, taking
//! messages on their subjects, put back when deleted behind the broker's back under the repair
//! policy, and deleted with the deployment.

use std::time::Duration;

use broker::config::SharedTarget;
use keel_service::config::Secret;
use serde_json::json;

use crate::common::*;

const NATS: &str = "nats://127.0.0.1:4222";

async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS with JetStream on 127.0.0.1:4222 (is it running?)");
    async_nats::jetstream::new(client)
}

#[tokio::test]
async fn a_stream_takes_messages_is_repaired_and_deleted() {
    let db = database().await;
    let app = watching(&db.url, |c| {
        c.nats = Some(SharedTarget {
            admin_url: Secret::new(NATS.to_owned()),
            host: None,
        })
    })
    .await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "queue", "resourceName": "jobs", "namespace": ns, "team": "ops",
        "callbackUrl": callback,
        "spec": {"engine": "nats", "retention": "1h", "driftPolicy": "repair"},
    });
    let id = provision_ready(&app, request).await;
    let r = resource(&app, &ns, "jobs").await;
    assert_eq!(r["desiredSpec"]["version"], "2", "{r}");

    let secret = take_secret(&app, &ns, "jobs").await;
    let stream = secret["topic"].as_str().unwrap().to_owned();
    let subjects = secret["keyPrefix"].as_str().unwrap().to_owned();
    assert_eq!(subjects, format!("{stream}.>"));
    assert_eq!(
        (secret["host"].as_str(), secret["port"].as_i64()),
        (Some("127.0.0.1"), Some(4222))
    );

    let js = jetstream().await;
    js.publish(format!("{stream}.created"), "hello".into())
        .await
        .unwrap()
        .await
        .expect("the stream acknowledges a message on its subjects");
    let mut made = js.get_stream(&stream).await.unwrap();
    let info = made.info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.config.max_age, Duration::from_secs(3600));

    // Deleted behind the broker's back: made again.
    js.delete_stream(&stream).await.unwrap();
    let last = repaired(&app, &ns, "jobs").await;
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!(
                "Drift repaired: Missing: stream {stream} (removed outside the broker)"
            )),
        "{last}"
    );
    assert!(js.get_stream(&stream).await.is_ok());

    deprovision(&app, &id, "queue", "jobs", &ns, &callback).await;
    assert!(js.get_stream(&stream).await.is_err(), "the stream is gone");
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
