use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, TestApp};

fn is_rfc3339_whole_seconds(value: &serde_json::Value) -> bool {
    let s = value.as_str().unwrap_or_default();
    s.len() == 20 && s.ends_with('Z') && chrono_like(s)
}

fn chrono_like(s: &str) -> bool {
    // YYYY-MM-DDThh:mm:ssZ
    let b = s.as_bytes();
    b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':'
}

#[tokio::test]
async fn create_returns_201_with_the_sources_api_shape() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("amazon").await;

    let reply = app
        .post(
            "/sources",
            As::Org("1001"),
            &json!({
                "name": "My AWS", "source_type_id": type_id.parse::<i64>().unwrap(),
                "uid": "client-chosen", "source_ref": "ref-1", "version": "",
                "app_creation_workflow": "something-else"
            }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED);
    let s = &reply.body;
    assert!(
        s["id"].as_str().unwrap().parse::<i64>().unwrap() > 0,
        "id is a numeric string"
    );
    assert_eq!(s["name"], "My AWS");
    assert_eq!(s["source_type_id"], type_id, "foreign keys are strings");
    assert_eq!(
        s["availability_status"], "in_progress",
        "status defaults to in_progress"
    );
    assert_eq!(
        s["app_creation_workflow"], "manual_configuration",
        "unknown workflows fall back"
    );
    assert_ne!(s["uid"], "client-chosen", "a client uid is overwritten");
    assert_eq!(s["uid"].as_str().unwrap().len(), 36, "uid is a UUID");
    assert_eq!(s["source_ref"], "ref-1");
    assert!(s.get("version").is_none(), "empty strings are omitted");
    assert!(
        s.get("paused_at").is_none() && s.get("last_checked_at").is_none(),
        "nulls are omitted"
    );
    assert!(
        is_rfc3339_whole_seconds(&s["created_at"]),
        "{}",
        s["created_at"]
    );
    assert!(is_rfc3339_whole_seconds(&s["updated_at"]));
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "availability_status",
            "id",
            "created_at",
            "updated_at",
            "name",
            "uid",
            "source_ref",
            "app_creation_workflow",
            "source_type_id"
        ],
        "field order follows sources-api-go's struct"
    );

    let got = app
        .get(
            &format!("/sources/{}", s["id"].as_str().unwrap()),
            As::Org("1001"),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body, s, "get returns what create returned");
}

#[tokio::test]
async fn create_accepts_a_numeric_string_type_id_and_the_superkey_workflow() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("azure").await;
    let reply = app
        .post(
            "/sources",
            As::Org("1"),
            &json!({"name": "az", "source_type_id": type_id, "availability_status": "available",
                    "app_creation_workflow": "account_authorization"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["availability_status"], "available");
    assert_eq!(reply.body["app_creation_workflow"], "account_authorization");
}

#[tokio::test]
async fn create_validation_messages_are_exact_and_change_nothing() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("amazon").await;
    app.create_source("1", "taken", "amazon").await;
    let before = app.count("sources").await;

    let cases = [
        (
            json!({"source_type_id": type_id}),
            "bad request: Validation failed: name cannot be empty",
        ),
        (
            json!({"name": "", "source_type_id": type_id}),
            "bad request: Validation failed: name cannot be empty",
        ),
        (
            json!({"name": "taken", "source_type_id": type_id}),
            "bad request: Validation failed: name already exists in tenant",
        ),
        (
            json!({"name": "n", "source_type_id": type_id, "availability_status": "broken"}),
            "bad request: Validation failed: invalid status",
        ),
        (
            json!({"name": "n"}),
            "bad request: Validation failed: source type id cannot be empty",
        ),
        (
            json!({"name": "n", "source_type_id": "abc"}),
            "bad request: Validation failed: the source type id is not valid",
        ),
        (
            json!({"name": "n", "source_type_id": 0}),
            "bad request: Validation failed: source type id must be greater than 0",
        ),
        (
            json!({"name": "n", "source_type_id": "999999"}),
            "bad request: Validation failed: source type id not found",
        ),
        (
            json!({"name": "n", "source_type_id": type_id, "colour": "red"}),
            "bad request: json: unknown field \"colour\"",
        ),
        (json!({}), "bad request: empty body"),
    ];
    for (body, detail) in cases {
        let reply = app.post("/sources", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    let no_body = app
        .request(reqwest::Method::POST, "/sources", As::Org("1"), Some(""))
        .await;
    assert_eq!(no_body.error(), "bad request: no body");
    let not_json = app
        .request(
            reqwest::Method::POST,
            "/sources",
            As::Org("1"),
            Some("{nope"),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(not_json.error().starts_with("bad request: "));

    assert_eq!(
        app.count("sources").await,
        before,
        "refused creates store nothing"
    );
}

#[tokio::test]
async fn the_same_name_is_fine_in_another_tenant() {
    let app = TestApp::spawn().await;
    app.create_source("1", "shared", "amazon").await;
    app.create_source("2", "shared", "amazon").await;
    assert_eq!(app.count("sources").await, 2);
}

#[tokio::test]
async fn patch_updates_only_the_fields_sent() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "before", "amazon").await;
    let path = format!("/sources/{}", s["id"].as_str().unwrap());

    let reply = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"name": "after", "source_ref": "cluster-9", "availability_status": "available",
                    "last_checked_at": "2024-05-01 10:00:00 UTC"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "after");
    assert_eq!(reply.body["source_ref"], "cluster-9");
    assert_eq!(reply.body["availability_status"], "available");
    assert_eq!(reply.body["last_checked_at"], "2024-05-01T10:00:00Z");
    assert_eq!(reply.body["uid"], s["uid"], "untouched fields stay");
    assert_eq!(reply.body["source_type_id"], s["source_type_id"]);
    let got = app.get(&path, As::Org("1")).await;
    assert_eq!(got.body, reply.body);
}

