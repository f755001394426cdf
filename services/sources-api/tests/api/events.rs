//! The outbox holds exactly the events sources-api-go would publish, with its headers, key and
//! payload formats, in its order, and nothing for a refused or rolled-back write.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{As, COST, Outboxed, TestApp, identity};

fn header<'a>(e: &'a Outboxed, name: &str) -> Option<&'a str> {
    e.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn is_event_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 23 && s.ends_with(" UTC") && s.as_bytes()[10] == b' '
}

#[tokio::test]
async fn source_create_event_has_exact_headers_key_and_payload() {
    let app = TestApp::spawn().await;
    let id = identity("org-9", Some("acct-9"));
    let type_id = app.source_type_id("amazon").await;
    let reply = app
        .post(
            "/sources",
            As::Raw(&[
                ("x-rh-identity", &id),
                ("x-rh-sources-psk", crate::helpers::PSK),
            ]),
            &json!({"name": "evented", "source_type_id": type_id}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let events = app.outbox().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.topic, "platform.sources.event-stream");
    assert_eq!(e.event_type, "Source.create");
    assert_eq!(e.key, "org-9", "keyed by org id");
    assert_eq!(
        e.headers,
        vec![
            (
                "x-rh-sources-account-number".to_owned(),
                "acct-9".to_owned()
            ),
            ("x-rh-sources-org-id".to_owned(), "org-9".to_owned()),
            ("x-rh-identity".to_owned(), id.clone()),
            ("event_type".to_owned(), "Source.create".to_owned()),
            ("encoding".to_owned(), "json".to_owned()),
        ]
    );
    let p = &e.payload;
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "availability_status",
            "last_checked_at",
            "last_available_at",
            "id",
            "created_at",
            "updated_at",
            "paused_at",
            "name",
            "uid",
            "version",
            "imported",
            "source_ref",
            "app_creation_workflow",
            "source_type_id",
            "tenant"
        ]
    );
    assert_eq!(
        p["id"],
        reply.body["id"].as_str().unwrap().parse::<i64>().unwrap(),
        "integer ids"
    );
    assert_eq!(p["source_type_id"], type_id.parse::<i64>().unwrap());
    assert!(is_event_time(&p["created_at"]), "{}", p["created_at"]);
    assert_eq!(p["last_checked_at"], Value::Null, "explicit nulls");
    assert_eq!(p["version"], Value::Null);
    assert_eq!(p["tenant"], "acct-9", "tenant is the account number");
    assert_eq!(p["uid"], reply.body["uid"]);
}

#[tokio::test]
async fn keys_fall_back_to_account_then_identity() {
    let app = TestApp::spawn().await;
    let type_id = app.source_type_id("amazon").await;
    app.post(
        "/sources",
        As::Raw(&[
            ("x-rh-sources-account-number", "acct-only"),
            ("x-rh-sources-psk", crate::helpers::PSK),
        ]),
        &json!({"name": "a", "source_type_id": type_id}),
    )
    .await;
    let e = &app.outbox().await[0];
    assert_eq!(e.key, "acct-only");
    assert_eq!(
        header(e, "x-rh-sources-org-id"),
        None,
        "absent values are not sent"
    );
    let generated = header(e, "x-rh-identity").expect("an identity is generated");
    assert!(!generated.is_empty());
}

