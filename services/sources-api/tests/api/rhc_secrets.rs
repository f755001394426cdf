use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, PSK, TestApp, user_identity};

#[tokio::test]
async fn rhc_connections_are_shared_by_sources_and_cascade_with_their_last_source() {
    let app = TestApp::spawn().await;
    let a = app.create_source("1", "sat-a", "satellite").await;
    let b = app.create_source("1", "sat-b", "satellite").await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let first = app
        .post(
            "/rhc_connections",
            As::Org("1"),
            &json!({"rhc_id": "rhc-1", "source_id": aid}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["rhc_id"], "rhc-1");
    assert_eq!(first.body["source_ids"], json!([aid]));
    let second = app
        .post(
            "/rhc_connections",
            As::Org("1"),
            &json!({"rhc_id": "rhc-1", "source_id": bid}),
        )
        .await;
    assert_eq!(
        second.body["id"], first.body["id"],
        "the same connection, linked to a second source"
    );
    assert_eq!(second.body["source_ids"], json!([aid, bid]));
    let again = app
        .post(
            "/rhc_connections",
            As::Org("1"),
            &json!({"rhc_id": "rhc-1", "source_id": bid}),
        )
        .await;
    assert_eq!(again.error(), "bad request: connection already exists");

    let id = first.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/rhc_connections/{id}/sources"), As::Org("1"))
            .await
            .ids(),
        vec![aid, bid]
    );
    assert_eq!(
        app.get(&format!("/sources/{aid}/rhc_connections"), As::Org("1"))
            .await
            .ids(),
        vec![id]
    );
    let edited = app
        .patch(
            &format!("/rhc_connections/{id}"),
            As::Org("1"),
            &json!({"availability_status": "available"}),
        )
        .await;
    assert_eq!(edited.body["availability_status"], "available");
    assert_eq!(
        app.get(&format!("/rhc_connections/{id}"), As::Org("2"))
            .await
            .error(),
        "rhcConnection not found"
    );

    for (body, detail) in [
        (
            json!({"source_id": aid}),
            "bad request: Validation failed: the Red Hat Connector Connection's id is invalid",
        ),
        (
            json!({"rhc_id": "x", "source_id": "abc"}),
            "bad request: Validation failed: the provided source ID is not valid",
        ),
        (
            json!({"rhc_id": "x", "source_id": 0}),
            "bad request: Validation failed: invalid source id",
        ),
    ] {
        assert_eq!(
            app.post("/rhc_connections", As::Org("1"), &body)
                .await
                .error(),
            detail
        );
    }

    app.clear_outbox().await;
    app.delete(&format!("/sources/{aid}"), As::Org("1")).await;
    assert!(
        !app.event_types()
            .await
            .contains(&"RhcConnection.destroy".to_owned()),
        "still used by sat-b"
    );
    app.delete(&format!("/sources/{bid}"), As::Org("1")).await;
    let types = app.event_types().await;
    let rhc = types
        .iter()
        .position(|t| t == "RhcConnection.destroy")
        .expect("destroyed with its last source");
    assert_eq!(
        types[rhc + 1],
        "Source.destroy",
        "before its source, as sources-api-go orders it"
    );
    assert_eq!(app.count("rhc_connections").await, 0);
}

