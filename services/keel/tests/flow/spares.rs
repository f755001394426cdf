//! Spare tenant schemas: cloned ahead of time, renamed for a new org's first source, refilled
//! in the background, and migrated at start like tenants.

use reqwest::Method;
use serde_json::json;
use sqlx::{Postgres, pool::PoolConnection};

use crate::stack::{Options, Stack, aws};

async fn namespace(stack: &Stack, name: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT oid::bigint FROM pg_namespace WHERE nspname = $1")
        .bind(name)
        .fetch_optional(&stack.db)
        .await
        .unwrap()
}

async fn spares(stack: &Stack) -> Vec<String> {
    sqlx::query_scalar("SELECT schema_name FROM spare_tenants ORDER BY created_at")
        .fetch_all(&stack.db)
        .await
        .unwrap()
}

fn created_from(metrics: &str, from: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("tenant_schemas_created_total") && l.contains(&format!("from=\"{from}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_new_orgs_first_source_takes_a_spare_schema_and_the_pool_refills() {
    let mut stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 2,
        ..Options::default()
    })
    .await;
    stack
        .wait_for("two spare schemas", || async {
            spares(&stack).await.len() == 2
        })
        .await;
    let before = spares(&stack).await;
    let oldest = namespace(&stack, &before[0])
        .await
        .expect("the spare exists");

    let created = stack
        .bulk_create(
            "72001",
            aws("Spare", "arn:aws:iam::123456789012:role/Spare"),
        )
        .await;
    stack.wait_state(created.source_id(), "linked").await;

    // The oldest spare is now the org's schema, with the provider's tenant row in it.
    assert_eq!(namespace(&stack, "org72001").await, Some(oldest));
    assert_eq!(namespace(&stack, &before[0]).await, None);
    let tenant_row: i64 = stack
        .count("SELECT count(*) FROM org72001.reporting_tenant_api_provider")
        .await;
    assert_eq!(tenant_row, 1);
    let metrics = stack.metrics().await;
    assert_eq!(created_from(&metrics, "spare"), 1.0, "{metrics}");
    assert_eq!(created_from(&metrics, "clone"), 0.0, "{metrics}");

    // The pool is refilled with a new spare.
    stack
        .wait_for("the pool refilled", || async {
            let now = spares(&stack).await;
            now.len() == 2 && !now.contains(&before[0])
        })
        .await;

    // A restart migrates tenants and spares alike, and the next new org takes a spare too.
    stack.kill_listener().await;
    stack.start_listener().await;
    let next = spares(&stack).await[0].clone();
    let next_oid = namespace(&stack, &next).await;
    let second = stack
        .bulk_create(
            "72002",
            aws("Spare 2", "arn:aws:iam::123456789012:role/Spare2"),
        )
        .await;
    stack.wait_state(second.source_id(), "linked").await;
    assert_eq!(namespace(&stack, "org72002").await, next_oid);
    let history: i64 = stack
        .count("SELECT count(*) FROM org72002._sqlx_migrations")
        .await;
    let template: i64 = stack
        .count("SELECT count(*) FROM template0._sqlx_migrations")
        .await;
    assert_eq!(history, template, "the spare is at the template's version");
    stack.stop().await;
}

#[tokio::test]
async fn without_spares_a_new_org_is_cloned_on_demand() {
    let stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 0,
        ..Options::default()
    })
    .await;
    let created = stack
        .bulk_create(
            "72101",
            aws("Cloned", "arn:aws:iam::123456789012:role/Cloned"),
        )
        .await;
    stack.wait_state(created.source_id(), "linked").await;
    assert!(namespace(&stack, "org72101").await.is_some());
    assert!(spares(&stack).await.is_empty());
    let metrics = stack.metrics().await;
    assert_eq!(created_from(&metrics, "clone"), 1.0, "{metrics}");
    stack.stop().await;
}

/// The clone lock, taken as another replica's clone would take it.
async fn hold_the_clone_lock(stack: &Stack) -> PoolConnection<Postgres> {
    let mut other_replica = stack.db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('keel.tenant.clone'))")
        .execute(&mut *other_replica)
        .await
        .unwrap();
    other_replica
}

