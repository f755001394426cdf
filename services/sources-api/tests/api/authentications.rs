use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, COST, LogCapture, PSK, TestApp};

const SECRET: &str = "correct-horse-battery-staple";

#[tokio::test]
async fn passwords_are_encrypted_never_returned_and_never_logged() {
    let logs = LogCapture::install();
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "az", "azure").await;
    let sid = s["id"].as_str().unwrap();
    let a = app
        .create_application(
            "1",
            sid,
            COST,
            json!({"resource_group": "rg", "storage_account": "sa"}),
        )
        .await;
    let aid = a["id"].as_str().unwrap();

    let created = app
        .post(
            "/authentications",
            As::Org("1"),
            &json!({"resource_type": "application", "resource_id": aid.parse::<i64>().unwrap(),
                    "authtype": "tenant_id_client_id_client_secret", "username": "client-id",
                    "password": SECRET, "extra": {"azure": {"tenant_id": "t-1"}}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let auth = &created.body;
    assert_eq!(
        auth["resource_type"], "Application",
        "resource_type is capitalised"
    );
    assert_eq!(auth["resource_id"], aid);
    assert_eq!(auth["username"], "client-id");
    let keys: Vec<&str> = auth
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "authtype",
            "username",
            "extra",
            "resource_type",
            "resource_id"
        ]
    );
    let id = auth["id"].as_str().unwrap();

    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT password_encrypted FROM authentications WHERE id = $1")
            .bind(id.parse::<i64>().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "encrypted at rest"
    );

    let patched = app
        .patch(
            &format!("/authentications/{id}"),
            As::Org("1"),
            &json!({"password": format!("{SECRET}-2")}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let mut public = Vec::new();
    for path in [
        format!("/authentications/{id}"),
        "/authentications".to_owned(),
        format!("/sources/{sid}/authentications"),
        format!("/applications/{aid}/authentications"),
        "/authentications?filter[authtype]=tenant_id_client_id_client_secret".to_owned(),
    ] {
        let reply = app.get(&path, As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        public.push(reply.body.to_string());
    }
    public.push(created.body.to_string());
    public.push(patched.body.to_string());
    for body in &public {
        assert!(!body.contains(SECRET), "password leaked in {body}");
        assert!(!body.contains("password"), "no password field in {body}");
    }

    // Only the internal API shows it, when asked.
    let internal = app
        .get(
            &format!("/internal/v1.0/authentications/{id}?expose_encrypted_attribute[]=password"),
            As::Org("1"),
        )
        .await;
    assert_eq!(internal.status, StatusCode::OK);
    assert_eq!(internal.body["password"], format!("{SECRET}-2"));
    let plain = app
        .get(
            &format!("/internal/v2.0/authentications/{id}"),
            As::Org("1"),
        )
        .await;
    assert!(plain.body.get("password").is_none());

    let outbox: Vec<String> = app
        .outbox()
        .await
        .iter()
        .map(|e| e.payload.to_string())
        .collect();
    assert!(
        outbox.iter().all(|p| !p.contains(SECRET)),
        "events carry no password"
    );
    let text = logs.text();
    assert!(text.contains("request completed"), "logs were captured");
    assert!(!text.contains(SECRET), "a password reached the logs");
}

#[tokio::test]
async fn create_validation_messages() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let theirs = app.create_source("2", "theirs", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let cases = [
        (json!({"resource_id": sid}), "bad request: resource_type is required".to_owned()),
        (json!({"resource_type": "Source"}), "bad request: resource_id is required".to_owned()),
        (json!({"resource_type": "Source", "resource_id": "x1"}), "bad request: resource_id must be a valid integer or string".to_owned()),
        (json!({"resource_type": "Tenant", "resource_id": sid}), "bad request: invalid resource_type - must be one of [Source|Endpoint|Application|Authentication]".to_owned()),
        (json!({"resource_type": "Source", "resource_id": "424242"}), "bad request: resource not found with type [Source], id [424242]".to_owned()),
        (json!({"resource_type": "source", "resource_id": theirs["id"]}), format!("bad request: resource not found with type [Source], id [{}]", theirs["id"].as_str().unwrap())),
        (json!({"resource_type": "Source", "resource_id": sid, "authtype": "lighthouse_subscription_id"}), "bad request: subscription ID is invalid: username is required for Azure Source Types".to_owned()),
        (json!({"resource_type": "Source", "resource_id": sid, "authtype": "lighthouse_subscription_id", "username": "  "}), "bad request: subscription ID is invalid: username must not be blank or empty for Azure Source Types".to_owned()),
        (json!({"resource_type": "Source", "resource_id": sid, "authtype": "lighthouse_subscription_id", "username": "nope"}), "bad request: subscription ID is invalid: the username must be a valid UUID for Azure Source Types".to_owned()),
    ];
    for (body, detail) in cases {
        let reply = app.post("/authentications", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(app.count("authentications").await, 0);
    let ok = app
        .post("/authentications", As::Org("1"), &json!({"resource_type": "Source", "resource_id": sid, "authtype": "lighthouse_subscription_id", "username": "0b5a8b49-1cd7-4c8e-9d0b-3b0a1c2d3e4f"}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[tokio::test]
async fn koku_finds_aws_credentials_by_source_and_authtype() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let a = app
        .create_application("1", sid, COST, json!({"bucket": "b"}))
        .await;
    app.create_authentication("1", json!({"resource_type": "Application", "resource_id": a["id"], "authtype": "arn", "username": "arn:aws:iam::1:role/r", "extra": {"external_id": "ext"}}))
        .await;
    let reply = app
        .get(
            &format!(
                "/api/sources/v1.0/authentications?filter[source_id]={sid}&filter[authtype]=arn"
            ),
            As::Org("1"),
        )
        .await;
    assert_eq!(reply.ids().len(), 1);
    assert_eq!(reply.body["data"][0]["username"], "arn:aws:iam::1:role/r");
    assert_eq!(reply.body["data"][0]["extra"]["external_id"], "ext");
    let none = app
        .get(
            &format!("/authentications?filter[source_id]={sid}&filter[authtype]=token"),
            As::Org("1"),
        )
        .await;
    assert_eq!(none.ids().len(), 0);
}

#[tokio::test]
async fn edit_delete_and_tenancy() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "ocp", "openshift").await;
    let auth = app
        .create_authentication("1", json!({"resource_type": "Source", "resource_id": s["id"], "authtype": "token", "password": "t0k"}))
        .await;
    let id = auth["id"].as_str().unwrap();
    assert_eq!(auth["username"], "", "username is always present");
    let path = format!("/authentications/{id}");

    let edited = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"name": "cluster token", "availability_status": "available"}),
        )
        .await;
    assert_eq!(edited.body["name"], "cluster token");
    assert_eq!(edited.body["availability_status"], "available");
    let bad = app
        .patch(&path, As::Org("1"), &json!({"availability_status": "x"}))
        .await;
    assert_eq!(
        bad.error(),
        "bad request: availability status invalid. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\""
    );

    for reply in [
        app.get(&path, As::Org("2")).await,
        app.patch(&path, As::Org("2"), &json!({"name": "x"})).await,
        app.delete(&path, As::Org("2")).await,
        app.get(
            &format!("/internal/v1.0/authentications/{id}?expose_encrypted_attribute[]=password"),
            As::Org("2"),
        )
        .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error(), "authentication not found");
    }
    let no_psk = app
        .get(
            &format!("/internal/v1.0/authentications/{id}?expose_encrypted_attribute[]=password"),
            As::Raw(&[("x-rh-sources-org-id", "1")]),
        )
        .await;
    assert_eq!(
        no_psk.status,
        StatusCode::UNAUTHORIZED,
        "the internal API needs a PSK"
    );
    let with_psk = app
        .get(
            &format!("/internal/v1.0/authentications/{id}?expose_encrypted_attribute[]=password"),
            As::Raw(&[("x-rh-sources-org-id", "1"), ("x-rh-sources-psk", PSK)]),
        )
        .await;
    assert_eq!(with_psk.body["password"], "t0k");

    assert_eq!(
        app.delete(&path, As::Org("1")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, As::Org("1")).await.error(),
        "authentication not found"
    );
}

#[tokio::test]
async fn a_password_sealed_for_one_tenant_does_not_open_for_another() {
    let app = TestApp::spawn().await;
    let mine = app.create_source("1", "mine", "openshift").await;
    let theirs = app.create_source("2", "theirs", "openshift").await;
    let a = app.create_authentication("1", json!({"resource_type": "Source", "resource_id": mine["id"], "authtype": "token", "password": "p1"})).await;
    let b = app.create_authentication("2", json!({"resource_type": "Source", "resource_id": theirs["id"], "authtype": "token", "password": "p2"})).await;
    // Copy tenant 1's sealed password onto tenant 2's row, as a database-level attacker might.
    sqlx::query("UPDATE authentications SET password_encrypted = (SELECT password_encrypted FROM authentications WHERE id = $1) WHERE id = $2")
        .bind(a["id"].as_str().unwrap().parse::<i64>().unwrap())
        .bind(b["id"].as_str().unwrap().parse::<i64>().unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let reply = app
        .get(
            &format!(
                "/internal/v1.0/authentications/{}?expose_encrypted_attribute[]=password",
                b["id"].as_str().unwrap()
            ),
            As::Org("2"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!reply.body.to_string().contains("p1"));
}
