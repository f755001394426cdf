//! Requests built from shared field groups (credentials, endpoint settings, status fields,
//! each create request inside a bulk item) refuse unknown fields as a whole, name the field as
//! sources-api-go does, keep each group's own checks, and change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{As, COST, TestApp};

fn unknown(field: &str) -> String {
    format!("bad request: json: unknown field \"{field}\"")
}

/// The ids of one AWS source of org 1 with cost management, an endpoint and an
/// authentication: what the tests below write to.
struct Resources {
    source: String,
    application: String,
    endpoint: String,
    authentication: String,
}

async fn resources(app: &TestApp) -> Resources {
    let source = app.create_source("1", "aws", "amazon").await;
    let sid = source["id"].as_str().unwrap().to_owned();
    let application = app.create_application("1", &sid, COST, json!({})).await;
    let endpoint = app
        .post(
            "/endpoints",
            As::Org("1"),
            &json!({"source_id": sid, "host": "api.example.com"}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{}", endpoint.body);
    let auth = app
        .create_authentication(
            "1",
            json!({"resource_type": "Source", "resource_id": sid, "authtype": "token", "password": "p"}),
        )
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    Resources {
        application: id(&application),
        endpoint: id(&endpoint.body),
        authentication: id(&auth),
        source: sid,
    }
}

#[tokio::test]
async fn composed_requests_refuse_unknown_fields_and_change_nothing() {
    let app = TestApp::spawn().await;
    let Resources {
        source: sid,
        endpoint: eid,
        authentication: aid,
        ..
    } = resources(&app).await;
    let secret = app
        .post(
            "/secrets",
            As::Org("1"),
            &json!({"name": "s", "authtype": "token"}),
        )
        .await;
    let secret_id = secret.body["id"].as_str().unwrap().to_owned();
    let rhc = app
        .post(
            "/rhc_connections",
            As::Org("1"),
            &json!({"rhc_id": "r", "source_id": sid}),
        )
        .await;
    let rhc_id = rhc.body["id"].as_str().unwrap().to_owned();
    let before = app.outbox().await.len();

    let writes: [(&str, String, Value); 10] = [
        (
            "POST",
            "/endpoints".into(),
            json!({"source_id": sid, "host": "b.example.com", "colour": 1}),
        ),
        (
            "PATCH",
            format!("/endpoints/{eid}"),
            json!({"host": "c.example.com", "colour": 1}),
        ),
        (
            "PATCH",
            format!("/endpoints/{eid}"),
            json!({"availability_status": "available", "colour": 1}),
        ),
        (
            "POST",
            "/authentications".into(),
            json!({"resource_type": "Source", "resource_id": sid, "authtype": "t", "colour": 1}),
        ),
        (
            "PATCH",
            format!("/authentications/{aid}"),
            json!({"username": "u", "last_checked_at": "2024-05-01 10:00:00 UTC", "colour": 1}),
        ),
        ("POST", "/secrets".into(), json!({"name": "t", "colour": 1})),
        (
            "PATCH",
            format!("/secrets/{secret_id}"),
            json!({"username": "u", "colour": 1}),
        ),
        (
            "PATCH",
            format!("/rhc_connections/{rhc_id}"),
            json!({"extra": {}, "availability_status": "available", "colour": 1}),
        ),
        (
            "POST",
            "/bulk_create".into(),
            json!({"sources": [{"name": "x", "source_type_name": "amazon", "colour": 1}]}),
        ),
        (
            "POST",
            "/bulk_create".into(),
            json!({"sources": [{"name": "x", "source_type_name": "amazon"}],
            "endpoints": [{"source_name": "x", "host": "d.example.com", "colour": 1}]}),
        ),
    ];
    for (method, path, body) in &writes {
        let reply = match *method {
            "POST" => app.post(path, As::Org("1"), body).await,
            _ => app.patch(path, As::Org("1"), body).await,
        };
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}"
        );
        assert_eq!(reply.error(), unknown("colour"), "{method} {path} {body}");
    }
    let bulk_items = [
        json!({"sources": [{"name": "x", "source_type_name": "amazon"}],
            "applications": [{"source_name": "x", "application_type_name": "cost-management", "colour": 1}]}),
        json!({"sources": [{"name": "x", "source_type_name": "amazon"}],
            "authentications": [{"resource_type": "source", "resource_name": "x", "authtype": "t", "colour": 1}]}),
    ];
    for body in &bulk_items {
        let reply = app.post("/bulk_create", As::Org("1"), body).await;
        assert_eq!(reply.error(), unknown("colour"), "{body}");
    }
    assert_eq!(
        app.outbox().await.len(),
        before,
        "no event from a refused write"
    );
    assert_eq!(app.count("sources").await, 1);
    assert_eq!(app.count("endpoints").await, 1);
    assert_eq!(app.count("authentications").await, 1);
    assert_eq!(app.count("secrets").await, 1);
    let kept = app.get(&format!("/endpoints/{eid}"), As::Org("1")).await;
    assert_eq!(kept.body["host"], "api.example.com");
}

