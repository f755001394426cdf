use std::{sync::Arc, time::Duration};

use axum::{Router, http::HeaderMap, routing::post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{As, COST, TestApp};

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A stand-in for the cost-management source-status endpoint, on loopback.
async fn receiver() -> (String, Seen) {
    let (router, seen) = recorder();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/cost-management/v1/source-status/",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

/// The same endpoint over HTTPS, its certificate (for 127.0.0.1) signed by a CA made for the
/// test; answers the CA's PEM too.
async fn https_receiver() -> (String, Seen, String) {
    let (router, seen) = recorder();
    let (addr, ca) = keel_service::tls::testing::serve_https(router).await;
    let url = format!("https://{addr}/api/cost-management/v1/source-status/");
    (url, seen, ca)
}

/// A router recording what it receives.
fn recorder() -> (Router, Seen) {
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
    (router, seen)
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

/// An AWS source with cost management in org 1.
async fn source_with_cost_management(app: &TestApp) -> String {
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    app.create_application("1", &sid, COST, json!({})).await;
    sid
}

/// `POST /sources/{sid}/check_availability` as `who`.
async fn request_check(app: &TestApp, sid: &str, who: As<'_>) -> crate::helpers::Reply {
    app.request(
        reqwest::Method::POST,
        &format!("/sources/{sid}/check_availability"),
        who,
        None,
    )
    .await
}

#[tokio::test]
async fn check_availability_answers_202_and_calls_the_application() {
    let (url, seen) = receiver().await;
    let app = TestApp::spawn_with(|c| {
        c.availability_check_urls
            .insert("COST_MANAGEMENT".into(), url);
    })
    .await;
    let sid = source_with_cost_management(&app).await;
    let reply = request_check(&app, &sid, As::Org("1")).await;
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
    let skipped = request_check(
        &app,
        &sid,
        As::Raw(&[
            ("x-rh-sources-org-id", "1"),
            ("x-rh-sources-skip-empty-sources", "true"),
        ]),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.lock().await.len(),
        1,
        "no call when cost management is skipped"
    );
    let theirs = request_check(&app, &sid, As::Org("2")).await;
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
    let sid = source_with_cost_management(&app).await;
    let reply = request_check(&app, &sid, As::Org("1")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
}

/// Checks go out over HTTPS to an application whose certificate a private CA signed: trusted
/// once the CA is in `CA_BUNDLE`, refused (nothing received) without it.
#[tokio::test]
async fn https_check_urls_are_called_trusting_the_configured_ca_bundle() {
    for trusted in [true, false] {
        let (url, seen, ca_pem) = https_receiver().await;
        let bundle = std::env::temp_dir().join(format!("keel-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&bundle, &ca_pem).unwrap();
        let app = TestApp::spawn_with(|c| {
            c.availability_check_urls
                .insert("COST_MANAGEMENT".into(), url);
            if trusted {
                c.common.ca_bundle = Some(bundle.clone());
            }
        })
        .await;
        let sid = source_with_cost_management(&app).await;
        let reply = request_check(&app, &sid, As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let calls = wait_for(&seen, 1).await;
        let _ = std::fs::remove_file(&bundle);
        if trusted {
            assert_eq!(calls.len(), 1, "the CA bundle makes the receiver trusted");
            assert_eq!(calls[0].1, json!({"source_id": sid}));
        } else {
            assert!(calls.is_empty(), "an unknown CA is refused: {calls:?}");
        }
    }
}

/// Checks go through a bounded pool: with every permit held by an application that never
/// answers, further checks are skipped and counted, not queued without end.
#[tokio::test]
async fn checks_beyond_the_pool_are_skipped_and_counted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    // Accepts and holds every connection, answering nothing.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let app = TestApp::spawn_with(|c| {
        c.availability_check_urls
            .insert("COST_MANAGEMENT".into(), url);
        c.availability_check_concurrency = 2;
    })
    .await;
    let sid = source_with_cost_management(&app).await;
    for _ in 0..5 {
        let reply = request_check(&app, &sid, As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two calls in flight"
    );
    let metrics = app.metrics().await;
    let skipped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sources_availability_checks_skipped_total "))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(skipped, Some(3.0), "three checks skipped");
}