#[tokio::test]
async fn secrets_keep_passwords_write_only() {
    let app = TestApp::spawn().await;
    let created = app
        .post("/secrets", As::Org("1"), &json!({"name": "registry", "authtype": "token", "username": "bot", "password": "s3cr3t"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(!created.body.to_string().contains("s3cr3t"));
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(app.get("/secrets", As::Org("1")).await.ids(), vec![id]);
    assert_eq!(
        app.get(&format!("/secrets/{id}"), As::Org("2"))
            .await
            .error(),
        "secret not found"
    );

    let dup = app
        .post("/secrets", As::Org("1"), &json!({"name": "registry"}))
        .await;
    assert_eq!(
        dup.error(),
        "bad request: Validation failed: secret name registry exists in current tenant"
    );
    let empty = app
        .post("/secrets", As::Org("1"), &json!({"name": ""}))
        .await;
    assert_eq!(
        empty.error(),
        "bad request: Validation failed: secret name have to be populated"
    );

    let internal = app
        .get(
            &format!("/internal/v2.0/secrets/{id}"),
            As::Raw(&[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", PSK)]),
        )
        .await;
    assert_eq!(internal.body["password"], "s3cr3t");
    let edited = app
        .patch(
            &format!("/secrets/{id}"),
            As::Org("1"),
            &json!({"username": "bot2"}),
        )
        .await;
    assert_eq!(edited.body["username"], "bot2");
    assert_eq!(app.outbox().await.len(), 0, "secrets announce nothing");
    assert_eq!(
        app.delete(&format!("/secrets/{id}"), As::Org("1"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/secrets/{id}"), As::Org("1"))
            .await
            .error(),
        "secret not found"
    );
}

/// A secret created `user_scoped` is its user's alone: another user of the same org, or a
/// caller naming no user, can neither list, read, change, delete it nor read its password
/// through the internal API; the tenant's shared secrets stay visible to all of them.
#[tokio::test]
async fn user_scoped_secrets_are_their_users_alone() {
    let app = TestApp::spawn().await;
    let (alice_id, bob_id) = (user_identity("1", "alice"), user_identity("1", "bob"));
    let alice = [
        ("x-rh-identity", alice_id.as_str()),
        ("x-rh-sources-psk", PSK),
    ];
    let bob = [
        ("x-rh-identity", bob_id.as_str()),
        ("x-rh-sources-psk", PSK),
    ];
    let nobody: &[(&str, &str)] = &[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", PSK)];

    let own = app
        .post(
            "/secrets",
            As::Raw(&alice),
            &json!({"name": "mine", "password": "alice-pw", "user_scoped": true}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    assert_eq!(own.body["user_id"], "alice");
    let own = own.body["id"].as_str().unwrap().to_owned();
    let shared = app
        .post(
            "/secrets",
            As::Raw(&alice),
            &json!({"name": "shared", "password": "team-pw"}),
        )
        .await;
    assert!(
        shared.body.get("user_id").is_none(),
        "not user-scoped: the tenant's"
    );
    let shared = shared.body["id"].as_str().unwrap().to_owned();

    assert_eq!(
        app.get("/secrets", As::Raw(&alice)).await.ids(),
        vec![own.clone(), shared.clone()]
    );
    for who in [&bob[..], nobody] {
        assert_eq!(
            app.get("/secrets", As::Raw(who)).await.ids(),
            vec![shared.clone()]
        );
        let path = format!("/secrets/{own}");
        assert_eq!(
            app.get(&path, As::Raw(who)).await.error(),
            "secret not found"
        );
        let edit = app
            .patch(&path, As::Raw(who), &json!({"username": "x"}))
            .await;
        assert_eq!(edit.error(), "secret not found");
        assert_eq!(
            app.delete(&path, As::Raw(who)).await.error(),
            "secret not found"
        );
        let internal = app
            .get(&format!("/internal/v2.0/secrets/{own}"), As::Raw(who))
            .await;
        assert_eq!(internal.error(), "secret not found");
        assert!(!internal.body.to_string().contains("alice-pw"));
    }
    let internal = app
        .get(&format!("/internal/v2.0/secrets/{own}"), As::Raw(&alice))
        .await;
    assert_eq!(internal.body["password"], "alice-pw");
    let shared_internal = app
        .get(&format!("/internal/v2.0/secrets/{shared}"), As::Raw(&bob))
        .await;
    assert_eq!(shared_internal.body["password"], "team-pw");
    let kept = app.get(&format!("/secrets/{own}"), As::Raw(&alice)).await;
    assert_eq!(kept.body["username"], "", "bob's edit changed nothing");
    assert_eq!(
        app.delete(&format!("/secrets/{own}"), As::Raw(&alice))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}
