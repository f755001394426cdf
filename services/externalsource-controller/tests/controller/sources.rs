//! Sources as a user configures them: a server with a private CA (trusted through a Secret,
//! or not verified), headers from a Secret, a Secret that is missing, a slow server, a
//! response over the size limit.

use std::time::Duration;

use base64::Engine as _;
use externalsource_controller::Config;
use serde_json::json;

use crate::support::*;

fn secret(r: &Running, name: &str, data: &[(&str, &str)]) {
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    r.fake.create(
        "v1",
        "secrets",
        "team",
        json!({"metadata": {"name": name}, "data": data}),
    );
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_its_secret_and_only_then() {
    let r = start(Config::for_tests()).await;
    let origin = Origin::default();
    origin.set(b"tls data");
    let (url, ca) = serve_tls(origin.router()).await;
    create(&r, "untrusted", http_spec(&url));
    until("FetchFailed", || {
        condition(&source(&r, "untrusted"), "FetchFailed").is_some()
    })
    .await;
    let s = source(&r, "untrusted");
    assert_eq!(
        condition(&s, "Reconciling"),
        Some(("True".into(), "ProgressingWithRetry".into()))
    );
    assert_eq!(condition(&s, "Ready").unwrap().0, "False");

    secret(&r, "origin-ca", &[("ca.crt", &ca)]);
    let mut spec = http_spec(&url);
    spec["generator"]["http"]["caBundleSecretRef"] = json!({"name": "origin-ca"});
    create(&r, "trusted", spec);
    until_ready(&r, "trusted").await;
    let artifact = source(&r, "trusted")["status"]["artifact"].clone();
    assert_eq!(flux_fetch(&artifact, "data").await, b"tls data");

    let mut spec = http_spec(&url);
    spec["generator"]["http"]["insecureSkipVerify"] = json!(true);
    create(&r, "unverified", spec);
    until_ready(&r, "unverified").await;
    r.shutdown.trigger();
}

#[tokio::test]
async fn headers_come_from_a_secret_and_a_missing_one_stalls() {
    let r = start(Config::for_tests()).await;
    let origin = Origin::default();
    origin.set(b"private");
    *origin.token.lock().unwrap() = Some("s3cr3t".into());
    let url = origin.serve().await;
    let mut spec = http_spec(&url);
    spec["generator"]["http"]["headersSecretRef"] = json!({"name": "api-token"});
    create(&r, "private", spec);
    until("Stalled", || {
        condition(&source(&r, "private"), "Stalled").is_some()
    })
    .await;
    let s = source(&r, "private");
    assert_eq!(
        condition(&s, "Ready"),
        Some(("False".into(), "ConfigurationError".into()))
    );
    assert!(
        message(&s, "Ready").contains("secret team/api-token not found"),
        "{s}"
    );
    secret(&r, "api-token", &[("Authorization", "Bearer s3cr3t")]);
    poke(&r, "private", 1);
    until_ready(&r, "private").await;
    let s = source(&r, "private");
    assert!(
        condition(&s, "Stalled").is_none(),
        "Stalled goes once it is false: {s}"
    );
    // The header's value is never written to the status.
    assert!(!s.to_string().contains("s3cr3t"));
    r.shutdown.trigger();
}

#[tokio::test]
async fn slow_and_oversized_responses_fail_as_they_should() {
    let mut config = Config::for_tests();
    config.http_timeout = Duration::from_millis(300);
    config.http_max_body_bytes = 64;
    let r = start(config).await;
    let slow = Origin::default();
    slow.set(b"late");
    *slow.delay.lock().unwrap() = Duration::from_secs(3);
    create(&r, "slow", http_spec(&slow.serve().await));
    let big = Origin::default();
    big.set(&[b'x'; 1000]);
    create(&r, "big", http_spec(&big.serve().await));
    until("the slow one retried", || {
        condition(&source(&r, "slow"), "FetchFailed").is_some()
    })
    .await;
    assert_eq!(
        condition(&source(&r, "slow"), "Reconciling").unwrap().1,
        "ProgressingWithRetry"
    );
    until("the big one stalled", || {
        condition(&source(&r, "big"), "Stalled").is_some()
    })
    .await;
    let s = source(&r, "big");
    assert!(
        message(&s, "Ready").contains("larger than the 64 byte limit"),
        "{s}"
    );
    assert!(
        r.storage
            .list("externalsource/team/")
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    r.shutdown.trigger();
}
