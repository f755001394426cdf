use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, TestApp};

#[tokio::test]
async fn bulk_create_links_by_name_and_emits_in_order() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/bulk_create",
            As::Org("1"),
            &json!({
                "sources": [{"name": "My AWS", "source_type_name": "amazon"}],
                "applications": [
                    {"application_type_name": "cost-management", "source_name": "My AWS", "extra": {"bucket": "b"}},
                    {"application_type_name": "/insights/platform/image-builder", "source_name": "My AWS"}
                ],
                "endpoints": [{"source_name": "My AWS", "host": "aws.example.com"}],
                "authentications": [
                    {"resource_type": "application", "resource_name": "cost-management", "authtype": "arn",
                     "username": "arn:aws:iam::1:role/r", "password": "pw"},
                    {"resource_type": "source", "resource_name": "My AWS", "authtype": "access_key_secret_key"},
                    {"resource_type": "endpoint", "resource_name": "aws.example", "authtype": "token"}
                ]
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let b = &reply.body;
    assert_eq!(b["sources"].as_array().unwrap().len(), 1);
    assert_eq!(b["applications"].as_array().unwrap().len(), 2);
    assert_eq!(b["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(b["authentications"].as_array().unwrap().len(), 3);
    let sid = b["sources"][0]["id"].as_str().unwrap();
    let cost_app = &b["applications"][0];
    assert_eq!(cost_app["source_id"], sid);
    assert_eq!(
        b["applications"][1]["availability_status"], "available",
        "amazon + image-builder starts available"
    );
    assert_eq!(cost_app["availability_status"], "in_progress");
    assert_eq!(b["authentications"][0]["resource_type"], "Application");
    assert_eq!(b["authentications"][0]["resource_id"], cost_app["id"]);
    assert_eq!(b["authentications"][1]["resource_id"], sid);
    assert_eq!(
        b["authentications"][2]["resource_id"],
        b["endpoints"][0]["id"]
    );
    assert!(
        !b.to_string().contains("\"pw\""),
        "no password in the response"
    );
    assert_eq!(
        app.count("application_authentications").await,
        1,
        "an application authentication is linked"
    );

    assert_eq!(
        app.event_types().await,
        [
            "Source.create",
            "Endpoint.create",
            "Application.create",
            "Application.create",
            "ApplicationAuthentication.create",
            "Authentication.create",
            "Authentication.create",
            "Authentication.create"
        ]
    );
}

#[tokio::test]
async fn bulk_create_messages_and_atomicity() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"sources": [{"name": "a"}]}),
            "bad request: no source type present, need either [source_type_name] or [source_type_id]",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "nimbus"}]}),
            "bad request: invalid source_type_name for lookup: nimbus",
        ),
        (
            json!({"sources": [{"source_type_name": "amazon"}]}),
            "bad request: Validation failed: name cannot be empty",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "openshift"}],
                "applications": [{"application_type_name": "image-builder", "source_name": "a"}]}),
            "bad request: the application type is not compatible with the source type",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "amazon"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "b"}]}),
            "bad request: failed to link up all applications - check to make sure the names match up",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "amazon"}],
                "applications": [{"source_name": "a"}]}),
            "bad request: no application type present, need either [application_type_name] or [application_type_id]",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "amazon"}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management", "authtype": "arn"}]}),
            "bad request: failed to link up all authentications - check to make sure the names match up",
        ),
    ];
    for (body, detail) in cases {
        let reply = app.post("/bulk_create", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    for table in [
        "sources",
        "applications",
        "authentications",
        "endpoints",
        "outbox",
    ] {
        assert_eq!(
            app.count(table).await,
            0,
            "{table}: nothing from a failed bulk create"
        );
    }
}

/// One bulk create is one transaction: it takes at most 1,000 resources.
#[tokio::test]
async fn bulk_create_is_bounded() {
    let app = TestApp::spawn().await;
    let sources: Vec<_> = (0..1001)
        .map(|i| json!({"name": format!("s{i}"), "source_type_name": "amazon"}))
        .collect();
    let reply = app
        .post("/bulk_create", As::Org("1"), &json!({"sources": sources}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.error(),
        "bad request: bulk create takes at most 1000 resources, got 1001"
    );
    assert_eq!(app.count("sources").await, 0);
}

#[tokio::test]
async fn bulk_create_finds_types_by_id_and_by_part_of_their_name() {
    let app = TestApp::spawn().await;
    let amazon = app.source_type_id("amazon").await;
    let cost = app
        .application_type_id("/insights/platform/cost-management")
        .await;
    let by_id = app
        .post(
            "/bulk_create",
            As::Org("1"),
            &json!({
                "sources": [{"name": "by id", "source_type_id": amazon}],
                "applications": [{"application_type_id": cost, "source_name": "by id"}]
            }),
        )
        .await;
    assert_eq!(by_id.status, StatusCode::CREATED, "{}", by_id.body);
    assert_eq!(by_id.body["sources"][0]["source_type_id"], amazon.as_str());
    assert_eq!(
        by_id.body["applications"][0]["application_type_id"],
        cost.as_str()
    );

    // A name is a LIKE pattern, as in sources-api-go: `_` stands for any one character.
    let pattern = app
        .post(
            "/bulk_create",
            As::Org("1"),
            &json!({
                "sources": [{"name": "by pattern", "source_type_name": "amazon"}],
                "applications": [{"application_type_name": "cost_management", "source_name": "by pattern"}]
            }),
        )
        .await;
    assert_eq!(pattern.status, StatusCode::CREATED, "{}", pattern.body);
    assert_eq!(
        pattern.body["applications"][0]["application_type_id"],
        cost.as_str()
    );

    let before = app.count("sources").await;
    let cases = [
        (
            json!({"sources": [{"name": "a", "source_type_id": "987654"}]}),
            "bad request: Validation failed: source type id not found",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "amazon"}],
                "applications": [{"application_type_id": "987654", "source_name": "a"}]}),
            "bad request: invalid application type id 987654",
        ),
        (
            json!({"sources": [{"name": "a", "source_type_name": "amazon"}],
                "applications": [{"application_type_name": "cost%manage_ment", "source_name": "a"}]}),
            "bad request: failed to lookup application_type_name cost%manage_ment",
        ),
    ];
    for (body, detail) in cases {
        let reply = app.post("/bulk_create", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(
        app.count("sources").await,
        before,
        "nothing from a refused create"
    );
}
