//! `POST /sources` requests arriving together are committed together; each is answered as if
//! it had run alone: created with its event, or refused with its own reason and no event.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, TestApp};

/// The sum and count of a histogram in `/metrics`.
fn histogram(metrics: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_arriving_together_share_commits_and_are_answered_as_alone() {
    let app = Arc::new(TestApp::spawn().await);
    let amazon = app.source_type_id("amazon").await;
    // (org, name, type): 32 distinct sources over 4 orgs, each name sent a second time to its
    // org (one of each pair is created, the other refused) and 8 of an unknown type.
    let mut requests = Vec::new();
    for n in 0..32 {
        let org = format!("batch-{}", n % 4);
        requests.push((org.clone(), format!("source {n}"), amazon.clone()));
        if n % 4 == 0 {
            requests.push((org, format!("source {n}"), amazon.clone()));
        }
    }
    for n in 0..8 {
        requests.push((
            format!("batch-{}", n % 4),
            format!("typeless {n}"),
            "999999".to_owned(),
        ));
    }
    let mut sent = tokio::task::JoinSet::new();
    for (org, name, type_id) in requests.clone() {
        let app = app.clone();
        sent.spawn(async move {
            let reply = app
                .post(
                    "/sources",
                    As::Org(&org),
                    &json!({"name": name, "source_type_id": type_id}),
                )
                .await;
            (org, name, type_id, reply)
        });
    }
    let mut created = Vec::new();
    let mut duplicates = 0;
    while let Some(done) = sent.join_next().await {
        let (org, name, type_id, reply) = done.unwrap();
        if type_id != amazon {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                reply.error(),
                "bad request: Validation failed: source type id not found"
            );
        } else if reply.status == StatusCode::CREATED {
            assert_eq!(reply.body["name"], json!(name));
            created.push((
                org,
                reply.body["id"].as_str().unwrap().to_owned(),
                reply.body["uid"].clone(),
            ));
        } else {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
            assert_eq!(
                reply.error(),
                "bad request: Validation failed: name already exists in tenant"
            );
            duplicates += 1;
        }
    }
    assert_eq!(created.len(), 32, "every distinct source created once");
    assert_eq!(duplicates, 8, "each repeated name refused once");

    // One Source.create per created source, keyed by its org, with its id and uid.
    let events = app.outbox().await;
    assert_eq!(events.len(), 32);
    for (org, id, uid) in &created {
        let event = events
            .iter()
            .find(|e| e.payload["id"] == json!(id.parse::<i64>().unwrap()))
            .unwrap_or_else(|| panic!("an event for source {id}"));
        assert_eq!(event.event_type, "Source.create");
        assert_eq!(&event.key, org);
        assert_eq!(&event.payload["uid"], uid);
    }

    // Some creates shared a commit.
    let metrics = app.get("/metrics", As::Raw(&[])).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let (sum, count) = histogram(&text, "sources_create_batch_size");
    assert_eq!(
        sum,
        requests.len() as f64,
        "every create went through a batch: {text}"
    );
    assert!(
        count < sum,
        "at least one batch held several creates ({count} batches)"
    );
}

#[tokio::test]
async fn with_batches_of_one_every_create_commits_alone() {
    let app = TestApp::spawn_with(|c| c.create_batch = 1).await;
    let amazon = app.source_type_id("amazon").await;
    for n in 0..3 {
        let reply = app
            .post(
                "/sources",
                As::Org("alone"),
                &json!({"name": format!("alone {n}"), "source_type_id": amazon}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let metrics = app.get("/metrics", As::Raw(&[])).await;
    let (sum, count) = histogram(
        metrics.body.as_str().unwrap_or_default(),
        "sources_create_batch_size",
    );
    assert_eq!((sum, count), (3.0, 3.0));
    assert_eq!(app.outbox().await.len(), 3);
}
