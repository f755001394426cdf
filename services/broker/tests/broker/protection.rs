//! Rate limits per client address, and concurrent repeats of one request.

use broker::Config;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn a_client_over_its_quota_is_refused_with_retry_after_and_probes_are_not_limited() {
    let db = database().await;
    let mut config = Config::for_database(&db.url);
    config.rate_limit_per_minute = 5;
    let app = start(&config).await;
    let status_of = |token: Option<&'static str>| {
        let url = format!(
            "{}/v1/status?id=deploy-00000000000000000000000000000000",
            app.base
        );
        async move {
            let mut r = client().get(url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap()
        }
    };
    // Four answered, and a fifth without a token: the quota counts every request.
    for _ in 0..4 {
        assert_eq!(status_of(Some("test-token")).await.status(), 404);
    }
    assert_eq!(status_of(None).await.status(), 401);
    let refused = status_of(Some("test-token")).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request per 12 s comes back after the burst.
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["code"].as_u64()),
        (Some("rate_limited"), Some(429))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("more than 5 requests a minute from 127.0.0.1"),
        "{body}"
    );
    // Health and readiness are for probes: never limited.
    for _ in 0..10 {
        let r = client()
            .get(format!("{}/health", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn concurrent_repeats_of_one_request_make_one_deployment() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "broker", 2).await.unwrap();
    let app = start(&Config::for_database(&db.url)).await;
    let (callback, received) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "database", "resourceName": "shared", "namespace": ns,
        "team": "t", "callbackUrl": callback, "spec": {"engine": "postgresql", "size": "small"},
    });
    let calls = (0..12).map(|_| {
        call(
            reqwest::Method::POST,
            format!("{}/v1/provision", app.base),
            Some(request.clone()),
        )
    });
    let answers = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert!(*status == 202 || *status == 200, "{status} {body}");
            body["deploymentId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let id = ids.into_iter().next().unwrap();
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments WHERE namespace = $1")
        .bind(&ns)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    eventually("two callbacks", || async {
        phases_of(&received, &id).len() >= 2
    })
    .await;
    assert_eq!(phases_of(&received, &id), ["Provisioning", "Ready"]);
    forget(&db.url, &ns).await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