#[tokio::test]
async fn every_write_emits_its_events_in_order() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    app.patch(
        &format!("/sources/{sid}"),
        As::Org("1"),
        &json!({"name": "renamed"}),
    )
    .await;
    let a = app
        .create_application("1", sid, COST, json!({"bucket": "b"}))
        .await;
    let aid = a["id"].as_str().unwrap();
    let auth = app
        .create_authentication("1", json!({"resource_type": "Application", "resource_id": aid, "authtype": "arn", "username": "arn:aws:iam::1:role/r"}))
        .await;
    let link = app
        .post(
            "/application_authentications",
            As::Org("1"),
            &json!({"application_id": aid, "authentication_id": auth["id"]}),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    app.patch(
        &format!("/applications/{aid}"),
        As::Org("1"),
        &json!({"availability_status": "available"}),
    )
    .await;
    app.patch(
        &format!("/authentications/{}", auth["id"].as_str().unwrap()),
        As::Org("1"),
        &json!({"name": "n"}),
    )
    .await;
    let e = app
        .post(
            "/endpoints",
            As::Org("1"),
            &json!({"source_id": sid, "host": "x.example.com"}),
        )
        .await
        .body;
    app.patch(
        &format!("/endpoints/{}", e["id"].as_str().unwrap()),
        As::Org("1"),
        &json!({"path": "/"}),
    )
    .await;
    app.request(
        reqwest::Method::POST,
        &format!("/sources/{sid}/pause"),
        As::Org("1"),
        None,
    )
    .await;
    app.request(
        reqwest::Method::POST,
        &format!("/sources/{sid}/unpause"),
        As::Org("1"),
        None,
    )
    .await;
    app.request(
        reqwest::Method::POST,
        &format!("/applications/{aid}/pause"),
        As::Org("1"),
        None,
    )
    .await;
    app.request(
        reqwest::Method::POST,
        &format!("/applications/{aid}/unpause"),
        As::Org("1"),
        None,
    )
    .await;
    app.delete(
        &format!(
            "/application_authentications/{}",
            link.body["id"].as_str().unwrap()
        ),
        As::Org("1"),
    )
    .await;

    assert_eq!(
        app.event_types().await,
        [
            "Source.create",
            "Source.update",
            "Application.create",
            "Authentication.create",
            "ApplicationAuthentication.create",
            "Application.update",
            "Authentication.update",
            "Endpoint.create",
            "Endpoint.update",
            "Source.pause",
            "Application.pause",
            "Source.unpause",
            "Application.unpause",
            "Application.pause",
            "Application.unpause",
            "ApplicationAuthentication.destroy",
        ]
    );
    let events = app.outbox().await;
    let auth_event = events
        .iter()
        .find(|e| e.event_type == "Authentication.create")
        .unwrap();
    let p = &auth_event.payload;
    assert_eq!(p["id"], auth["id"], "the authentication id stays a string");
    assert_eq!(p["resource_id"], aid.parse::<i64>().unwrap());
    assert_eq!(
        p["source_id"],
        sid.parse::<i64>().unwrap(),
        "source_id derived from the resource"
    );
    assert_eq!(p["resource_type"], "Application");
    assert_eq!(p["name"], "", "Go strings, not nulls");
    let app_update = events
        .iter()
        .find(|e| e.event_type == "Application.update")
        .unwrap();
    assert_eq!(app_update.payload["availability_status"], "available");
    assert_eq!(app_update.payload["extra"], json!({"bucket": "b"}));
    assert!(is_event_time(&app_update.payload["last_checked_at"]));
    let link_event = events
        .iter()
        .find(|e| e.event_type == "ApplicationAuthentication.create")
        .unwrap();
    assert_eq!(
        link_event.payload["application_id"],
        aid.parse::<i64>().unwrap()
    );
    assert!(events.iter().all(|e| e.key == "1"));
}

