use reqwest::StatusCode;

use crate::helpers::{As, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let health = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "OK");

    let ready = app.get("/readiness", As::Raw(&[])).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["checks"]["database"], "ok");

    app.get("/sources", As::Org("1")).await;
    let text = app.metrics().await;
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/sources/v3.1/sources",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency is a histogram"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.db.close().await;
    let ready = app.get("/readiness", As::Raw(&[])).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(ready.body["checks"]["database"], "ok");
}

#[tokio::test]
async fn responses_carry_timing_and_500s_echo_the_request_id() {
    let app = TestApp::spawn().await;
    let reply = app.get("/sources", As::Org("1")).await;
    let ms = reply
        .headers
        .get("x-request-duration-ms")
        .expect("timing header");
    assert!(ms.to_str().unwrap().parse::<u64>().is_ok());

    // Break the database under the running app: the error is a bland 500 with the request id.
    app.db.close().await;
    let failed = app
        .get(
            "/sources",
            As::Raw(&[
                ("x-rh-sources-org-id", "1"),
                ("x-rh-insights-request-id", "req-42"),
            ]),
        )
        .await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.body,
        serde_json::json!({"errors": [{"detail": "Internal Server Error", "status": "500", "request_id": "req-42"}]})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_like_echo() {
    let app = TestApp::spawn().await;
    let missing = app.get("/api/sources/v3.1/nothing", As::Org("1")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body, serde_json::json!({"message": "Not Found"}));
    let method = app
        .request(reqwest::Method::PUT, "/sources", As::Org("1"), Some("{}"))
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        method.body,
        serde_json::json!({"message": "Method Not Allowed"})
    );
}

/// sources-api's sessions cannot hold the database up: a statement past its limit is
/// cancelled, and a transaction left idle is ended (an open one holds back every outbox
/// reader on the cluster).
#[tokio::test]
async fn sessions_are_bounded_by_statement_and_idle_transaction_timeouts() {
    let app = TestApp::spawn_with(|c| {
        c.common.session_limits = keel_db::SessionLimits {
            statement: std::time::Duration::from_secs(1),
            idle_in_transaction: std::time::Duration::from_secs(1),
        };
    })
    .await;
    let slow = sqlx::query("SELECT pg_sleep(3)").execute(&app.db).await;
    let code = slow
        .unwrap_err()
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "statement cancelled");
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after_idle = sqlx::query("SELECT 1").execute(&mut *tx).await;
    assert!(after_idle.is_err(), "the idle transaction was ended");
}
