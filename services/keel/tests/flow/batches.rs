//! New orgs' tenants are taken from spares together: those asked for while one batch is made
//! go in the next, in one statement, and one org's problem fails only that org.

use crate::stack::{Options, Stack, aws};

/// A value of the listener's `tenant_batch_size` summary (`_count` or `_sum`).
fn batch_size(metrics: &str, part: &str) -> f64 {
    let name = format!("tenant_batch_size_{part} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.parse().ok())
        .unwrap_or(0.0)
}

async fn spares(stack: &Stack) -> i64 {
    stack.count("SELECT count(*) FROM spare_tenants").await
}

#[tokio::test]
async fn the_first_sources_of_new_orgs_asked_for_together_are_made_together() {
    let mut stack = Stack::start_with(Options {
        tune: |c| {
            c.spare_tenants = 8;
            c.workers = 16;
        },
        ..Options::default()
    })
    .await;
    stack
        .wait_for("eight spare schemas", || async {
            spares(&stack).await == 8
        })
        .await;
    // Eight new orgs' sources wait for the listener, whose workers then take them all at once.
    stack.kill_listener().await;
    let mut created = Vec::new();
    for n in 0..8 {
        let role = format!("arn:aws:iam::123456789012:role/Together{n}");
        created.push(
            stack
                .bulk_create(&format!("7260{n}"), aws(&format!("Together {n}"), &role))
                .await,
        );
    }
    stack.start_listener().await;
    for source in &created {
        stack.wait_state(source.source_id(), "linked").await;
    }
    let metrics = stack.metrics().await;
    assert_eq!(batch_size(&metrics, "sum"), 8.0, "{metrics}");
    // Made one by one, that would be eight statements; asked for together, the first
    // statement takes whoever asked first and the next all that asked meanwhile.
    let batches = batch_size(&metrics, "count");
    assert!(
        (1.0..8.0).contains(&batches),
        "{batches} batches: {metrics}"
    );
    for n in 0..8 {
        let schema = format!("org7260{n}");
        let made = stack
            .count(&format!(
                "SELECT count(*) FROM api_tenant t JOIN pg_namespace n ON n.nspname = t.schema_name \
                 WHERE t.schema_name = '{schema}'"
            ))
            .await;
        assert_eq!(made, 1, "{schema} made");
    }
    stack.stop().await;
}

type Answer = (String, Option<i64>, Option<String>, bool);

async fn make_tenants(stack: &Stack, orgs: &[&str], accounts: &[Option<&str>]) -> Vec<Answer> {
    let tenants: Vec<String> = orgs.iter().map(|o| format!("org{o}")).collect();
    sqlx::query_as(
        "SELECT org_id, customer_id, spare, account_taken FROM make_tenants($1, $2, $3) \
         ORDER BY org_id",
    )
    .bind(orgs)
    .bind(accounts)
    .bind(&tenants)
    .fetch_all(&stack.db)
    .await
    .unwrap()
}

async fn customers(stack: &Stack, org: &str) -> i64 {
    stack
        .count(&format!(
            "SELECT count(*) FROM api_customer WHERE org_id = '{org}'"
        ))
        .await
}

#[tokio::test]
async fn a_batch_fails_only_the_org_whose_account_is_taken_and_never_waits_for_another_session() {
    let stack = Stack::start_with(Options {
        tune: |c| c.spare_tenants = 4,
        ..Options::default()
    })
    .await;
    stack
        .wait_for("four spare schemas", || async { spares(&stack).await == 4 })
        .await;
    let holder = make_tenants(&stack, &["72700"], &[Some("acct-72700")]).await;
    assert!(
        matches!(&holder[..], [(_, Some(_), Some(_), false)]),
        "{holder:?}"
    );

    // Another session (a replica making org72703, perhaps cloning it) holds that org's lock.
    let mut other = stack.db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('keel.tenant'), hashtext('org72703'))")
        .execute(&mut *other)
        .await
        .unwrap();
    let answers = make_tenants(
        &stack,
        &["72701", "72702", "72703", "72704"],
        &[Some("acct-72701"), Some("acct-72700"), None, None],
    )
    .await;
    let shape: Vec<(&str, bool, bool, bool)> = answers
        .iter()
        .map(|(org, customer, spare, taken)| {
            (org.as_str(), customer.is_some(), spare.is_some(), *taken)
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("72701", true, true, false),
            ("72702", false, false, true),
            ("72704", true, true, false),
        ],
        "the taken account fails its org alone; the locked org is left out"
    );
    for (org, made) in [("72701", 1), ("72702", 0), ("72703", 0), ("72704", 1)] {
        assert_eq!(customers(&stack, org).await, made, "customer of {org}");
        let schema = stack
            .count(&format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'org{org}'"
            ))
            .await;
        assert_eq!(schema, made, "schema of {org}");
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('keel.tenant'), hashtext('org72703'))")
        .execute(&mut *other)
        .await
        .unwrap();
    stack.stop().await;
}
