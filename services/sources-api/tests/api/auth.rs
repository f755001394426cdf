use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, LogCapture, PSK, TestApp, identity};

#[tokio::test]
async fn reads_need_tenancy_but_no_psk() {
    let app = TestApp::spawn().await;
    let none = app.get("/sources", As::Raw(&[])).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.error(),
        "the ebs account number and the org id are missing"
    );
    let no_tenant_identity = base64_json(r#"{"identity":{"type":"User"}}"#);
    let empty = app
        .get(
            "/sources",
            As::Raw(&[("x-rh-identity", &no_tenant_identity)]),
        )
        .await;
    assert_eq!(
        empty.error(),
        "the ebs account number and the org id are missing"
    );

    for headers in [
        vec![("x-rh-sources-org-id", "1")],
        vec![("x-rh-sources-account-number", "12345")],
    ] {
        let reply = app.get("/sources", As::Raw(&headers)).await;
        assert_eq!(reply.status, StatusCode::OK, "{headers:?}");
    }
    let id = identity("1", Some("12345"));
    let reply = app
        .get("/sources", As::Raw(&[("x-rh-identity", &id)]))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

fn base64_json(json: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(json)
}

#[tokio::test]
async fn writes_need_a_listed_psk() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("amazon").await;
    let body = json!({"name": "x", "source_type_id": type_id});

    let wrong = app
        .post(
            "/sources",
            As::Raw(&[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", "nope")]),
            &body,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), "Unauthorized Action: Incorrect PSK");

    let missing = app
        .post("/sources", As::Raw(&[("x-rh-sources-org-id", "1")]), &body)
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.error(),
        "Unauthorized Action: Missing RBAC permissions"
    );

    let no_tenant = app
        .post("/sources", As::Raw(&[("x-rh-sources-psk", PSK)]), &body)
        .await;
    assert_eq!(
        no_tenant.error(),
        "the ebs account number and the org id are missing"
    );

    assert_eq!(
        app.count("sources").await,
        0,
        "refused writes store nothing"
    );
    assert_eq!(
        app.count("tenants").await,
        0,
        "a refused write does not even create the tenant"
    );

    let second_key = app
        .post(
            "/sources",
            As::Raw(&[
                ("x-rh-sources-org-id", "1"),
                ("x-rh-sources-psk", "other-psk"),
            ]),
            &body,
        )
        .await;
    assert_eq!(
        second_key.status,
        StatusCode::CREATED,
        "every listed PSK works"
    );

    let id = second_key.body["id"].as_str().unwrap();
    for reply in [
        app.patch(
            &format!("/sources/{id}"),
            As::Raw(&[("x-rh-sources-org-id", "1")]),
            &json!({"name": "y"}),
        )
        .await,
        app.delete(
            &format!("/sources/{id}"),
            As::Raw(&[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", "bad")]),
        )
        .await,
    ] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.get(&format!("/sources/{id}"), As::Org("1")).await.body["name"],
        "x"
    );
}

#[tokio::test]
async fn bypass_rbac_allows_writes_without_psk() {
    let app = TestApp::spawn_with(|c| {
        c.psks.clear();
        c.bypass_rbac = true;
    })
    .await;
    let type_id = app.source_type_id("amazon").await;
    let reply = app
        .post(
            "/sources",
            As::Raw(&[("x-rh-sources-org-id", "1")]),
            &json!({"name": "x", "source_type_id": type_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

/// BYPASS_RBAC opens writes, never the internal API: plaintext credentials and every tenant's
/// sources still need a listed key, unless the internal API is opened explicitly.
#[tokio::test]
async fn bypass_rbac_leaves_the_internal_api_closed() {
    let app = TestApp::spawn_with(|c| c.bypass_rbac = true).await;
    let source = app.create_source("1", "aws", "amazon").await;
    let auth = app
        .create_authentication(
            "1",
            json!({"resource_type": "Source", "resource_id": source["id"], "authtype": "token", "password": "hunter2"}),
        )
        .await;
    let credentials = format!(
        "/internal/v2.0/authentications/{}?expose_encrypted_attribute[]=password",
        auth["id"].as_str().unwrap()
    );
    let cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("x-rh-sources-org-id", "1")],
            "Unauthorized Action: Missing RBAC permissions",
        ),
        (
            &[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", "guess")],
            "Unauthorized Action: Incorrect PSK",
        ),
    ];
    for (headers, detail) in cases {
        for path in [credentials.as_str(), "/internal/v2.0/sources"] {
            let reply = app.get(path, As::Raw(headers)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {headers:?}");
            assert_eq!(reply.error(), detail);
            assert!(!reply.body.to_string().contains("hunter2"));
        }
    }
    let anonymous = app.get("/internal/v2.0/sources", As::Raw(&[])).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let keyed = app.get(&credentials, As::Org("1")).await;
    assert_eq!(
        keyed.body["password"], "hunter2",
        "a listed key still reads it"
    );

    let open = TestApp::spawn_with(|c| {
        c.psks.clear();
        c.internal_api_open = true;
    })
    .await;
    let listed = open.get("/internal/v2.0/sources", As::Raw(&[])).await;
    assert_eq!(listed.status, StatusCode::OK, "opened on purpose");
}

#[tokio::test]
async fn without_configured_psks_no_psk_is_accepted() {
    let app = TestApp::spawn_with(|c| c.psks.clear()).await;
    let type_id = app.source_type_id("amazon").await;
    let reply = app
        .post(
            "/sources",
            As::Raw(&[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", "")]),
            &json!({"name": "x", "source_type_id": type_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "Unauthorized Action: Incorrect PSK");
}

/// A deployment that can never write says so when it starts, not at the first 401.
#[tokio::test]
async fn start_up_warns_when_no_write_can_succeed() {
    let logs = LogCapture::install();
    const REFUSED: &str = "every write will be refused with 401";
    let _locked = TestApp::spawn_with(|c| c.psks.clear()).await;
    assert_eq!(logs.text().matches(REFUSED).count(), 1, "{}", logs.text());
    let _with_psk = TestApp::spawn().await;
    let _blank = TestApp::spawn_with(|c| c.psks = vec![" ".to_owned()]).await;
    assert_eq!(
        logs.text().matches(REFUSED).count(),
        2,
        "a PSK silences the warning, a blank one does not"
    );
    let _bypass = TestApp::spawn_with(|c| {
        c.psks.clear();
        c.bypass_rbac = true;
    })
    .await;
    let text = logs.text();
    assert_eq!(text.matches(REFUSED).count(), 2);
    assert!(text.contains("BYPASS_RBAC=true: writes need no pre-shared key"));
}

#[tokio::test]
async fn a_malformed_identity_is_a_401_not_a_500() {
    let app = TestApp::spawn().await;
    let not_json = base64_json("not json");
    for bad in ["%%%not-base64", not_json.as_str()] {
        let reply = app
            .get("/sources", As::Raw(&[("x-rh-identity", bad)]))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(
            reply
                .error()
                .starts_with("Unauthorized Action: the x-rh-identity header is not"),
            "{}",
            reply.body
        );
    }
}

/// A legacy tenant (account number only) is found when an identity names both its account
/// and an org id, as sources-api-go finds it, and gets the org id attached: its sources are
/// not lost behind a new, empty tenant.
#[tokio::test]
async fn a_legacy_account_tenant_is_found_and_given_the_org_id() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("amazon").await;
    let legacy = [
        ("x-rh-sources-account-number", "acct-9"),
        ("x-rh-sources-psk", PSK),
    ];
    let created = app
        .post(
            "/sources",
            As::Raw(&legacy),
            &json!({"name": "old", "source_type_id": type_id}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let both = [
        ("x-rh-sources-account-number", "acct-9"),
        ("x-rh-sources-org-id", "org-9"),
    ];
    let listed = app.get("/sources", As::Raw(&both)).await;
    assert_eq!(listed.ids(), vec![created.body["id"].as_str().unwrap()]);
    let org_only = app.get("/sources", As::Org("org-9")).await;
    assert_eq!(org_only.ids().len(), 1, "found by org id from then on");
    assert_eq!(app.count("tenants").await, 1, "no second tenant");
}

/// Reads never create tenants: an unknown org reads as one that has nothing.
#[tokio::test]
async fn reads_leave_no_tenant_behind() {
    let app = TestApp::spawn().await;
    let listed = app.get("/sources", As::Org("never-wrote")).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["meta"]["count"], 0);
    assert_eq!(
        app.get("/sources/1", As::Org("never-wrote")).await.error(),
        "source not found"
    );
    assert_eq!(app.count("tenants").await, 0);
    app.create_source("never-wrote", "aws", "amazon").await;
    assert_eq!(app.count("tenants").await, 1, "a write creates it");
}
