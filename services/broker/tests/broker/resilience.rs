//! What survives trouble: a receiver that fails, one that never answers (dead letters, sent
//! again on request), a broker killed with SIGKILL mid-operation, a deprovision that
//! arrives before the creation ran.

use std::sync::atomic::Ordering;

use base64::Engine as _;
use broker::{Config, drivers::Names};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_each_callback_once_in_order() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "broker", 2).await.unwrap();
    let app = start(&Config::for_database(&db.url)).await;
    let (callback, received, _) = receiver_failing(2).await;
    let ns = namespace();
    let id = provision(
        &app,
        &ns,
        "retried",
        &callback,
        json!({"engine": "postgresql"}),
    )
    .await;
    eventually("two callbacks", || async {
        phases_of(&received, &id).len() >= 2
    })
    .await;
    assert_eq!(phases_of(&received, &id), ["Provisioning", "Ready"]);
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM callbacks WHERE deployment_id = $1 ORDER BY id")
            .bind(&id)
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(attempts, [3, 1], "the first callback took the two failures");
    forget(&db.url, &ns).await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn undeliverable_callbacks_become_dead_letters_that_can_be_sent_again() {
    let db = database().await;
    let mut config = Config::for_database(&db.url);
    config.callback_attempts = 2;
    let app = start(&config).await;
    let (callback, received, failing) = receiver_failing(usize::MAX).await;
    let ns = namespace();
    let id = provision(
        &app,
        &ns,
        "unheard",
        &callback,
        json!({"engine": "postgresql"}),
    )
    .await;
    let letters = format!("{}/v1/dead-letters?namespace={ns}", app.base);
    eventually("two dead letters", || async {
        call(reqwest::Method::GET, letters.clone(), None).await.1["total"] == 2
    })
    .await;
    let listed = call(reqwest::Method::GET, letters.clone(), None).await.1;
    let dead = listed["deadLetters"].as_array().unwrap().clone();
    let phases: Vec<&str> = dead.iter().map(|d| d["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["Provisioning", "Ready"]);
    assert_eq!(dead[0]["deploymentId"], id.as_str());
    assert_eq!(dead[0]["attempts"], 2);
    assert_eq!(
        dead[0]["lastError"],
        "the receiver answered 500 Internal Server Error"
    );
    // Another namespace neither sees nor resends them.
    let other = call(
        reqwest::Method::GET,
        format!("{}/v1/dead-letters?namespace=other", app.base),
        None,
    )
    .await
    .1;
    assert_eq!(other["total"], 0);
    let first = dead[0]["id"].as_str().unwrap();
    let (status, body) = call(
        reqwest::Method::POST,
        format!(
            "{}/v1/dead-letters/{first}/resend?namespace=other",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("resource_not_found"))
    );

    // The receiver is back: both are sent again, in order.
    failing.store(0, Ordering::SeqCst);
    for letter in &dead {
        let (status, body) = call(
            reqwest::Method::POST,
            format!(
                "{}/v1/dead-letters/{}/resend?namespace={ns}",
                app.base,
                letter["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    eventually("the resent callbacks", || async {
        phases_of(&received, &id).len() >= 2
    })
    .await;
    assert_eq!(phases_of(&received, &id), ["Provisioning", "Ready"]);
    assert_eq!(
        call(reqwest::Method::GET, letters, None).await.1["total"],
        0
    );
    forget(&db.url, &ns).await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deprovision_before_the_creation_ran_creates_nothing() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "public", 2).await.unwrap();
    // This replica answers the API only; the work waits for one with workers.
    let mut api_only = Config::for_database(&db.url);
    api_only.workers = 0;
    let front = start(&api_only).await;
    let (callback, received) = receiver().await;
    let ns = namespace();
    let id = provision(
        &front,
        &ns,
        "never",
        &callback,
        json!({"engine": "postgresql"}),
    )
    .await;
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", front.base),
        Some(json!({"deploymentId": id, "resourceType": "database", "resourceName": "never", "namespace": ns, "callbackUrl": callback})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(phase(&front.base, &id).await, "Deleting");
    let back = start(&Config::for_database(&db.url)).await;
    eventually("Deleted", || async {
        phase(&back.base, &id).await == "Deleted"
    })
    .await;
    let object = Names::new(&ns, "never").object;
    let made: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&object)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!made);
    eventually("three callbacks", || async {
        phases_of(&received, &id).len() >= 3
    })
    .await;
    assert_eq!(
        phases_of(&received, &id),
        ["Provisioning", "Deleting", "Deleted"]
    );
    for app in [front, back] {
        app.shutdown.trigger();
        app.task.await.unwrap().unwrap();
    }
}

/// A free loopback port (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_broker_killed_mid_operation_loses_and_duplicates_nothing() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "broker", 2).await.unwrap();
    let config = Config::for_database(&db.url);
    let (callback, received) = receiver().await;
    let port = free_port();
    let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env(
            "ENCRYPTION_KEY",
            config.common.encryption_key.as_ref().unwrap().expose(),
        )
        .env("BROKER_TOKENS", "test-token")
        .env("BROKER_PRIVATE_KEY", &seed)
        // Its leases (operations 2 s, callbacks twice the 1 s timeout) end soon after the kill.
        .env("BROKER_LEASE_SECONDS", "2")
        .env("BROKER_CALLBACK_TIMEOUT_SECONDS", "1")
        .env("BROKER_WORKERS", "2")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--metrics-port",
            "0",
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let doomed = Running::remote(format!("http://127.0.0.1:{port}"));
    eventually("the broker binary answers", || async {
        client()
            .get(format!("{}/health", doomed.base))
            .send()
            .await
            .is_ok()
    })
    .await;
    let ns = namespace();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            provision(
                &doomed,
                &ns,
                &format!("db-{i}"),
                &callback,
                json!({"engine": "postgresql"}),
            )
            .await,
        );
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments WHERE phase = 'Provisioning'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(
        unfinished > 0,
        "the kill came after every operation finished"
    );

    // Another broker with the same key takes over once the dead one's leases end.
    let mut again = config.clone();
    again.signing_key = Some(keel_service::config::Secret::new(seed));
    let app = start_configured(&again).await;
    for id in &ids {
        eventually("Ready", || async { phase(&app.base, id).await == "Ready" }).await;
    }
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1")
        .bind(format!("{ns}_db_%"))
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(roles, 12);
    // Each deployment reported Provisioning then Ready; a callback in flight at the kill may
    // arrive twice (delivery is at least once), never out of order.
    for id in &ids {
        eventually("Ready reported", || async {
            phases_of(&received, id).contains(&"Ready".to_owned())
        })
        .await;
        let mut phases = phases_of(&received, id);
        phases.dedup();
        assert_eq!(phases, ["Provisioning", "Ready"], "{id}");
    }
    forget(&db.url, &ns).await;
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
