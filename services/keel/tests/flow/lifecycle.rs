//! A linked source's changes in sources-api become provider updates; destroying its
//! application removes the provider, its tenant row and the sync row.

use reqwest::Method;
use serde_json::{Value, json};

use crate::stack::{Options, Stack, aws};

/// (name, paused, active, credentials' role ARN, data source) of the org's only provider.
async fn provider(stack: &Stack) -> Option<(String, bool, bool, Value, Value)> {
    sqlx::query_as(
        "SELECT p.name, p.paused, p.active, a.credentials -> 'role_arn', b.data_source \
         FROM api_provider p JOIN api_providerauthentication a ON a.id = p.authentication_id \
         JOIN api_providerbillingsource b ON b.id = p.billing_source_id",
    )
    .fetch_optional(&stack.db)
    .await
    .unwrap()
}

async fn wait_provider<F>(stack: &Stack, what: &str, check: F)
where
    F: Fn(&(String, bool, bool, Value, Value)) -> bool,
{
    stack
        .wait_for(what, || async {
            provider(stack).await.is_some_and(|p| check(&p))
        })
        .await;
}

#[tokio::test]
async fn rename_pause_unpause_settings_changes_and_delete_flow_through() {
    let stack = Stack::start().await;
    let org = "6100";
    let created = stack
        .bulk_create(org, aws("Before", "arn:aws:iam::111111111111:role/One"))
        .await;
    let (source_id, app_id, auth_id) = (created.source_id(), created.app_id(), created.auth_id());
    stack.wait_state(source_id, "linked").await;
    let uuid = created.uid();
    let tenant_name = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT name FROM org6100.reporting_tenant_api_provider WHERE provider_id = $1::uuid",
        )
        .bind(&uuid)
        .fetch_optional(&stack.db)
        .await
        .unwrap()
    };

    // Rename: the provider and the tenant's row follow.
    stack
        .write(
            Method::PATCH,
            &format!("/sources/{source_id}"),
            org,
            Some(json!({"name": "After"})),
            200,
        )
        .await;
    wait_provider(&stack, "the rename", |p| p.0 == "After").await;
    assert_eq!(tenant_name().await.as_deref(), Some("After"));

    // Pause and unpause.
    stack.set_paused(&app_id, org, true).await;
    wait_provider(&stack, "the pause", |p| p.1).await;
    stack.set_paused(&app_id, org, false).await;
    wait_provider(&stack, "the unpause", |p| !p.1).await;

    // A new bucket and a new role: the provider points at the new settings.
    stack
        .write(
            Method::PATCH,
            &format!("/applications/{app_id}"),
            org,
            Some(json!({"extra": {"bucket": "new-bucket"}})),
            200,
        )
        .await;
    wait_provider(&stack, "the new bucket", |p| {
        p.4 == json!({"bucket": "new-bucket"})
    })
    .await;
    stack
        .write(
            Method::PATCH,
            &format!("/authentications/{auth_id}"),
            org,
            Some(json!({"username": "arn:aws:iam::222222222222:role/Two"})),
            200,
        )
        .await;
    wait_provider(&stack, "the new role", |p| {
        p.3 == json!("arn:aws:iam::222222222222:role/Two")
    })
    .await;
    // The first settings' rows were shared by nobody else: they are removed, after the
    // provider's transaction commits (so the provider may show the new role first).
    stack
        .wait_for("the old settings rows removed", || async {
            stack
                .count("SELECT count(*) FROM api_providerauthentication")
                .await
                == 1
                && stack
                    .count("SELECT count(*) FROM api_providerbillingsource")
                    .await
                    == 1
        })
        .await;

    // An invalid change deactivates the provider and is reported; fixing it reactivates.
    stack
        .write(
            Method::PATCH,
            &format!("/authentications/{auth_id}"),
            org,
            Some(json!({"username": "arn:broken"})),
            200,
        )
        .await;
    stack.wait_state(source_id, "failed").await;
    wait_provider(&stack, "the deactivation", |p| !p.2).await;
    stack.wait_availability(&app_id, org, "unavailable").await;
    stack
        .write(
            Method::PATCH,
            &format!("/authentications/{auth_id}"),
            org,
            Some(json!({"username": "arn:aws:iam::333333333333:role/Three"})),
            200,
        )
        .await;
    wait_provider(&stack, "the reactivation", |p| {
        p.2 && p.3 == json!("arn:aws:iam::333333333333:role/Three")
    })
    .await;
    stack.wait_state(source_id, "linked").await;
    stack.wait_availability(&app_id, org, "available").await;

    // Destroying the application removes the provider, the tenant row and the sync row.
    stack
        .write(
            Method::DELETE,
            &format!("/applications/{app_id}"),
            org,
            None,
            204,
        )
        .await;
    stack
        .wait_for("the delete", || async {
            stack.state(source_id).await.is_none()
        })
        .await;
    assert_eq!(provider(&stack).await, None);
    assert_eq!(tenant_name().await, None);
    for table in ["api_provider", "operations"] {
        assert_eq!(
            stack.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} is empty"
        );
    }
    // The settings rows go after the delete commits.
    for table in ["api_providerauthentication", "api_providerbillingsource"] {
        stack
            .wait_for(&format!("{table} emptied"), || async {
                stack.count(&format!("SELECT count(*) FROM {table}")).await == 0
            })
            .await;
    }
    // The customer and its tenant schema stay, as in Koku.
    assert_eq!(stack.count("SELECT count(*) FROM api_customer").await, 1);
    let sources = stack.read_api("/sources/", org).await;
    assert_eq!(sources["meta"]["count"], 0);
    stack.stop().await;
}