async fn free_the_clone_lock(other_replica: &mut PoolConnection<Postgres>) {
    sqlx::query("SELECT pg_advisory_unlock(hashtext('keel.tenant.clone'))")
        .execute(&mut **other_replica)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tenant_waiting_for_its_clone_holds_up_no_other_org() {
    let stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 0,
        ..Options::default()
    })
    .await;
    let first = stack
        .bulk_create("72201", aws("First", "arn:aws:iam::123456789012:role/One"))
        .await;
    stack.wait_state(first.source_id(), "linked").await;

    // Another replica's clone holds the turn: a new org's tenant waits for it.
    let mut other_replica = hold_the_clone_lock(&stack).await;
    let waiting = stack
        .bulk_create(
            "72202",
            aws("Waiting", "arn:aws:iam::123456789012:role/Two"),
        )
        .await;
    stack.wait_state(waiting.source_id(), "creating").await;

    // Meanwhile the events behind it are read, and an existing org's new source is linked:
    // the waiting transaction has written nothing yet, so it holds back no outbox reader.
    let later = stack
        .bulk_create(
            "72201",
            aws("Later", "arn:aws:iam::123456789012:role/Three"),
        )
        .await;
    stack.wait_state(later.source_id(), "linked").await;
    assert_eq!(
        stack
            .state(waiting.source_id())
            .await
            .map(|(state, _)| state),
        Some("creating".to_owned())
    );

    free_the_clone_lock(&mut other_replica).await;
    stack.wait_state(waiting.source_id(), "linked").await;
    assert!(namespace(&stack, "org72202").await.is_some());
    stack.stop().await;
}

/// Sessions of this database waiting for an advisory lock: here, tenant makers waiting for
/// the clone lock another replica holds.
async fn waiting_for_the_clone_lock(stack: &Stack) -> i64 {
    stack
        .count(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .await
}

#[tokio::test]
async fn a_burst_of_new_orgs_is_made_half_a_pool_at_a_time() {
    let stack = Stack::start_with(Options {
        tune: |c| {
            c.spare_tenants = 0;
            c.common.database_max_connections = 10;
            // Workers enough for every org at once: only the turns hold them back.
            c.workers = 16;
        },
        ..Options::default()
    })
    .await;
    let makers = listener::worker::tenants_at_once(10) as i64;
    assert_eq!(makers, 5);

    // Another replica's clone holds the lock: every tenant maker waits inside the database.
    let mut other_replica = hold_the_clone_lock(&stack).await;
    let mut created = Vec::new();
    for n in 0..8 {
        let org = format!("7230{n}");
        let role = format!("arn:aws:iam::123456789012:role/Burst{n}");
        created.push(
            stack
                .bulk_create(&org, aws(&format!("Burst {n}"), &role))
                .await,
        );
    }
    stack
        .wait_for("five tenant makers at the clone lock", || async {
            waiting_for_the_clone_lock(&stack).await == makers
        })
        .await;
    // The other three orgs give way (postponed, or waiting for a turn), however long it lasts.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(waiting_for_the_clone_lock(&stack).await, makers);

    free_the_clone_lock(&mut other_replica).await;
    for source in &created {
        stack.wait_state(source.source_id(), "linked").await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_sources_of_a_new_org_wait_for_the_one_operation_making_its_tenant() {
    let stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 0,
        ..Options::default()
    })
    .await;
    // Another replica's clone holds the lock: the org's tenant maker waits inside the database.
    let mut other_replica = hold_the_clone_lock(&stack).await;
    let mut created = Vec::new();
    for n in 0..4 {
        let role = format!("arn:aws:iam::123456789012:role/Same{n}");
        created.push(
            stack
                .bulk_create("72401", aws(&format!("Same org {n}"), &role))
                .await,
        );
    }
    for source in &created {
        stack.wait_state(source.source_id(), "creating").await;
    }
    stack
        .wait_for("the tenant maker at the clone lock", || async {
            waiting_for_the_clone_lock(&stack).await == 1
        })
        .await;
    // The org's other sources wait for that maker in the listener and give way, instead of
    // each waiting at the org's lock in a session of its own, however long it lasts.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(waiting_for_the_clone_lock(&stack).await, 1);

    free_the_clone_lock(&mut other_replica).await;
    for source in &created {
        stack.wait_state(source.source_id(), "linked").await;
    }
    assert_eq!(
        stack
            .count("SELECT count(*) FROM api_tenant WHERE schema_name = 'org72401'")
            .await,
        1
    );
    stack.stop().await;
}

/// Tables and foreign keys of a schema, and the migrations it records.
async fn shape(stack: &Stack, schema: &str) -> (i64, i64, i64) {
    let tables = stack
        .count(&format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"
        ))
        .await;
    let keys = stack
        .count(&format!(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = '{schema}' AND c.contype = 'f'"
        ))
        .await;
    let history = stack
        .count(&format!("SELECT count(*) FROM {schema}._sqlx_migrations"))
        .await;
    (tables, keys, history)
}

