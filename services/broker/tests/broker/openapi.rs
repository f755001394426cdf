//! The broker's OpenAPI document, generated from the code, against the checked-in file and
//! against what the running broker serves.

use broker::Config;
use serde_json::Value;

use crate::common::*;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/broker.json");

/// The document generated from the code must match the checked-in file. Run with
/// `UPDATE_OPENAPI=1` (`just openapi`) to rewrite it after an intended API change.
#[tokio::test]
async fn checked_in_openapi_matches_the_code_and_is_served() {
    let generated = broker::openapi_document().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/broker.json is stale: run `just openapi` and commit the result"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/readiness", "get"),
        ("/v1/provision", "post"),
        ("/v1/deprovision", "post"),
        ("/v1/resources", "get"),
        ("/v1/resources", "post"),
        ("/v1/status", "get"),
        ("/v1/signing-key", "get"),
        ("/v1/secrets/{name}", "get"),
        ("/v1/secrets/{name}/rotate", "post"),
        ("/v1/dead-letters", "get"),
        ("/v1/dead-letters/{id}/resend", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(
        doc["components"]["schemas"]["ResourceState"]["properties"]["driftDetails"].is_object()
    );

    // The running broker serves the same document, without a token.
    let db = database().await;
    let app = start(&Config::for_database(&db.url)).await;
    let served: Value = client()
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc);
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