/// Deletes the linked source named `name` of `org`, with `before` run once it is linked;
/// then neither a provider nor the tenant's row of it is left.
async fn delete_linked_source<F, Fut>(org: &str, name: &str, before: F)
where
    F: FnOnce(Stack, i64) -> Fut,
    Fut: Future<Output = Stack>,
{
    let stack = Stack::start().await;
    let created = stack
        .bulk_create(org, aws(name, "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let source_id = created.source_id();
    stack.wait_state(source_id, "linked").await;
    let stack = before(stack, source_id).await;
    let (status, _) = stack
        .call(Method::DELETE, &format!("/sources/{source_id}"), org, None)
        .await;
    assert!(status.is_success(), "{status}");
    stack
        .wait_for("the delete", || async {
            stack.state(source_id).await.is_none()
        })
        .await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    let tenant_rows = format!("SELECT count(*) FROM org{org}.reporting_tenant_api_provider");
    assert_eq!(stack.count(&tenant_rows).await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn deleting_the_whole_source_removes_its_provider() {
    delete_linked_source("6101", "Whole", |stack, _| async { stack }).await;
}

/// A listener killed between the provider's commit and the link leaves a sync row without
/// `koku_uuid` (chaos found one): the deletion still finds the provider by the source's uid.
#[tokio::test]
async fn a_provider_whose_link_was_lost_is_still_deleted_with_its_source() {
    delete_linked_source("6103", "Unlinked", |stack, source_id| async move {
        assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 1);
        sqlx::query(
            "UPDATE api_sources SET koku_uuid = NULL, provider_id = NULL WHERE source_id = $1",
        )
        .bind(source_id)
        .execute(&stack.db)
        .await
        .unwrap();
        stack
    })
    .await;
}

#[tokio::test]
async fn application_only_changes_reread_only_the_application() {
    let stack = Stack::start_with(Options {
        proxy: true,
        ..Options::default()
    })
    .await;
    let proxy = stack.proxy.as_ref().unwrap();
    let org = "6102";
    let created = stack
        .bulk_create(org, aws("Narrow", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let (source_id, app_id) = (created.source_id(), created.app_id());
    stack.wait_state(source_id, "linked").await;
    stack.wait_idle().await;

    let mark = proxy.forwarded_count();
    stack.set_paused(&app_id, org, true).await;
    wait_provider(&stack, "the pause", |p| p.1).await;
    stack.wait_idle().await;
    let calls = proxy.forwarded_since(mark);
    assert!(
        calls.iter().any(|c| c.contains("/applications?")),
        "the application was read: {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(&format!("/sources/{source_id}")) || c.contains("/authentications")),
        "neither the source nor its authentication was read again: {calls:?}"
    );

    // A change of the source itself reads everything again.
    let mark = proxy.forwarded_count();
    stack
        .write(
            Method::PATCH,
            &format!("/sources/{source_id}"),
            org,
            Some(json!({"name": "Narrow renamed"})),
            200,
        )
        .await;
    wait_provider(&stack, "the rename", |p| p.0 == "Narrow renamed").await;
    let calls = proxy.forwarded_since(mark);
    assert!(
        calls
            .iter()
            .any(|c| c.contains(&format!("/sources/{source_id}")))
            && calls.iter().any(|c| c.contains("/authentications")),
        "{calls:?}"
    );
    stack.stop().await;
}

/// `listener_events_total` for an event type and outcome.
fn events(metrics: &str, event_type: &str, outcome: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("listener_events_total")
                && l.contains(&format!("event_type=\"{event_type}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// sources-api announces the listener's own status report as `Application.update`; it, and
/// any application change that leaves the provider's settings as they are, is recorded as
/// changing nothing: no operation, no read of sources-api. A real change still runs one.
#[tokio::test]
async fn application_events_that_change_nothing_queue_nothing() {
    let stack = Stack::start_with(Options {
        proxy: true,
        ..Options::default()
    })
    .await;
    let proxy = stack.proxy.as_ref().unwrap();
    let org = "6103";
    let created = stack
        .bulk_create(org, aws("Quiet", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let (source_id, app_id) = (created.source_id(), created.app_id());
    stack.wait_state(source_id, "linked").await;
    stack.wait_idle().await;
    assert_eq!(stack.status_reports(&app_id).await, 1, "one status report");
    let metrics = stack.metrics().await;
    assert_eq!(
        events(&metrics, "Application.update", "unchanged"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        events(&metrics, "Application.update", "queued"),
        0.0,
        "{metrics}"
    );

    // A key that is not a setting: nothing is read again.
    let mark = proxy.forwarded_count();
    stack
        .write(
            Method::PATCH,
            &format!("/applications/{app_id}"),
            org,
            Some(json!({"extra": {"bucket": "cost-bucket", "bucket_region": "eu-west-1", "note": "x"}})),
            200,
        )
        .await;
    stack
        .wait_for("the edit recorded as unchanged", || async {
            events(&stack.metrics().await, "Application.update", "unchanged") == 2.0
        })
        .await;
    stack.wait_idle().await;
    assert_eq!(proxy.forwarded_since(mark), Vec::<String>::new());

    // Another region is a change: the provider follows.
    stack
        .write(
            Method::PATCH,
            &format!("/applications/{app_id}"),
            org,
            Some(json!({"extra": {"bucket": "cost-bucket", "bucket_region": "us-east-1"}})),
            200,
        )
        .await;
    wait_provider(&stack, "the new region", |p| {
        p.4["bucket_region"] == json!("us-east-1")
    })
    .await;
    stack.wait_idle().await;
    let metrics = stack.metrics().await;
    assert_eq!(
        events(&metrics, "Application.update", "queued"),
        1.0,
        "{metrics}"
    );
    stack.stop().await;
}

/// What Koku's tables cannot hold is the source's problem, reported to sources-api at once:
/// an account number another org's customer already has, a name over 256 characters (a
/// sources-api-go could send one). Nothing is retried into a database error.
#[tokio::test]
async fn what_the_provider_tables_cannot_hold_is_reported_not_retried() {
    let stack = Stack::start_with(Options::default()).await;
    let with_account = |org: &'static str, name: &str| {
        let body = aws(name, "arn:aws:iam::123456789012:role/Cost");
        stack.bulk_create_with_account(org, "acct-shared", body)
    };
    let first = with_account("9301", "First").await;
    stack.wait_state(first.source_id(), "linked").await;
    let second = with_account("9302", "Second").await;
    stack.wait_state(second.source_id(), "failed").await;
    let error = stack
        .wait_availability(&second.app_id(), "9302", "unavailable")
        .await;
    assert_eq!(
        error,
        "This account number already belongs to another organization in cost management."
    );
    let database_errors: i64 = stack
        .count("SELECT count(*) FROM operations WHERE parked_at IS NOT NULL OR last_error LIKE 'database%'")
        .await;
    assert_eq!(
        database_errors, 0,
        "nothing parked, no database error retried"
    );
    stack.stop().await;
}

/// A provider the listener creates is announced on the channel the ingestion service listens
/// on, by its uuid, once it has committed.
#[tokio::test]
async fn a_new_provider_is_announced_once_committed() {
    let stack = Stack::start().await;
    let mut announcements = sqlx::postgres::PgListener::connect_with(&stack.db)
        .await
        .unwrap();
    announcements
        .listen(keel_domain::PROVIDER_CREATED_CHANNEL)
        .await
        .unwrap();
    let created = stack
        .bulk_create(
            "6150",
            aws("Announced", "arn:aws:iam::222222222222:role/Two"),
        )
        .await;
    let announced = tokio::time::timeout(std::time::Duration::from_secs(60), announcements.recv())
        .await
        .expect("the provider is announced within a minute")
        .unwrap();
    assert_eq!(announced.payload(), created.uid());
    let committed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_provider WHERE uuid = $1::uuid)")
            .bind(created.uid())
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert!(committed, "the provider is visible when it is announced");
}
