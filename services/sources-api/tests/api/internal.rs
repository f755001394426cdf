use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, COST, PSK, TestApp};

#[tokio::test]
async fn internal_sources_list_crosses_tenants_and_needs_a_psk() {
    let app = TestApp::spawn().await;
    let with_app = app.create_source("1", "a", "amazon").await;
    app.create_application("1", with_app["id"].as_str().unwrap(), COST, json!({}))
        .await;
    let empty = app.create_source("2", "b", "amazon").await;
    sqlx::query("UPDATE tenants SET external_tenant = 'acct-2' WHERE org_id = '2'")
        .execute(&app.db)
        .await
        .unwrap();

    let all = app
        .get(
            "/internal/v2.0/sources",
            As::Raw(&[("x-rh-sources-psk", PSK)]),
        )
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["meta"]["count"], 2, "sources of every tenant");
    let b = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == empty["id"])
        .unwrap();
    assert_eq!(
        b,
        &json!({"id": empty["id"], "availability_status": "in_progress", "tenant": "acct-2", "org_id": "2"})
    );

    let skipping = app
        .get(
            "/internal/v1.0/sources",
            As::Raw(&[
                ("x-rh-sources-psk", PSK),
                ("x-rh-sources-skip-empty-sources", "true"),
            ]),
        )
        .await;
    assert_eq!(skipping.ids(), vec![with_app["id"].as_str().unwrap()]);

    let refused = app.get("/internal/v1.0/sources", As::Raw(&[])).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}
