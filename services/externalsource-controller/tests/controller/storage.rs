//! Storage backends and restarts: artifacts in moto's S3 (signed with SigV4) served by the
//! controller, and a controller killed in the middle of a reconciliation that, restarted,
//! converges with nothing left behind.

use std::{sync::Arc, time::Duration};

use externalsource_controller::{Config, config::Backend};
use serde_json::json;

use crate::support::*;

/// moto's S3, started by scripts/test (`KEEL_MOTO_URL`).
fn moto_url() -> String {
    std::env::var("KEEL_MOTO_URL")
        .expect("KEEL_MOTO_URL is not set: run the tests with scripts/test, which starts moto's S3")
}

/// The bucket's objects, as S3's ListObjectsV2 answers them.
async fn bucket_listing(moto: &str, bucket: &str) -> String {
    let listed = reqwest::get(format!("{moto}/{bucket}?list-type=2"))
        .await
        .unwrap();
    listed.text().await.unwrap()
}

#[tokio::test]
async fn artifacts_in_s3_are_served_by_the_controller() {
    keel_service::tls::install_crypto_provider();
    let moto = moto_url();
    let bucket = format!("artifacts-{}", std::process::id());
    let made = reqwest::Client::new()
        .put(format!("{moto}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        made.status().is_success(),
        "creating the bucket: {}",
        made.status()
    );
    let mut config = Config::for_tests();
    config.storage_backend = Backend::S3;
    config.s3_bucket = Some(bucket.clone());
    config.s3_endpoint = Some(moto.clone());
    config.aws_access_key_id = Some("testing".into());
    config.aws_secret_access_key = Some("testing".into());
    let r = start(config).await;
    let origin = Origin::default();
    origin.set(b"kept in s3");
    create(&r, "remote", http_spec(&origin.serve().await));
    until_ready(&r, "remote").await;
    let artifact = source(&r, "remote")["status"]["artifact"].clone();
    // The object is in the bucket, under the artifact's path.
    let listed = bucket_listing(&moto, &bucket).await;
    assert!(
        listed.contains(artifact["path"].as_str().unwrap()),
        "{listed}"
    );
    // Consumers fetch it from the controller, with no credentials.
    assert!(
        artifact["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(flux_fetch(&artifact, "data").await, b"kept in s3");
    r.fake.delete(API, "externalsources", "team", "remote");
    until("the source gone", || {
        r.fake
            .get(API, "externalsources", "team", "remote")
            .is_none()
    })
    .await;
    let listed = bucket_listing(&moto, &bucket).await;
    assert!(
        !listed.contains("<Key>"),
        "the bucket is empty again: {listed}"
    );
    r.shutdown.trigger();
}

#[tokio::test]
async fn a_controller_killed_mid_reconcile_converges_when_restarted() {
    let dir = std::env::temp_dir().join(format!("keel-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let whitelist = dir.with_extension("yaml");
    std::fs::write(
        &whitelist,
        "commands:\n  sleep:\n    allowed: true\n    argumentPatterns: ['[0-9.]+']\n",
    )
    .unwrap();
    let config = || {
        let mut c = Config::for_tests();
        c.storage_backend = Backend::Filesystem;
        c.storage_path = dir.clone();
        c.hook_whitelist_path = Some(whitelist.clone());
        c
    };
    let first = start(config()).await;
    let origin = Origin::default();
    origin.set(b"one");
    let mut spec = http_spec(&origin.serve().await);
    // The pre-request hook gives the kill a window inside the reconciliation.
    spec["hooks"] = json!({"preRequest": [{"name": "pause", "command": "sleep", "args": ["0.6"]}]});
    create(&first, "steady", spec);
    until_ready(&first, "steady").await;
    origin.set(b"two");
    poke(&first, "steady", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.task.abort();
    let _ = first.task.await;
    origin.set(b"three");
    let fake = Arc::clone(&first.fake);
    let second = start_on(fake, config()).await;
    let want = format!(
        "latest@sha256:{}",
        hex(&<sha2::Sha256 as sha2::Digest>::digest(b"three"))
    );
    until("the last revision", || {
        source(&second, "steady")["status"]["artifact"]["revision"] == want.as_str()
    })
    .await;
    let artifact = source(&second, "steady")["status"]["artifact"].clone();
    assert_eq!(flux_fetch(&artifact, "data").await, b"three");
    let stored: Vec<String> = second
        .storage
        .list("externalsource/team/steady/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        stored.len() <= 2 && stored.contains(&artifact["path"].as_str().unwrap().to_owned()),
        "{stored:?}"
    );
    second.fake.delete(API, "externalsources", "team", "steady");
    until("the source gone", || {
        second
            .fake
            .get(API, "externalsources", "team", "steady")
            .is_none()
    })
    .await;
    assert!(
        second
            .storage
            .list("externalsource/")
            .await
            .unwrap()
            .is_empty(),
        "no orphaned artifact"
    );
    second.shutdown.trigger();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&whitelist);
}
