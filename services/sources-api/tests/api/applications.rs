use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{As, COST, TestApp};

#[tokio::test]
async fn create_get_list_and_sub_collection() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let cost = app.application_type_id(COST).await;

    let created = app
        .post("/applications", As::Org("1"), &json!({"source_id": sid.parse::<i64>().unwrap(), "application_type_id": cost, "extra": {"bucket": "b1"}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let a = &created.body;
    assert_eq!(a["source_id"], sid);
    assert_eq!(a["application_type_id"], cost);
    assert_eq!(a["extra"], json!({"bucket": "b1"}));
    assert_eq!(a["availability_status"], "in_progress");
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "created_at",
            "updated_at",
            "availability_status",
            "extra",
            "source_id",
            "application_type_id"
        ]
    );

    let id = a["id"].as_str().unwrap();
    assert_eq!(
        &app.get(&format!("/applications/{id}"), As::Org("1"))
            .await
            .body,
        a
    );
    assert_eq!(app.get("/applications", As::Org("1")).await.ids(), vec![id]);
    // Koku: GET /applications?filter[source_id]=..&filter[application_type_id]=..
    let koku = app
        .get(&format!("/api/sources/v1.0/applications?filter[source_id]={sid}&filter[application_type_id]={cost}"), As::Org("1"))
        .await;
    assert_eq!(koku.body["data"][0]["extra"]["bucket"], "b1");
    assert_eq!(
        app.get(&format!("/sources/{sid}/applications"), As::Org("1"))
            .await
            .ids(),
        vec![id]
    );
    let filtered = app
        .get(
            "/applications?filter[application_type][name]=/insights/platform/cloud-meter",
            As::Org("1"),
        )
        .await;
    assert_eq!(
        filtered.body["meta"]["count"], 0,
        "application_type subresource filter"
    );
    assert_eq!(
        app.get(&format!("/sources/{sid}/application_types"), As::Org("1"))
            .await
            .ids(),
        vec![cost]
    );
}

