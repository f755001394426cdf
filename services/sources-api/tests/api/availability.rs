use std::{sync::Arc, time::Duration};

use axum::{Router, http::HeaderMap, routing::post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{As, COST, TestApp};

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A stand-in for the cost-management source-status endpoint, on loopback.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let store = seen.clone();
    let router = Router::new().route(
        "/api/cost-management/v1/source-status/",
        post(move |headers: HeaderMap, body: String| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .await
                    .push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/cost-management/v1/source-status/",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

async fn wait_for(seen: &Seen, n: usize) -> Vec<(HeaderMap, Value)> {
    for _ in 0..100 {
        if seen.lock().await.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().await.clone()
}

#[tokio::test]
async fn check_availability_answers_202_and_calls_the_application() {
    let (url, seen) = receiver().await;
    let app = TestApp::spawn_with(|c| {
        c.availability_check_urls
            .insert("COST_MANAGEMENT".into(), url);
    })
    .await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    app.create_application("1", sid, COST, json!({})).await;

    let reply = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/check_availability"),
            As::Org("1"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body, json!({}));

    let calls = wait_for(&seen, 1).await;
    assert_eq!(calls.len(), 1);
    let (headers, body) = &calls[0];
    assert_eq!(body, &json!({"source_id": sid}));
    assert_eq!(headers["x-rh-sources-org-id"], "1");
    assert!(headers.contains_key("x-rh-identity"));
    assert_eq!(headers["content-type"], "application/json;charset=utf-8");

    // Cost management is skipped on request, and other tenants get 404.
    let skipped = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/check_availability"),
            As::Raw(&[
                ("x-rh-sources-org-id", "1"),
                ("x-rh-sources-skip-empty-sources", "true"),
            ]),
            None,
        )
        .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.lock().await.len(),
        1,
        "no call when cost management is skipped"
    );
    let theirs = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/check_availability"),
            As::Org("2"),
            None,
        )
        .await;
    assert_eq!(theirs.error(), "source not found");
}

#[tokio::test]
async fn an_unreachable_application_does_not_fail_the_request() {
    let app = TestApp::spawn_with(|c| {
        // Nothing listens on port 9 of loopback.
        c.availability_check_urls
            .insert("COST_MANAGEMENT".into(), "http://127.0.0.1:9/".into());
    })
    .await;
    let s = app.create_source("1", "aws", "amazon").await;
    app.create_application("1", s["id"].as_str().unwrap(), COST, json!({}))
        .await;
    let reply = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{}/check_availability", s["id"].as_str().unwrap()),
            As::Org("1"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
}