#[tokio::test]
async fn patch_validation_messages_are_exact_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_source("1", "other", "amazon").await;
    let s = app.create_source("1", "mine", "amazon").await;
    let path = format!("/sources/{}", s["id"].as_str().unwrap());
    let status_msg = "availability status invalid. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\"";

    let cases = [
        (json!({"name": ""}), "bad request: name cannot be empty".to_owned()),
        (json!({"name": "other"}), "bad request: source name already exists in same tenant".to_owned()),
        (json!({"availability_status": "nope"}), format!("bad request: {status_msg}")),
        (json!({"last_checked_at": "2024-05-01T10:00:00Z"}), "bad request: the provided date is in an invalid format. Expected format: \"2006-01-02 15:04:05 MST\"".to_owned()),
        (json!({"uid": "x"}), "bad request: json: unknown field \"uid\"".to_owned()),
        (json!({}), "bad request: empty body".to_owned()),
    ];
    for (body, detail) in cases {
        let reply = app.patch(&path, As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(
        app.get(&path, As::Org("1")).await.body,
        s,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_paused_source_accepts_only_status_fields() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "paused", "amazon").await;
    let id = s["id"].as_str().unwrap();
    sqlx::query("UPDATE sources SET paused_at = now() WHERE id = $1")
        .bind(id.parse::<i64>().unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let path = format!("/sources/{id}");

    let name = app.patch(&path, As::Org("1"), &json!({"name": "x"})).await;
    assert_eq!(name.error(), "bad request: json: unknown field \"name\"");
    let status = app
        .patch(&path, As::Org("1"), &json!({"availability_status": "x"}))
        .await;
    assert_eq!(
        status.error(),
        "bad request: invalid availability status. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\""
    );
    let ok = app
        .patch(&path, As::Org("1"), &json!({"availability_status": "unavailable", "last_available_at": "2024-01-02 03:04:05 UTC"}))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["availability_status"], "unavailable");
    assert_eq!(ok.body["last_available_at"], "2024-01-02T03:04:05Z");
    assert_eq!(ok.body["name"], "paused");
    assert!(
        ok.body["paused_at"].is_string(),
        "paused_at is shown once set"
    );
}

#[tokio::test]
async fn delete_removes_the_source_and_then_404s() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "doomed", "amazon").await;
    let path = format!("/sources/{}", s["id"].as_str().unwrap());

    let reply = app.delete(&path, As::Org("1")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, serde_json::Value::Null, "204 has no body");

    let gone = app.get(&path, As::Org("1")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error(), "source not found");
    let again = app.delete(&path, As::Org("1")).await;
    assert_eq!(again.error(), "source not found");
}

#[tokio::test]
async fn missing_ids_are_404_source_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    for reply in [
        app.get("/sources/4242", As::Org("1")).await,
        app.patch("/sources/4242", As::Org("1"), &json!({"name": "x"}))
            .await,
        app.delete("/sources/4242", As::Org("1")).await,
        app.get("/sources/4242/application_types", As::Org("1"))
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error(), "source not found");
    }
}

