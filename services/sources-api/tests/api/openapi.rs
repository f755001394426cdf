use reqwest::StatusCode;

use crate::helpers::{As, TestApp};

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../openapi/sources-api.json"
);

/// The document generated from the code must match the checked-in file. Run with
/// `UPDATE_OPENAPI=1` (`just openapi`) to rewrite the file after an intended API change.
#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = sources_api::openapi_document().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/sources-api.json is stale: run `just openapi` and commit the result"
    );
}

#[tokio::test]
async fn served_openapi_matches_the_checked_in_file_and_names_its_prefix() {
    let app = TestApp::spawn().await;
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(CHECKED_IN).unwrap()).unwrap();

    let served = app
        .get("/api/sources/v3.1/openapi.json", As::Raw(&[]))
        .await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.body, checked_in,
        "the served document is the checked-in one"
    );

    for prefix in sources_api::PREFIXES {
        let doc = app
            .get(&format!("{prefix}/openapi.json"), As::Raw(&[]))
            .await;
        assert_eq!(doc.body["servers"][0]["url"], prefix);
        assert_eq!(
            doc.body["paths"], checked_in["paths"],
            "{prefix} serves the same paths"
        );
    }
    for path in [
        "/sources",
        "/sources/{id}",
        "/source_types",
        "/application_types/{application_type_id}/sources",
        "/app_meta_data/{id}",
        "/sources/{source_id}/application_types",
    ] {
        assert!(checked_in["paths"].get(path).is_some(), "{path} documented");
    }
}

#[tokio::test]
async fn the_docs_ui_is_served_without_a_network() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(format!("{}/api/sources/v3.1/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text().await.unwrap().contains("swagger"),
        "the Swagger UI page"
    );
    let config = app
        .client
        .get(format!(
            "{}/api/sources/v3.1/docs/swagger-initializer.js",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert!(
        config
            .text()
            .await
            .unwrap()
            .contains("/api/sources/v3.1/openapi.json")
    );
}
