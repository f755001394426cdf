use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, TestApp};

#[tokio::test]
async fn create_applies_defaults_and_the_first_is_default() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "ocp", "openshift").await;
    let sid = s["id"].as_str().unwrap();

    let first = app
        .post(
            "/endpoints",
            As::Org("1"),
            &json!({"source_id": sid, "host": "api.cluster.example.com", "role": "kubernetes"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let e = &first.body;
    assert_eq!(e["scheme"], "https");
    assert_eq!(e["port"], 443);
    assert_eq!(e["verify_ssl"], false);
    assert_eq!(
        e["default"], true,
        "a source's first endpoint is its default"
    );
    assert_eq!(e["availability_status"], "in_progress");
    assert_eq!(e["source_id"], sid);

    let second = app
        .post(
            "/endpoints",
            As::Org("1"),
            &json!({"source_id": sid, "host": "other.example.com", "scheme": "http", "port": 8080}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(second.body.get("default").is_none(), "false is omitted");
    assert_eq!(second.body["scheme"], "http");
    assert_eq!(second.body["port"], 8080);

    let list = app
        .get(&format!("/sources/{sid}/endpoints"), As::Org("1"))
        .await;
    assert_eq!(list.ids().len(), 2);
    let id = e["id"].as_str().unwrap();
    assert_eq!(
        &app.get(&format!("/endpoints/{id}"), As::Org("1"))
            .await
            .body,
        e
    );
    assert_eq!(
        app.get("/endpoints?filter[default]=true", As::Org("1"))
            .await
            .ids(),
        vec![id]
    );
}

#[tokio::test]
async fn create_validation_messages() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "ocp", "openshift").await;
    let sid = s["id"].as_str().unwrap();
    app.post(
        "/endpoints",
        As::Org("1"),
        &json!({"source_id": sid, "role": "kubernetes"}),
    )
    .await;
    let before = app.count("endpoints").await;
    let v = |m: &str| format!("bad request: Validation failed: {m}");
    let cases = [
        (
            json!({"source_id": "abc"}),
            v("the provided source ID is not valid"),
        ),
        (
            json!({"host": "x.com"}),
            v("the provided source ID is not valid"),
        ),
        (json!({"source_id": 0}), v("invalid source id")),
        (
            json!({"source_id": "424242"}),
            "bad request: source id not found".to_owned(),
        ),
        (
            json!({"source_id": sid, "default": true}),
            v("a default endpoint already exists for the provided source"),
        ),
        (
            json!({"source_id": sid, "role": "kubernetes"}),
            v("the role already exists for the given source"),
        ),
        (
            json!({"source_id": sid, "host": format!("{}.com", "a".repeat(300))}),
            v("the provided host is longer than 255 characters"),
        ),
        (
            json!({"source_id": sid, "host": "not a host"}),
            v("the provided host is invalid"),
        ),
        (
            json!({"source_id": sid, "port": 70000}),
            v("invalid port number"),
        ),
        (
            json!({"source_id": sid, "verify_ssl": true}),
            v("the certificate authority cannot be empty"),
        ),
        (
            json!({"source_id": sid, "availability_status": "in_progress"}),
            v("invalid availability status"),
        ),
    ];
    for (body, detail) in cases {
        let reply = app.post("/endpoints", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(app.count("endpoints").await, before);
    let theirs = app
        .post("/endpoints", As::Org("2"), &json!({"source_id": sid}))
        .await;
    assert_eq!(
        theirs.error(),
        "bad request: source id not found",
        "another tenant's source"
    );
}

#[tokio::test]
async fn edit_changes_only_what_is_sent_and_delete_cascades() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "ocp", "openshift").await;
    let sid = s["id"].as_str().unwrap();
    let e = app
        .post(
            "/endpoints",
            As::Org("1"),
            &json!({"source_id": sid, "host": "a.example.com", "scheme": "http", "port": 6443}),
        )
        .await
        .body;
    let id = e["id"].as_str().unwrap();
    let path = format!("/endpoints/{id}");

    let edited = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"path": "/api", "availability_status": "available"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["path"], "/api");
    assert_eq!(
        edited.body["scheme"], "http",
        "unsent fields keep their values"
    );
    assert_eq!(edited.body["port"], 6443);
    let bad = app
        .patch(&path, As::Org("1"), &json!({"verify_ssl": true}))
        .await;
    assert_eq!(
        bad.error(),
        "bad request: the certificate authority cannot be empty"
    );
    let with_ca = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"verify_ssl": true, "certificate_authority": "-----BEGIN CERT"}),
        )
        .await;
    assert_eq!(with_ca.body["verify_ssl"], true);

    app.create_authentication("1", json!({"resource_type": "Endpoint", "resource_id": id, "authtype": "token", "password": "x"})).await;
    assert_eq!(
        app.get(&format!("{path}/authentications"), As::Org("1"))
            .await
            .ids()
            .len(),
        1
    );
    assert_eq!(
        app.get(&format!("{path}/authentications"), As::Org("2"))
            .await
            .error(),
        "endpoint not found"
    );
    assert_eq!(
        app.delete(&path, As::Org("2")).await.error(),
        "endpoint not found"
    );
    assert_eq!(
        app.delete(&path, As::Org("1")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.count("authentications").await,
        0,
        "the endpoint's authentications go with it"
    );
    assert_eq!(
        app.get(&path, As::Org("1")).await.error(),
        "endpoint not found"
    );
}