#[tokio::test]
async fn each_field_group_keeps_its_own_checks() {
    let app = TestApp::spawn().await;
    let Resources {
        application: app_id,
        endpoint: eid,
        ..
    } = resources(&app).await;

    // The settings are checked before the status fields, whichever group a field is in.
    let reply = app
        .patch(
            &format!("/endpoints/{eid}"),
            As::Org("1"),
            &json!({"port": 70000, "last_checked_at": "yesterday"}),
        )
        .await;
    assert_eq!(reply.error(), "bad request: invalid port number");
    let reply = app
        .patch(
            &format!("/endpoints/{eid}"),
            As::Org("1"),
            &json!({"role": "r", "availability_status": "in_progress"}),
        )
        .await;
    assert_eq!(
        reply.error(),
        "bad request: invalid availability status",
        "endpoints take two statuses"
    );
    let reply = app
        .patch(
            &format!("/applications/{app_id}"),
            As::Org("1"),
            &json!({"last_available_at": "soon"}),
        )
        .await;
    assert_eq!(
        reply.error(),
        "bad request: the provided date is in an invalid format. Expected format: \"2006-01-02 15:04:05 MST\""
    );
    // A flattened field of the wrong type is a 400 naming the type, not a 500.
    let reply = app
        .patch(
            &format!("/endpoints/{eid}"),
            As::Org("1"),
            &json!({"port": "eighty"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        reply.error().contains("invalid type: string \"eighty\""),
        "{}",
        reply.error()
    );
    let kept = app.get(&format!("/endpoints/{eid}"), As::Org("1")).await;
    assert_eq!(kept.body["port"], 443, "nothing changed");
    assert!(kept.body.get("role").is_none());
}

/// Every field is capped at write, the field named in the message, so no change can make an
/// event too large to publish (one such event once held back every tenant's): nothing of a
/// refused write is stored or announced.
#[tokio::test]
async fn oversized_fields_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let Resources {
        source: sid,
        application: app_id,
        endpoint: eid,
        authentication: aid,
    } = resources(&app).await;
    let type_id = app.source_type_id("amazon").await;
    let cost = app.application_type_id(COST).await;
    let before = (app.outbox().await.len(), app.count("sources").await);

    let huge = "x".repeat(1_100_000);
    let text = |n: usize| "y".repeat(n);
    let create = |field: &str, n: usize| {
        format!(
            "bad request: Validation failed: the provided {field} is longer than {n} characters"
        )
    };
    let edit = |field: &str, n: usize| {
        format!("bad request: the provided {field} is longer than {n} characters")
    };
    let cases: Vec<(&str, String, Value, String)> = vec![
        (
            "POST",
            "/sources".into(),
            json!({"name": "big", "source_type_id": type_id, "source_ref": huge}),
            create("source_ref", 255),
        ),
        (
            "PATCH",
            format!("/sources/{sid}"),
            json!({"source_ref": huge}),
            edit("source_ref", 255),
        ),
        (
            "PATCH",
            format!("/sources/{sid}"),
            json!({"name": text(256)}),
            edit("name", 255),
        ),
        (
            "POST",
            "/applications".into(),
            json!({"source_id": sid, "application_type_id": cost, "extra": {"pad": huge}}),
            "bad request: Validation failed: the provided extra is larger than 65536 bytes".into(),
        ),
        (
            "PATCH",
            format!("/applications/{app_id}"),
            json!({"availability_status_error": text(4097)}),
            edit("availability_status_error", 4096),
        ),
        (
            "POST",
            "/authentications".into(),
            json!({"resource_type": "Source", "resource_id": sid, "authtype": "t", "password": text(16385)}),
            edit("password", 16384),
        ),
        (
            "PATCH",
            format!("/authentications/{aid}"),
            json!({"username": text(2049)}),
            edit("username", 2048),
        ),
        (
            "POST",
            "/endpoints".into(),
            json!({"source_id": sid, "role": "r", "certificate_authority": text(65537)}),
            create("certificate_authority", 65536),
        ),
        (
            "PATCH",
            format!("/endpoints/{eid}"),
            json!({"path": text(2049)}),
            edit("path", 2048),
        ),
        (
            "POST",
            "/rhc_connections".into(),
            json!({"rhc_id": text(256), "source_id": sid}),
            create("rhc_id", 255),
        ),
        (
            "POST",
            "/secrets".into(),
            json!({"name": text(256)}),
            create("name", 255),
        ),
        (
            "POST",
            "/bulk_create".into(),
            json!({"sources": [{"name": text(256), "source_type_name": "amazon"}]}),
            create("name", 255),
        ),
    ];
    for (method, path, body, want) in &cases {
        let reply = match *method {
            "POST" => app.post(path, As::Org("1"), body).await,
            _ => app.patch(path, As::Org("1"), body).await,
        };
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}");
        assert_eq!(&reply.error(), want, "{method} {path}");
    }
    assert_eq!(
        (app.outbox().await.len(), app.count("sources").await),
        before
    );
    let kept = app.get(&format!("/sources/{sid}"), As::Org("1")).await;
    assert!(kept.body.get("source_ref").is_none());
    // At the caps, a write still goes through.
    let at_cap = app
        .patch(
            &format!("/sources/{sid}"),
            As::Org("1"),
            &json!({"source_ref": text(255)}),
        )
        .await;
    assert_eq!(at_cap.status, StatusCode::OK, "{}", at_cap.body);
}

