//! Many providers built at once, across new tenants and existing ones, OpenShift sources
//! (which all share one billing source) beside AWS ones: PostgreSQL reports no deadlock and no
//! operation has to run twice.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::stack::{Options, Stack};

/// Orgs whose tenants exist before the burst, and orgs the burst creates.
const EXISTING: usize = 4;
const NEW: usize = 8;
/// Sources of the burst, created by as many clients as the listener has workers.
const SOURCES: usize = 96;
const CLIENTS: usize = 16;

fn org(n: usize) -> String {
    format!("7100{n:02}")
}

fn source(n: usize) -> Value {
    let name = format!("Contended {n}");
    if n.is_multiple_of(2) {
        json!({
            "sources": [{"name": name, "source_type_name": "openshift", "source_ref": format!("cluster-{n}")}],
            "applications": [{"application_type_name": "cost-management", "source_name": name}]
        })
    } else {
        json!({
            "sources": [{"name": name, "source_type_name": "amazon"}],
            "applications": [{"application_type_name": "cost-management", "source_name": name,
                              "extra": {"bucket": format!("bucket-{n}"), "bucket_region": "eu-west-1"}}],
            "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                 "authtype": "arn", "username": format!("arn:aws:iam::{n:012}:role/Cost"),
                                 "extra": {"external_id": format!("ext-{n}")}}]
        })
    }
}

/// `provider_operations_total` samples whose result is `result`, summed.
fn operations(metrics: &str, result: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("provider_operations_total")
                && l.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_across_new_and_existing_tenants_never_deadlock() {
    let stack = Stack::start_with(Options {
        tune: |c| {
            c.workers = CLIENTS;
            c.common.database_max_connections = 24;
        },
        ..Options::default()
    })
    .await;
    for n in 0..EXISTING {
        let created = stack.bulk_create(&org(n), source(1000 + 2 * n)).await;
        stack.wait_state(created.source_id(), "linked").await;
    }

    let stack = Arc::new(stack);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let stack = stack.clone();
        clients.spawn(async move {
            let mut made = Vec::new();
            for n in (client..SOURCES).step_by(CLIENTS) {
                let org = org(n % (EXISTING + NEW));
                let created = stack.bulk_create(&org, source(n)).await;
                made.push((org, created.source_id(), created.uid()));
            }
            made
        });
    }
    let mut made = Vec::new();
    while let Some(done) = clients.join_next().await {
        made.extend(done.unwrap());
    }
    assert_eq!(made.len(), SOURCES);
    let total = (SOURCES + EXISTING) as i64;
    stack
        .wait_for("every source linked", || async {
            stack
                .count("SELECT count(*) FROM api_sources WHERE state = 'linked'")
                .await
                == total
        })
        .await;
    stack.wait_idle().await;
    let metrics = stack.metrics().await;
    let mut stack = Arc::into_inner(stack).expect("the clients are done");
    stack.halt().await;

    // Every session of the services has ended, so their counts are in the statistics.
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0, "PostgreSQL detected deadlocks");
    // A deadlock, a serialization failure or any other error makes an operation run again.
    assert_eq!(operations(&metrics, "retry"), 0.0, "{metrics}");
    assert_eq!(operations(&metrics, "created"), total as f64, "{metrics}");

    // Each provider is in its own org's tenant schema.
    for (org, source_id, uid) in made {
        let tenant: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t.uuid::text FROM org{org}.reporting_tenant_api_provider t \
             JOIN api_sources s ON s.koku_uuid = t.uuid::text WHERE s.source_id = $1"
        )))
        .bind(source_id)
        .fetch_optional(&stack.db)
        .await
        .unwrap();
        assert_eq!(tenant.as_deref(), Some(uid.as_str()), "source {source_id}");
    }
    let tenants: i64 = stack.count("SELECT count(*) FROM api_tenant").await;
    assert_eq!(tenants, (EXISTING + NEW) as i64);
    stack.stop().await;
}
