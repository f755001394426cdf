//! Crashes and outages: a listener killed mid-stream and restarted loses and duplicates
//! nothing; sources-api failing makes operations retry (and park) without delaying other
//! sources; the whole flow over Kafka.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::stack::{Created, Failing, Options, Stack, aws};

/// Creates `n` AWS sources (distinct roles) in `org`, `concurrency` requests at a time.
async fn create_many(stack: &Stack, org: &str, n: usize) -> Vec<Created> {
    let mut created = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let mut batch = tokio::task::JoinSet::new();
        for &i in chunk {
            let (http, url, org) = (
                stack.http.clone(),
                format!("{}/api/sources/v3.1/bulk_create", stack.sources),
                org.to_owned(),
            );
            batch.spawn(async move {
                let body = aws(
                    &format!("Source {i:03}"),
                    &format!("arn:aws:iam::{:012}:role/Cost", 100_000 + i),
                );
                let reply = http
                    .post(url)
                    .header("x-rh-sources-org-id", org)
                    .header("x-rh-sources-psk", crate::stack::PSK)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 201);
                Created(reply.json::<Value>().await.unwrap())
            });
        }
        created.extend(batch.join_all().await);
    }
    created
}

async fn linked(stack: &Stack) -> i64 {
    stack
        .count("SELECT count(*) FROM api_sources WHERE state = 'linked'")
        .await
}

#[tokio::test]
async fn a_listener_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    const N: usize = 60;
    const WORKERS: usize = 4;
    let mut stack = Stack::start_with(Options {
        tune: |c| {
            c.workers = WORKERS;
            // A crashed worker's claim is taken over after a second.
            c.lease = Duration::from_secs(1);
        },
        ..Options::default()
    })
    .await;
    let org = "8001";
    let created = create_many(&stack, org, N).await;
    stack
        .wait_for("a few providers", || async { linked(&stack).await >= 3 })
        .await;
    stack.kill_listener().await;
    let at_kill = linked(&stack).await;
    let queued = stack.count("SELECT count(*) FROM operations").await;
    eprintln!("killed with {at_kill} of {N} linked, {queued} operations queued");

    stack.start_listener().await;
    stack
        .wait_for("every provider", || async {
            linked(&stack).await == N as i64
        })
        .await;
    stack.wait_idle().await;

    // Nothing lost: every source has its provider, with the source's uid, in the tenant.
    let mut uids: Vec<String> = created.iter().map(Created::uid).collect();
    uids.sort();
    let providers: Vec<String> =
        sqlx::query_scalar("SELECT uuid::text FROM api_provider ORDER BY uuid::text")
            .fetch_all(&stack.db)
            .await
            .unwrap();
    assert_eq!(providers, uids);
    // Nothing duplicated: one tenant row per provider, one customer, one tenant.
    assert_eq!(
        stack
            .count("SELECT count(*) FROM org8001.reporting_tenant_api_provider")
            .await,
        N as i64
    );
    assert_eq!(stack.count("SELECT count(*) FROM api_customer").await, 1);
    assert_eq!(stack.count("SELECT count(*) FROM api_tenant").await, 1);
    assert_eq!(stack.count("SELECT count(*) FROM dead_letters").await, 0);
    // Every application was told once; a report can only repeat when the crash hit between
    // sending it and recording it, which at most the operations then running could do.
    let mut reports = 0;
    for c in &created {
        let sent = stack.status_reports(&c.app_id()).await;
        assert!(sent >= 1, "application {} never told", c.app_id());
        reports += sent;
        stack.wait_availability(&c.app_id(), org, "available").await;
    }
    assert!(
        reports <= (N + WORKERS) as i64,
        "{reports} status reports for {N} applications"
    );
    stack.stop().await;
}

fn flaky() -> Options {
    Options {
        proxy: true,
        tune: |c| {
            c.max_attempts = 3;
            c.retry_base = Duration::from_millis(50);
            c.retry_max = Duration::from_millis(200);
        },
        ..Options::default()
    }
}

