//! Drift: objects changed or removed behind the broker's back are reported in the seed's
//! words, and put back under the `repair` policy with the same credentials.

use std::time::Duration;

use broker::drivers::Names;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

async fn server_version(admin: &PgPool) -> String {
    let v: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(admin)
        .await
        .unwrap();
    v.split_whitespace().next().unwrap().to_owned()
}

async fn exists(admin: &PgPool, object: &str) -> (bool, bool) {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
                EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
    )
    .bind(object)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Statements run one by one (DROP DATABASE refuses a transaction block).
async fn behind_the_back(admin: &PgPool, statements: &[String]) {
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn drift_is_reported_in_the_seeds_words_and_deprovision_still_cleans_up() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "public", 2).await.unwrap();
    let app = watching(&db.url, |_| {}).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let id = provision(
        &app,
        &ns,
        "orders",
        &callback,
        json!({"engine": "postgresql", "size": "small"}),
    )
    .await;
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let object = Names::new(&ns, "orders").object;

    // No version asked: the one the server runs (the catalogue's default, 16, would be refused).
    let r = resource(&app, &ns, "orders").await;
    assert_eq!(r["desiredSpec"]["version"], "15", "{r}");
    // The server runs a patch release of 15: expected drift, reported, still Healthy.
    let version = server_version(&admin).await;
    assert!(
        version.starts_with("15."),
        "this test expects a PostgreSQL 15 server, not {version}"
    );
    let patch = format!("Version mismatch: desired=15, actual={version} (patch update)");
    let r = wait_resource(&app, &ns, "orders", "the first check", |r| {
        r["driftDetails"] == json!([patch])
    })
    .await;
    assert_eq!(
        (r["driftDetected"].as_bool(), r["healthStatus"].as_str()),
        (Some(true), Some("Healthy")),
        "{r}"
    );
    assert_eq!(r["message"], "Database provisioned and healthy");
    assert!(r["lastChecked"].is_string(), "{r}");

    // The database dropped and the role's limit changed behind the broker's back.
    behind_the_back(
        &admin,
        &[
            format!("DROP DATABASE \"{object}\" WITH (FORCE)"),
            format!("ALTER ROLE \"{object}\" CONNECTION LIMIT 99"),
        ],
    )
    .await;
    let missing = format!("Missing: database {object} (removed outside the broker)");
    let r = wait_resource(&app, &ns, "orders", "the drift", |r| {
        r["healthStatus"] == "Degraded"
    })
    .await;
    let details = json!([
        missing,
        patch,
        "Connection limit mismatch: desired=10, actual=99"
    ]);
    assert_eq!(r["driftDetails"], details, "{r}");
    assert_eq!(r["phase"], "Ready");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Drift detected: {missing}; ")),
        "{r}"
    );
    // Counted, under the names KIDP's docs give.
    let metrics = metrics_text(&app).await;
    for wanted in [
        format!("broker_drift_detected_total{{namespace=\"{ns}\",type=\"database\"}}"),
        format!("broker_resources_total{{namespace=\"{ns}\",type=\"database\",phase=\"Ready\"}} 1"),
        "broker_http_request_duration_seconds_count{endpoint=\"/v1/resources\",method=\"GET\"}"
            .to_owned(),
        "broker_provision_requests_total{resource_type=\"database\",status=\"success\"} 1"
            .to_owned(),
    ] {
        assert!(metrics.contains(&wanted), "{wanted} in\n{metrics}");
    }
    // Report only: nothing was put back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(exists(&admin, &object).await, (true, false));

    // Deprovisioning tolerates what is already gone.
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", app.base),
        Some(json!({"deploymentId": id, "resourceType": "database", "resourceName": "orders", "namespace": ns, "callbackUrl": callback})),
    )
    .await;
    assert_eq!(status, 202);
    eventually("Deleted", || async {
        phase(&app.base, &id).await == "Deleted"
    })
    .await;
    assert_eq!(exists(&admin, &object).await, (false, false));
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn under_the_repair_policy_what_was_removed_is_put_back_with_the_same_password() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "public", 2).await.unwrap();
    let app = watching(&db.url, |_| {}).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let spec =
        json!({"engine": "postgresql", "version": "15", "size": "large", "driftPolicy": "repair"});
    let id = provision(&app, &ns, "ledger", &callback, spec).await;
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let (status, creds) = call(
        reqwest::Method::GET,
        format!("{}/v1/secrets/ledger-credentials?namespace={ns}", app.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    let object = Names::new(&ns, "ledger").object;

    behind_the_back(
        &admin,
        &[
            format!("DROP DATABASE \"{object}\" WITH (FORCE)"),
            format!("DROP ROLE \"{object}\""),
        ],
    )
    .await;
    let r = wait_resource(&app, &ns, "ledger", "the repair", |r| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Drift repaired: "))
    })
    .await;
    assert_eq!(
        r["message"],
        format!(
            "Drift repaired: Missing: role {object} (removed outside the broker); Missing: database {object} (removed outside the broker)"
        )
    );
    assert_eq!(r["healthStatus"], "Healthy", "{r}");
    // A patch release is not something a repair changes: still reported.
    let patch = format!(
        "Version mismatch: desired=15, actual={} (patch update)",
        server_version(&admin).await
    );
    assert_eq!(r["driftDetails"], json!([patch]));
    assert_eq!(exists(&admin, &object).await, (true, true));
    // The caller's credentials still work: the role came back with the same password and limit.
    assert!(password_matches(&admin, &object, creds["password"].as_str().unwrap()).await);
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(&object)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(limit, 50);
    forget(&db.url, &ns).await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