#[tokio::test]
async fn a_spare_is_cloned_a_statement_at_a_time_and_listed_once_whole() {
    // No refill of its own: the test runs one.
    let stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 0,
        ..Options::default()
    })
    .await;
    // What a crash in the middle of a clone leaves.
    sqlx::raw_sql("CREATE SCHEMA keel_spare_half; CREATE TABLE keel_spare_half.t (id int)")
        .execute(&stack.db)
        .await
        .unwrap();
    // A provider being written: its transaction holds `cost.api_provider`.
    let mut writer = stack.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE cost.api_provider IN ROW EXCLUSIVE MODE")
        .execute(&mut *writer)
        .await
        .unwrap();

    let db = stack.db.clone();
    let refill = tokio::spawn(async move { listener::store::spares::refill(&db, 1, false).await });
    // The spare's tables are committed while its keys wait for the provider write: no
    // transaction lasts the whole clone. It is not listed yet.
    let template = shape(&stack, "template0").await;
    let tables_committed = || async {
        stack
            .count(
                "SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'keel\\_spare\\_%' \
                 AND schemaname <> 'keel_spare_half'",
            )
            .await
            == template.0
    };
    stack
        .wait_for("the spare's tables committed", tables_committed)
        .await;
    assert!(spares(&stack).await.is_empty());
    assert!(
        !refill.is_finished(),
        "the keys wait for the provider write"
    );

    writer.commit().await.unwrap();
    assert_eq!(refill.await.unwrap().unwrap(), 1);
    let listed = spares(&stack).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(shape(&stack, &listed[0]).await, template);
    assert!(template.1 > 0 && template.2 > 0, "{template:?}");
    // The half-made one is gone, and no schema is named like a spare but not listed.
    assert_eq!(namespace(&stack, "keel_spare_half").await, None);
    let unlisted = stack
        .count(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'keel\\_spare\\_%' \
             AND nspname NOT IN (SELECT schema_name FROM spare_tenants)",
        )
        .await;
    assert_eq!(unlisted, 0);
    stack.stop().await;
}

/// The bucket in the billing source of the provider of `uid`.
async fn provider_bucket(stack: &Stack, uid: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT b.data_source ->> 'bucket' FROM api_provider p \
         JOIN api_providerbillingsource b ON b.id = p.billing_source_id WHERE p.uuid = $1::uuid",
    )
    .bind(uid)
    .fetch_optional(&stack.db)
    .await
    .unwrap()
    .flatten()
}

#[tokio::test]
async fn an_update_that_waits_for_its_orgs_tenant_still_reaches_the_provider() {
    let mut stack = Stack::start_with(Options {
        tune: |c| {
            c.spare_tenants = 0;
            c.common.database_max_connections = 10;
            c.workers = 16;
        },
        ..Options::default()
    })
    .await;
    let org = "72501";
    let mut linked = Vec::new();
    for n in 0..2 {
        let role = format!("arn:aws:iam::123456789012:role/Wait{n}");
        let source = stack
            .bulk_create(org, aws(&format!("Wait {n}"), &role))
            .await;
        stack.wait_state(source.source_id(), "linked").await;
        linked.push(source);
    }
    // A restarted listener knows no tenant: the org's next operations look it up again, one
    // of them while the others wait for it.
    stack.kill_listener().await;
    stack.start_listener().await;
    // Every turn to make a tenant is taken by new orgs waiting for another replica's clone
    // (advisory locks: no transaction id holds back the events that follow).
    let makers = listener::worker::tenants_at_once(10) as i64;
    let mut other_replica = hold_the_clone_lock(&stack).await;
    for n in 0..makers {
        let role = format!("arn:aws:iam::123456789012:role/Turn{n}");
        stack
            .bulk_create(&format!("7251{n}"), aws(&format!("Turn {n}"), &role))
            .await;
    }
    stack
        .wait_for("every turn taken", || async {
            waiting_for_the_clone_lock(&stack).await == makers
        })
        .await;
    // Both linked sources get a new bucket: one operation looks the org's tenant up (and
    // waits for a turn), the other waits for it, gives way and runs again.
    for (n, source) in linked.iter().enumerate() {
        let bucket =
            json!({"extra": {"bucket": format!("moved-{n}"), "bucket_region": "eu-west-1"}});
        stack
            .write(
                Method::PATCH,
                &format!("/applications/{}", source.app_id()),
                org,
                Some(bucket),
                200,
            )
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    free_the_clone_lock(&mut other_replica).await;
    for (n, source) in linked.iter().enumerate() {
        let want = format!("moved-{n}");
        stack
            .wait_for("the new bucket in the provider", || async {
                provider_bucket(&stack, &source.uid()).await.as_deref() == Some(want.as_str())
            })
            .await;
    }
    stack.stop().await;
}