#[tokio::test]
async fn create_validation_messages() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "ocp", "openshift").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let other = app.create_source("2", "theirs", "amazon").await;
    let cost = app.application_type_id(COST).await;
    let fifi = app.application_type_id("/insights/platform/fifi").await;
    app.create_application("1", &sid, COST, json!({})).await;
    let before = app.count("applications").await;

    let cases = [
        (json!({"application_type_id": cost}), "bad request: Validation failed: missing required parameter source_id".to_owned()),
        (json!({"source_id": sid}), "bad request: Validation failed: missing required parameter application_type_id".to_owned()),
        (json!({"source_id": sid, "application_type_id": "abc"}), "bad request: Validation failed: invalid application type id abc".to_owned()),
        (json!({"source_id": true, "application_type_id": cost}), "bad request: Validation failed: invalid source id true".to_owned()),
        (json!({"source_id": "999999", "application_type_id": cost}), "bad request: Validation failed: source id not found".to_owned()),
        (json!({"source_id": other["id"], "application_type_id": cost}), "bad request: Validation failed: source id not found".to_owned()),
        (json!({"source_id": sid, "application_type_id": fifi}), "bad request: Validation failed: source type is not compatible with this application type".to_owned()),
        (json!({"source_id": sid, "application_type_id": cost}), format!("bad request: Application of application type = {cost} already exists for the source id = {sid}")),
        (json!({"source_id": sid, "application_type_id": cost, "nope": 1}), "bad request: json: unknown field \"nope\"".to_owned()),
    ];
    for (body, detail) in cases {
        let reply = app.post("/applications", As::Org("1"), &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(app.count("applications").await, before);
}

#[tokio::test]
async fn a_status_patch_sets_the_source_status_too() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let a = app
        .create_application("1", sid, COST, json!({"bucket": "b"}))
        .await;
    let path = format!("/applications/{}", a["id"].as_str().unwrap());

    // What Koku sends.
    let reply = app
        .patch(&path, As::Org("1"), &json!({"availability_status": "unavailable", "availability_status_error": "Access denied"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["availability_status"], "unavailable");
    assert_eq!(reply.body["availability_status_error"], "Access denied");
    assert!(reply.body["last_checked_at"].is_string());
    let source = app.get(&format!("/sources/{sid}"), As::Org("1")).await.body;
    assert_eq!(source["availability_status"], "unavailable");
    assert_eq!(source["last_checked_at"], reply.body["last_checked_at"]);

    let ok = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"availability_status": "available", "availability_status_error": ""}),
        )
        .await;
    assert_eq!(ok.body["availability_status"], "available");
    assert!(
        ok.body.get("availability_status_error").is_none(),
        "an empty error is omitted"
    );
    let source = app.get(&format!("/sources/{sid}"), As::Org("1")).await.body;
    assert_eq!(source["availability_status"], "available");
    assert!(source["last_available_at"].is_string());

    let extra = app
        .patch(
            &path,
            As::Org("1"),
            &json!({"extra": {"bucket": "b2", "_superkey": {"k": 1}}}),
        )
        .await;
    assert_eq!(
        extra.body["extra"],
        json!({"bucket": "b2"}),
        "_superkey is kept apart"
    );

    let bad = app
        .patch(&path, As::Org("1"), &json!({"availability_status": "meh"}))
        .await;
    assert_eq!(
        bad.error(),
        "bad request: invalid payload: availability status invalid. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\""
    );
    let missing = app
        .patch(
            "/applications/424242",
            As::Org("1"),
            &json!({"availability_status": "available"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "application not found");
}

#[tokio::test]
async fn pause_and_unpause_sources_and_applications() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let a = app.create_application("1", sid, COST, json!({})).await;
    let apath = format!("/applications/{}", a["id"].as_str().unwrap());

    let paused = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/pause"),
            As::Org("1"),
            None,
        )
        .await;
    assert_eq!(paused.status, StatusCode::NO_CONTENT);
    assert!(app.get(&format!("/sources/{sid}"), As::Org("1")).await.body["paused_at"].is_string());
    assert!(
        app.get(&apath, As::Org("1")).await.body["paused_at"].is_string(),
        "applications pause with their source"
    );

    let refused = app.patch(&apath, As::Org("1"), &json!({"extra": {}})).await;
    assert_eq!(
        refused.error(),
        "bad request: json: unknown field \"extra\""
    );
    let status_only = app
        .patch(
            &apath,
            As::Org("1"),
            &json!({"availability_status": "available"}),
        )
        .await;
    assert_eq!(status_only.status, StatusCode::OK);

    let unpaused = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/unpause"),
            As::Org("1"),
            None,
        )
        .await;
    assert_eq!(unpaused.status, StatusCode::NO_CONTENT);
    assert!(
        app.get(&apath, As::Org("1"))
            .await
            .body
            .get("paused_at")
            .is_none()
    );

    let app_pause = app
        .request(
            reqwest::Method::POST,
            &format!("{apath}/pause"),
            As::Org("1"),
            None,
        )
        .await;
    assert_eq!(app_pause.status, StatusCode::NO_CONTENT);
    assert!(app.get(&apath, As::Org("1")).await.body["paused_at"].is_string());
    assert!(
        app.get(&format!("/sources/{sid}"), As::Org("1"))
            .await
            .body
            .get("paused_at")
            .is_none()
    );
    app.request(
        reqwest::Method::POST,
        &format!("{apath}/unpause"),
        As::Org("1"),
        None,
    )
    .await;
    assert!(
        app.get(&apath, As::Org("1"))
            .await
            .body
            .get("paused_at")
            .is_none()
    );

    for path in ["/sources/9999/pause", "/applications/9999/pause"] {
        let r = app
            .request(reqwest::Method::POST, path, As::Org("1"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let theirs = app
        .request(
            reqwest::Method::POST,
            &format!("/sources/{sid}/pause"),
            As::Org("2"),
            None,
        )
        .await;
    assert_eq!(
        theirs.error(),
        "source not found",
        "another tenant cannot pause it"
    );
}

#[tokio::test]
async fn delete_removes_links_and_authentications() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let a = app.create_application("1", sid, COST, json!({})).await;
    let aid = a["id"].as_str().unwrap();
    let auth = app
        .create_authentication("1", json!({"resource_type": "Application", "resource_id": aid, "authtype": "arn", "username": "arn:aws:iam::1:role/x"}))
        .await;
    app.post(
        "/application_authentications",
        As::Org("1"),
        &json!({"application_id": aid, "authentication_id": auth["id"]}),
    )
    .await;
    assert_eq!(
        app.get(
            &format!("/applications/{aid}/authentications"),
            As::Org("1")
        )
        .await
        .ids()
        .len(),
        1
    );

    let reply = app
        .delete(&format!("/applications/{aid}"), As::Org("1"))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("applications").await, 0);
    assert_eq!(app.count("application_authentications").await, 0);
    assert_eq!(app.count("authentications").await, 0);
    assert_eq!(app.count("sources").await, 1, "the source stays");
    assert_eq!(
        app.delete(&format!("/applications/{aid}"), As::Org("1"))
            .await
            .error(),
        "application not found"
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_applications() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let a = app
        .create_application("1", s["id"].as_str().unwrap(), COST, json!({}))
        .await;
    let aid = a["id"].as_str().unwrap();
    assert_eq!(
        app.get("/applications", As::Org("2")).await.body["meta"]["count"],
        0
    );
    for reply in [
        app.get(&format!("/applications/{aid}"), As::Org("2")).await,
        app.get(
            &format!("/applications/{aid}/authentications"),
            As::Org("2"),
        )
        .await,
        app.patch(
            &format!("/applications/{aid}"),
            As::Org("2"),
            &json!({"availability_status": "available"}),
        )
        .await,
        app.delete(&format!("/applications/{aid}"), As::Org("2"))
            .await,
        app.request(
            reqwest::Method::POST,
            &format!("/applications/{aid}/pause"),
            As::Org("2"),
            None,
        )
        .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error(), "application not found");
    }
    let sid = s["id"].as_str().unwrap();
    for path in [
        format!("/sources/{sid}/applications"),
        format!("/sources/{sid}/endpoints"),
        format!("/sources/{sid}/authentications"),
    ] {
        let reply = app.get(&path, As::Org("2")).await;
        assert_eq!(reply.error(), "source not found", "{path}");
    }
}

