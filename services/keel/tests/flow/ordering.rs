//! Order tolerance: whatever order the events of a source arrive in, and however often, the
//! listener ends with what sources-api holds. Reorderings and duplicates are made by rewriting
//! the outbox (the embedded log) before the listener starts reading it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::stack::{Options, Stack, aws};

const COST: &str = "/insights/platform/cost-management";

async fn id_of(stack: &Stack, path: &str) -> String {
    let reply = stack
        .get(format!("{}/api/sources/v3.1{path}", stack.sources), "1")
        .await;
    reply["data"][0]["id"].as_str().unwrap().to_owned()
}

/// Rewrites the org's event-stream rows of the outbox: rows whose event type is in `first`
/// move to the front (in `first`'s order), the others follow in their original order.
async fn reorder(stack: &Stack, org: &str, first: &[&str]) {
    let rows = take_rows(stack, org).await;
    let mut ordered = Vec::new();
    for event_type in first {
        ordered.extend(rows.iter().filter(|r| r.1 == *event_type).cloned());
    }
    ordered.extend(
        rows.iter()
            .filter(|r| !first.contains(&r.1.as_str()))
            .cloned(),
    );
    append_rows(stack, &ordered).await;
}

type Row = (String, String, String, Value, Value);

/// Removes and returns the org's event-stream rows, oldest first.
async fn take_rows(stack: &Stack, org: &str) -> Vec<Row> {
    let mut rows: Vec<(i64, String, String, String, Value, Value)> = sqlx::query_as(
        "DELETE FROM outbox WHERE key = $1 AND topic = 'platform.sources.event-stream' \
         RETURNING id, topic, event_type, key, headers, payload::jsonb",
    )
    .bind(org)
    .fetch_all(&stack.db)
    .await
    .unwrap();
    rows.sort_by_key(|r| r.0);
    rows.into_iter()
        .map(|(_, topic, event_type, key, headers, payload)| {
            (topic, event_type, key, headers, payload)
        })
        .collect()
}