#[tokio::test]
async fn bad_path_ids_get_the_id_validation_messages() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "abc",
            "bad request: the provided ID must be a greater than zero, positive number",
        ),
        (
            "-5",
            "bad request: the provided ID must be a greater than zero, positive number",
        ),
        (
            "0",
            "bad request: the provided ID must be greater than zero",
        ),
        (
            "99999999999999999999",
            "bad request: could not parse the provided ID: strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
        ),
    ];
    for (id, detail) in cases {
        for path in [
            format!("/sources/{id}"),
            format!("/sources/{id}/application_types"),
            format!("/source_types/{id}"),
            format!("/source_types/{id}/sources"),
            format!("/application_types/{id}"),
            format!("/application_types/{id}/sources"),
            format!("/application_types/{id}/app_meta_data"),
            format!("/app_meta_data/{id}"),
        ] {
            let reply = app.get(&path, As::Org("1")).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(reply.error(), detail, "{path}");
        }
        // Id validation comes before the write checks, as in sources-api-go.
        let reply = app.delete(&format!("/sources/{id}"), As::Raw(&[])).await;
        assert_eq!(reply.error(), detail);
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_sources() {
    let app = TestApp::spawn().await;
    let mine = app.create_source("1", "mine", "amazon").await;
    let theirs = app.create_source("2", "theirs", "amazon").await;
    let cost = app
        .application_type_id("/insights/platform/cost-management")
        .await;
    let amazon = app.source_type_id("amazon").await;
    for s in [&mine, &theirs] {
        app.attach_application(s["id"].as_str().unwrap(), &cost)
            .await;
    }
    let their_id = theirs["id"].as_str().unwrap();

    let list = app.get("/sources", As::Org("1")).await;
    assert_eq!(list.ids(), vec![mine["id"].as_str().unwrap()]);
    assert_eq!(list.body["meta"]["count"], 1);
    for path in [
        format!("/source_types/{amazon}/sources"),
        format!("/application_types/{cost}/sources"),
    ] {
        let reply = app.get(&path, As::Org("1")).await;
        assert_eq!(reply.ids(), vec![mine["id"].as_str().unwrap()], "{path}");
    }
    for reply in [
        app.get(&format!("/sources/{their_id}"), As::Org("1")).await,
        app.get(
            &format!("/sources/{their_id}/application_types"),
            As::Org("1"),
        )
        .await,
        app.patch(
            &format!("/sources/{their_id}"),
            As::Org("1"),
            &json!({"name": "stolen"}),
        )
        .await,
        app.delete(&format!("/sources/{their_id}"), As::Org("1"))
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error(), "source not found");
    }
    let still = app.get(&format!("/sources/{their_id}"), As::Org("2")).await;
    assert_eq!(
        still.body["name"], "theirs",
        "the other tenant's source is untouched"
    );

    // A tenant seen for the first time gets empty lists, not an error.
    let stranger = app.get("/sources", As::Org("brand-new")).await;
    assert_eq!(stranger.status, StatusCode::OK);
    assert_eq!(stranger.body["meta"]["count"], 0);
}

#[tokio::test]
async fn identity_and_header_tenancy_name_the_same_tenant() {
    let app = TestApp::spawn().await;
    let s = app.create_source("777", "via-header", "amazon").await;
    let reply = app
        .get(
            &format!("/sources/{}", s["id"].as_str().unwrap()),
            As::Identity("777"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["name"], "via-header");
    // Account-only callers are a tenant of their own.
    let acct = app
        .get(
            "/sources",
            As::Raw(&[("x-rh-sources-account-number", "acct-1")]),
        )
        .await;
    assert_eq!(acct.body["meta"]["count"], 0);
}

#[tokio::test]
async fn application_types_of_a_source_come_from_its_applications() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "with-apps", "amazon").await;
    let bare = app.create_source("1", "without-apps", "amazon").await;
    let cost = app
        .application_type_id("/insights/platform/cost-management")
        .await;
    let meter = app
        .application_type_id("/insights/platform/cloud-meter")
        .await;
    app.attach_application(s["id"].as_str().unwrap(), &cost)
        .await;
    app.attach_application(s["id"].as_str().unwrap(), &meter)
        .await;

    let reply = app
        .get(
            &format!("/sources/{}/application_types", s["id"].as_str().unwrap()),
            As::Org("1"),
        )
        .await;
    let mut ids = reply.ids();
    ids.sort();
    let mut want = vec![cost.clone(), meter.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(reply.body["meta"]["count"], 2);
    let filtered = app
        .get(
            &format!(
                "/sources/{}/application_types?filter[name]=/insights/platform/cloud-meter",
                s["id"].as_str().unwrap()
            ),
            As::Org("1"),
        )
        .await;
    assert_eq!(filtered.ids(), vec![meter]);

    let none = app
        .get(
            &format!(
                "/sources/{}/application_types",
                bare["id"].as_str().unwrap()
            ),
            As::Org("1"),
        )
        .await;
    assert_eq!(none.body["meta"]["count"], 0);
}