/// A source deleted while its application's status is edited: the delete takes the source
/// first and the edit (which moves the source's status too) takes it first as well, so they
/// wait for each other instead of deadlocking. Either order is fine: the edit finds the
/// application, or finds it gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_source_while_its_application_reports_a_status_never_deadlocks() {
    let app = TestApp::spawn().await;
    let cost = app.application_type_id(COST).await;
    for round in 0..40 {
        let source = app
            .create_source("race", &format!("race {round}"), "amazon")
            .await;
        let source_id = source["id"].as_str().unwrap().to_owned();
        let created = app
            .post(
                "/applications",
                As::Org("race"),
                &json!({"source_id": source_id, "application_type_id": cost}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let app_id = created.body["id"].as_str().unwrap().to_owned();
        let status = json!({"availability_status": "available", "availability_status_error": ""});
        let (edit_path, delete_path) = (
            format!("/applications/{app_id}"),
            format!("/sources/{source_id}"),
        );
        let (edit, delete) = tokio::join!(
            app.patch(&edit_path, As::Org("race"), &status),
            app.delete(&delete_path, As::Org("race")),
        );
        assert!(
            edit.status == StatusCode::OK || edit.status == StatusCode::NOT_FOUND,
            "round {round}: the edit answered {} {}",
            edit.status,
            edit.body
        );
        assert_eq!(
            delete.status,
            StatusCode::NO_CONTENT,
            "round {round}: {}",
            delete.body
        );
    }
}

#[tokio::test]
async fn links_take_only_the_tenants_own_applications_and_authentications() {
    let app = TestApp::spawn().await;
    let mine = app.create_source("1", "mine", "amazon").await;
    let theirs = app.create_source("2", "theirs", "amazon").await;
    let my_app = app
        .create_application("1", mine["id"].as_str().unwrap(), COST, json!({}))
        .await;
    let their_app = app
        .create_application("2", theirs["id"].as_str().unwrap(), COST, json!({}))
        .await;
    let auth = |org: &'static str, app_id: &Value| json!({"resource_type": "Application", "resource_id": app_id, "authtype": "arn", "username": format!("arn:aws:iam::{org}:role/x")});
    let my_auth = app
        .create_authentication("1", auth("1", &my_app["id"]))
        .await;
    let their_auth = app
        .create_authentication("2", auth("2", &their_app["id"]))
        .await;

    let cases = [
        (
            &their_app["id"],
            &my_auth["id"],
            "bad request: Validation failed: application not found",
        ),
        (
            &my_app["id"],
            &their_auth["id"],
            "bad request: Validation failed: authentication not found",
        ),
        (
            &my_app["id"],
            &json!("987654"),
            "bad request: Validation failed: authentication not found",
        ),
    ];
    for (application_id, authentication_id, detail) in cases {
        let body =
            json!({"application_id": application_id, "authentication_id": authentication_id});
        let reply = app
            .post("/application_authentications", As::Org("1"), &body)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error(), detail, "{body}");
    }
    assert_eq!(app.count("application_authentications").await, 0);

    let body = json!({"application_id": my_app["id"], "authentication_id": my_auth["id"]});
    let linked = app
        .post("/application_authentications", As::Org("1"), &body)
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    assert_eq!(linked.body["application_id"], my_app["id"]);
    let again = app
        .post("/application_authentications", As::Org("1"), &body)
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.error().contains("already exists"), "{}", again.body);
}