/// Appends rows to the outbox in order, in one transaction.
async fn append_rows(stack: &Stack, rows: &[Row]) {
    let mut tx = stack.db.begin().await.unwrap();
    for (topic, event_type, key, headers, payload) in rows {
        sqlx::query(
            "INSERT INTO outbox (topic, event_type, key, headers, payload) VALUES ($1, $2, $3, $4, $5::json)",
        )
        .bind(topic)
        .bind(event_type)
        .bind(key)
        .bind(headers)
        .bind(payload.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn event_types(stack: &Stack, org: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE key = $1 AND topic = 'platform.sources.event-stream' ORDER BY id",
    )
    .bind(org)
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

fn stopped() -> Options {
    Options {
        listener: false,
        ..Options::default()
    }
}

#[tokio::test]
async fn an_authentication_created_before_the_application_is_not_lost() {
    let stack = Stack::start().await;
    let org = "7001";
    let amazon = id_of(&stack, "/source_types?filter[name]=amazon").await;
    let cost = id_of(&stack, &format!("/application_types?filter[name]={COST}")).await;
    let source = stack
        .write(
            Method::POST,
            "/sources",
            org,
            Some(json!({"name": "Auth first", "source_type_id": amazon})),
            201,
        )
        .await;
    let source_id = source["id"].as_str().unwrap().to_owned();
    // The role arrives on the source before any cost-management application exists.
    stack
        .write(
            Method::POST,
            "/authentications",
            org,
            Some(
                json!({"resource_type": "Source", "resource_id": source_id, "authtype": "arn",
                        "username": "arn:aws:iam::111111111111:role/Early"}),
            ),
            201,
        )
        .await;
    stack.wait_idle().await;
    let app = stack
        .write(
            Method::POST,
            "/applications",
            org,
            Some(json!({"source_id": source_id, "application_type_id": cost,
                        "extra": {"bucket": "late-bucket"}})),
            201,
        )
        .await;
    let source_id: i64 = source_id.parse().unwrap();
    stack.wait_state(source_id, "linked").await;
    let arn: Value = sqlx::query_scalar(
        "SELECT a.credentials -> 'role_arn' FROM api_provider p \
         JOIN api_providerauthentication a ON a.id = p.authentication_id",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(arn, json!("arn:aws:iam::111111111111:role/Early"));
    stack
        .wait_availability(app["id"].as_str().unwrap(), org, "available")
        .await;
    stack.stop().await;
}

#[tokio::test]
async fn a_destroy_read_before_the_create_leaves_nothing_behind() {
    let mut stack = Stack::start_with(stopped()).await;
    let org = "7002";
    let created = stack
        .bulk_create(org, aws("Gone", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    stack
        .write(
            Method::DELETE,
            &format!("/applications/{}", created.app_id()),
            org,
            None,
            204,
        )
        .await;
    reorder(&stack, org, &["Application.destroy"]).await;
    let order = event_types(&stack, org).await;
    let destroy = order.iter().position(|t| t == "Application.destroy");
    let create = order.iter().position(|t| t == "Application.create");
    assert!(destroy < create, "the destroy comes first: {order:?}");

    stack.start_listener().await;
    stack.wait_idle().await;
    assert_eq!(stack.state(created.source_id()).await, None);
    for table in ["api_provider", "api_sources", "operations", "api_customer"] {
        assert_eq!(
            stack.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_new_application_read_before_the_old_ones_destroy_is_kept() {
    let mut stack = Stack::start_with(stopped()).await;
    let org = "7003";
    let created = stack
        .bulk_create(org, aws("Again", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let source_id = created.source_id();
    stack
        .write(
            Method::DELETE,
            &format!("/applications/{}", created.app_id()),
            org,
            None,
            204,
        )
        .await;
    let cost = id_of(&stack, &format!("/application_types?filter[name]={COST}")).await;
    let second = stack
        .write(
            Method::POST,
            "/applications",
            org,
            Some(
                json!({"source_id": source_id.to_string(), "application_type_id": cost,
                        "extra": {"bucket": "second-bucket"}}),
            ),
            201,
        )
        .await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    // The role went with the first application; give the source one of its own.
    stack
        .write(
            Method::POST,
            "/authentications",
            org,
            Some(
                json!({"resource_type": "Source", "resource_id": source_id.to_string(),
                        "authtype": "arn", "username": "arn:aws:iam::111111111111:role/Cost"}),
            ),
            201,
        )
        .await;
    // Read as: the second create, then the first create, then the first's destroy.
    let rows = take_rows(&stack, org).await;
    let creates: Vec<Row> = rows
        .iter()
        .filter(|r| r.1 == "Application.create")
        .cloned()
        .collect();
    assert_eq!(creates.len(), 2);
    let mut ordered = vec![creates[1].clone(), creates[0].clone()];
    ordered.extend(rows.into_iter().filter(|r| r.1 != "Application.create"));
    append_rows(&stack, &ordered).await;

    stack.start_listener().await;
    stack.wait_state(source_id, "linked").await;
    stack.wait_idle().await;
    let (application_id, bucket): (i64, Value) = sqlx::query_as(
        "SELECT s.application_id, b.data_source -> 'bucket' FROM api_sources s \
         JOIN api_provider p ON p.uuid = s.provider_id \
         JOIN api_providerbillingsource b ON b.id = p.billing_source_id",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(application_id.to_string(), second_id);
    assert_eq!(bucket, json!("second-bucket"));
    stack.wait_availability(&second_id, org, "available").await;
    stack.stop().await;
}

#[tokio::test]
async fn duplicate_messages_change_nothing_and_report_nothing_again() {
    let stack = Stack::start().await;
    let org = "7004";
    let created = stack
        .bulk_create(org, aws("Twice", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    stack.wait_state(created.source_id(), "linked").await;
    stack.wait_idle().await;
    assert_eq!(stack.status_reports(&created.app_id()).await, 1);
    let snapshot = || async {
        sqlx::query_as::<_, (String, String, i64, i64, bool, bool)>(
            "SELECT uuid::text, created_timestamp::text, authentication_id, billing_source_id, active, paused \
             FROM api_provider",
        )
        .fetch_all(&stack.db)
        .await
        .unwrap()
    };
    let before = snapshot().await;
    assert_eq!(before.len(), 1);

    // Every message of the org again, twice.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT topic, event_type, key, headers, payload::jsonb FROM outbox \
         WHERE key = $1 AND topic = 'platform.sources.event-stream' ORDER BY id",
    )
    .bind(org)
    .fetch_all(&stack.db)
    .await
    .unwrap();
    assert!(rows.iter().any(|r| r.1 == "Application.create"), "{rows:?}");
    append_rows(&stack, &[rows.clone(), rows].concat()).await;
    let copied = stack.count("SELECT max(id) FROM outbox").await;
    stack.wait_idle().await;

    assert_eq!(snapshot().await, before, "the provider is untouched");
    assert_eq!(
        stack.status_reports_after(&created.app_id(), copied).await,
        0,
        "the unchanged status is not sent again"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM org7004.reporting_tenant_api_provider")
            .await,
        1
    );
    assert_eq!(
        stack
            .state(created.source_id())
            .await
            .map(|s| s.0)
            .as_deref(),
        Some("linked")
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_pause_read_before_the_provider_exists_is_kept() {
    let mut stack = Stack::start_with(stopped()).await;
    let org = "7005";
    let created = stack
        .bulk_create(
            org,
            aws("Paused early", "arn:aws:iam::111111111111:role/Cost"),
        )
        .await;
    let app_id = created.app_id();
    stack.set_paused(&app_id, org, true).await;
    reorder(&stack, org, &["Application.pause"]).await;

    stack.start_listener().await;
    stack.wait_state(created.source_id(), "linked").await;
    let paused: (bool, bool) = sqlx::query_as(
        "SELECT p.paused, s.paused FROM api_provider p JOIN api_sources s ON s.provider_id = p.uuid",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(paused, (true, true), "provider and sync row are paused");
    // And the pause is a real one: unpausing reaches the provider.
    stack.set_paused(&app_id, org, false).await;
    stack
        .wait_for("the unpause", || async {
            stack
                .count("SELECT count(*) FROM api_provider WHERE NOT paused")
                .await
                == 1
        })
        .await;
    stack.stop().await;
}