#[tokio::test]
async fn source_cascade_delete_emits_in_sources_api_go_order() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    let cost = app.create_application("1", sid, COST, json!({})).await;
    let meter = app
        .create_application("1", sid, "/insights/platform/cloud-meter", json!({}))
        .await;
    let e = app
        .post("/endpoints", As::Org("1"), &json!({"source_id": sid}))
        .await
        .body;
    let src_auth = app
        .create_authentication(
            "1",
            json!({"resource_type": "Source", "resource_id": sid, "authtype": "x"}),
        )
        .await;
    let app_auth = app
        .create_authentication(
            "1",
            json!({"resource_type": "Application", "resource_id": cost["id"], "authtype": "arn"}),
        )
        .await;
    let ep_auth = app
        .create_authentication(
            "1",
            json!({"resource_type": "Endpoint", "resource_id": e["id"], "authtype": "token"}),
        )
        .await;
    app.post(
        "/application_authentications",
        As::Org("1"),
        &json!({"application_id": cost["id"], "authentication_id": app_auth["id"]}),
    )
    .await;
    app.clear_outbox().await;

    assert_eq!(
        app.delete(&format!("/sources/{sid}"), As::Org("1"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let events = app.outbox().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ApplicationAuthentication.destroy",
            "Application.destroy",
            "Application.destroy",
            "Endpoint.destroy",
            "Source.destroy",
            "Authentication.destroy",
            "Authentication.destroy",
            "Authentication.destroy"
        ]
    );
    assert_eq!(
        events[1].payload["id"],
        cost["id"].as_str().unwrap().parse::<i64>().unwrap()
    );
    assert_eq!(
        events[2].payload["id"],
        meter["id"].as_str().unwrap().parse::<i64>().unwrap()
    );
    let destroyed_auths: Vec<&Value> = events[5..].iter().map(|e| &e.payload["id"]).collect();
    assert_eq!(
        destroyed_auths,
        [&src_auth["id"], &app_auth["id"], &ep_auth["id"]]
    );
    for table in [
        "sources",
        "applications",
        "endpoints",
        "authentications",
        "application_authentications",
    ] {
        assert_eq!(app.count(table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn refused_and_failed_writes_leave_no_event() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "aws", "amazon").await;
    let sid = s["id"].as_str().unwrap();
    app.clear_outbox().await;
    let type_id = app.source_type_id("amazon").await;

    app.post(
        "/sources",
        As::Org("1"),
        &json!({"name": "aws", "source_type_id": type_id}),
    )
    .await;
    app.post(
        "/sources",
        As::Raw(&[("x-rh-sources-org-id", "1")]),
        &json!({"name": "x", "source_type_id": type_id}),
    )
    .await;
    app.patch(
        &format!("/sources/{sid}"),
        As::Org("1"),
        &json!({"name": ""}),
    )
    .await;
    app.post(
        "/applications",
        As::Org("1"),
        &json!({"source_id": sid, "application_type_id": "999"}),
    )
    .await;
    app.delete("/sources/999999", As::Org("1")).await;
    // A bulk create that fails half-way rolls back what it already inserted.
    let bulk = app
        .post("/bulk_create", As::Org("1"), &json!({
            "sources": [{"name": "half", "source_type_name": "amazon"}],
            "applications": [{"application_type_name": "cost-management", "source_name": "nobody"}]
        }))
        .await;
    assert_eq!(bulk.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.outbox().await.len(),
        0,
        "no event without a committed change"
    );
    assert_eq!(
        app.count("sources").await,
        1,
        "the failed bulk create left no source"
    );
}

/// An application edit renders its event before the database writes the row: the payload
/// still reads exactly as the stored row (`extra` in `jsonb`'s key order, the `updated_at` the
/// database set), and the source takes the new status in the same statement.
#[tokio::test]
async fn an_application_edits_event_reads_as_the_stored_row() {
    let app = TestApp::spawn().await;
    let source = app.create_source("edit-1", "evented app", "amazon").await;
    let sid = source["id"].as_str().unwrap();
    let cost = app.application_type_id(COST).await;
    let created = app
        .post(
            "/applications",
            As::Org("edit-1"),
            &json!({"source_id": sid, "application_type_id": cost}),
        )
        .await;
    let aid = created.body["id"].as_str().unwrap().to_owned();
    app.clear_outbox().await;
    let edit = r#"{"extra": {"zz": 1, "bucket": "b", "a": {"yy": 2, "b": [1, {"kk": 1, "k": 2}]}, "zz": 3},
                   "availability_status": "available", "availability_status_error": ""}"#;
    let reply = app
        .request(
            reqwest::Method::PATCH,
            &format!("/applications/{aid}"),
            As::Org("edit-1"),
            Some(edit),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let (payload, stored_extra, updated_at, source_status): (String, String, String, String) =
        sqlx::query_as(
            "SELECT o.payload::text, a.extra::text, \
               to_char(a.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', \
               s.availability_status \
             FROM outbox o, applications a JOIN sources s ON s.id = a.source_id \
             WHERE o.event_type = 'Application.update' AND a.id = $1",
        )
        .bind(aid.parse::<i64>().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored_extra).unwrap();
    assert!(
        payload.contains(&format!("\"extra\":{}", stored)),
        "extra as jsonb orders it: {payload}"
    );
    assert!(
        payload.contains(r#""extra":{"a":{"b":[1,{"k":2,"kk":1}],"yy":2},"zz":3,"bucket":"b"}"#),
        "{payload}"
    );
    assert!(
        payload.contains(&format!("\"updated_at\":\"{updated_at}\"")),
        "{payload}"
    );
    assert_eq!(source_status, "available", "the source took the status");
}
