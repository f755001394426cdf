//! The ingestion service's OpenAPI document, generated from the code, against the checked-in file.

use serde_json::Value;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/ingestion.json");

/// The document generated from the code must match the checked-in file. Run with
/// `UPDATE_OPENAPI=1` (`just openapi`) to rewrite it after an intended API change.
#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = ingestion::openapi_document().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/ingestion.json is stale: run `just openapi` and commit the result"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/ingress/v1/upload",
        "/api/cost-management/v1/ingestion/providers",
        "/api/cost-management/v1/ingestion/providers/{uuid}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