#[tokio::test]
async fn a_refused_source_retries_and_parks_without_delaying_others_and_a_check_revives_it() {
    let stack = Stack::start_with(flaky()).await;
    let proxy = stack.proxy.as_ref().unwrap();
    let org = "8101";
    proxy.fail(Failing::Everything);
    let bad = stack
        .bulk_create(org, aws("Unlucky", "arn:aws:iam::111111111111:role/Bad"))
        .await;
    let bad_id = bad.source_id();
    // sources-api refuses every read of this source (400): that will not heal by itself.
    proxy.fail(Failing::Refused(bad_id));
    let good = create_many(&stack, "8102", 5).await;
    for g in &good {
        stack.wait_state(g.source_id(), "linked").await;
    }

    // The failing source ran out of attempts: parked, with its reason, visible in the read API.
    stack
        .wait_for("the operation to park", || async {
            stack
                .count("SELECT count(*) FROM operations WHERE parked_at IS NOT NULL")
                .await
                == 1
        })
        .await;
    let listed = stack.read_api("/sources/", org).await;
    let source = &listed["data"][0];
    assert_eq!(source["source_id"], bad_id, "{listed}");
    assert_ne!(source["state"], "linked");
    let operation = &source["operation"];
    assert_eq!(operation["attempts"], 3, "{operation}");
    assert!(operation["parked_at"].is_string(), "{operation}");
    assert!(
        operation["last_error"].as_str().unwrap().contains("400"),
        "{operation}"
    );
    assert!(proxy.failed() >= 3);
    let metrics = stack.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("provider_operations_total") && l.contains("result=\"parked\"")),
        "{metrics}"
    );

    // sources-api is back: a parked operation waits for a trigger, and a status check is one.
    proxy.fail(Failing::Nothing);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        stack.state(bad_id).await.unwrap().0,
        "linked",
        "parked stays parked"
    );
    let checked = stack
        .http
        .post(format!(
            "{}/api/cost-management/v1/source-status/",
            stack.listener
        ))
        .header("x-rh-sources-org-id", org)
        .json(&json!({"source_id": bad_id}))
        .send()
        .await
        .unwrap();
    assert!(checked.status().is_success(), "{}", checked.status());
    stack.wait_state(bad_id, "linked").await;
    stack
        .wait_availability(&bad.app_id(), org, "available")
        .await;
    stack.stop().await;
}

#[tokio::test]
/// An outage outlasting every attempt parks nothing: 503s (like timeouts and unreachable
/// hosts) heal, so they only delay the retry; the operations finish once sources-api is back.
async fn a_sources_api_outage_delays_operations_until_it_ends_and_parks_none() {
    let stack = Stack::start_with(Options {
        proxy: true,
        tune: |c| {
            c.max_attempts = 2;
            c.retry_base = Duration::from_millis(50);
            c.retry_max = Duration::from_millis(300);
        },
        ..Options::default()
    })
    .await;
    let proxy = stack.proxy.as_ref().unwrap();
    proxy.fail(Failing::Everything);
    let created = create_many(&stack, "8201", 4).await;
    stack
        .wait_for("more failed attempts than max_attempts", || async {
            stack
                .count("SELECT count(*) FROM operations WHERE attempts >= 4 AND last_error IS NOT NULL")
                .await
                == 4
        })
        .await;
    assert_eq!(
        stack
            .count("SELECT count(*) FROM operations WHERE parked_at IS NOT NULL")
            .await,
        0,
        "an outage parks nothing"
    );
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    assert_eq!(
        stack.readiness().await,
        503,
        "not ready while sources-api is down"
    );

    proxy.fail(Failing::Nothing);
    for c in &created {
        stack.wait_state(c.source_id(), "linked").await;
    }
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 4);
    assert_eq!(stack.readiness().await, 200);
    stack.stop().await;
}

#[tokio::test]
async fn over_kafka_sources_become_providers_and_changes_flow_through() {
    let stack = Stack::start_with(Options {
        kafka: true,
        ..Options::default()
    })
    .await;
    // Other tests' databases number their sources from 1 and share the broker's topic:
    // start ours far away, so their events name sources this sources-api does not have.
    sqlx::query("SELECT setval(pg_get_serial_sequence('sources.sources', 'id'), $1)")
        .bind(1_000_000_000 + i64::from(rand_suffix()))
        .execute(&stack.db)
        .await
        .unwrap();
    let org = format!("kafka{}", rand_suffix());
    let created = stack
        .bulk_create(
            &org,
            aws("Over Kafka", "arn:aws:iam::111111111111:role/Cost"),
        )
        .await;
    let source_id = created.source_id();
    stack.wait_state(source_id, "linked").await;
    stack
        .wait_availability(&created.app_id(), &org, "available")
        .await;
    stack
        .write(
            Method::PATCH,
            &format!("/sources/{source_id}"),
            &org,
            Some(json!({"name": "Renamed over Kafka"})),
            200,
        )
        .await;
    stack
        .wait_for("the rename", || async {
            stack
                .count("SELECT count(*) FROM api_provider WHERE name = 'Renamed over Kafka'")
                .await
                == 1
        })
        .await;
    stack
        .write(
            Method::DELETE,
            &format!("/applications/{}", created.app_id()),
            &org,
            None,
            204,
        )
        .await;
    stack
        .wait_for("the delete", || async {
            stack.state(source_id).await.is_none()
        })
        .await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    stack.stop().await;
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1_000_000
}