/// A NUL character anywhere in a body (PostgreSQL text and jsonb cannot hold one) is a 400,
/// not a 500, and writes nothing.
#[tokio::test]
async fn nul_characters_are_refused_with_a_400() {
    let app = TestApp::spawn().await;
    let Resources { source: sid, .. } = resources(&app).await;
    let type_id = app.source_type_id("amazon").await;
    let before = app.outbox().await.len();
    let bodies = [
        (
            "/sources",
            json!({"name": "a\u{0}b", "source_type_id": type_id}),
        ),
        (
            "/authentications",
            json!({"resource_type": "Source", "resource_id": sid, "authtype": "t", "extra": {"k\u{0}": 1}}),
        ),
        (
            "/secrets",
            json!({"name": "s", "extra": {"list": ["x\u{0}"]}}),
        ),
    ];
    for (path, body) in &bodies {
        let reply = app.post(path, As::Org("1"), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            reply.error(),
            "bad request: json: strings cannot contain NUL characters"
        );
    }
    let edit = app
        .patch(
            &format!("/sources/{sid}"),
            As::Org("1"),
            &json!({"source_ref": "\u{0}"}),
        )
        .await;
    assert_eq!(edit.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.outbox().await.len(), before);
    assert_eq!(app.count("secrets").await, 0);
}

/// Numbers at the edge of f64 (found by schemathesis) are stored and read back as sent: the
/// jsonb column prints them as 309-digit integers, which an imprecise float parser overflowed
/// into a 500 on the answer of the create.
#[tokio::test]
async fn the_largest_numbers_in_extra_read_back() {
    let app = TestApp::spawn().await;
    let Resources { source: sid, .. } = resources(&app).await;
    let extra = json!({"max": f64::MAX, "min": f64::MIN, "tiny": f64::MIN_POSITIVE});
    let created = app
        .post(
            "/authentications",
            As::Org("1"),
            &json!({"resource_type": "Source", "resource_id": sid, "authtype": "t", "extra": extra}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("a string id").to_owned();
    let read = app
        .get(&format!("/authentications/{id}"), As::Org("1"))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["extra"], extra);
}
