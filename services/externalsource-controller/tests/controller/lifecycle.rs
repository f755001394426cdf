//! A source's life: Ready with an artifact Flux can fetch and verify, its ETag, new
//! revisions and garbage collection, hooks, a denied command, suspend, deletion.

use std::time::Duration;

use externalsource_controller::Config;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::support::*;

#[tokio::test]
async fn a_source_is_published_follows_its_etag_and_revisions_and_goes_with_its_artifacts() {
    let r = start(Config::for_tests()).await;
    let origin = Origin::default();
    origin.set(b"{\"replicas\": 2}");
    let url = origin.serve().await;
    r.fake.create(
        API,
        "externalsources",
        "team",
        json!({
            "apiVersion": API, "kind": "ExternalSource", "metadata": {"name": "settings"},
            "spec": {"interval": "10m", "destinationPath": "config/settings.json", "maxRetries": 3,
                     "generator": {"type": "http", "http": {"url": url, "method": "GET"}}},
        }),
    );
    until("Ready", || {
        condition(&source(&r, "settings"), "Ready") == Some(("True".into(), "Succeeded".into()))
    })
    .await;
    let s = source(&r, "settings");
    assert_eq!(
        s["metadata"]["finalizers"],
        json!(["source.flux.oddkin.co/finalizer"])
    );
    assert_eq!(
        s["status"]["observedGeneration"],
        s["metadata"]["generation"]
    );
    let artifact = s["status"]["artifact"].clone();
    let content = hex(&sha2::Sha256::digest(b"{\"replicas\": 2}"));
    assert_eq!(artifact["revision"], format!("latest@sha256:{content}"));
    assert_eq!(
        artifact["path"],
        format!("externalsource/team/settings/{content}.tar.gz")
    );
    assert_eq!(
        flux_fetch(&artifact, "config/settings.json").await,
        b"{\"replicas\": 2}"
    );
    let first_etag = s["status"]["lastHandledETag"].as_str().unwrap().to_owned();

    // The ExternalArtifact: owned by the source, pointing back at it, with the same artifact.
    let mut ea = Value::Null;
    until("the ExternalArtifact", || {
        ea = r
            .fake
            .get(EA, "externalartifacts", "team", "settings")
            .unwrap_or(Value::Null);
        ea["status"]["artifact"] == artifact
    })
    .await;
    assert_eq!(
        ea["spec"]["sourceRef"],
        json!({"apiVersion": API, "kind": "ExternalSource", "name": "settings", "namespace": "team"})
    );
    assert_eq!(
        ea["metadata"]["ownerReferences"][0]["uid"],
        s["metadata"]["uid"]
    );
    assert_eq!(ea["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        condition(&ea, "Ready"),
        Some(("True".into(), "Succeeded".into()))
    );
    // Status is written by server-side apply with the controller's field manager.
    let status_writes: Vec<_> = r
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/status"))
        .collect();
    assert!(!status_writes.is_empty());
    for c in status_writes {
        assert_eq!(
            (
                c.content_type.as_deref(),
                c.param("fieldManager").as_deref()
            ),
            (
                Some("application/apply-patch+yaml"),
                Some("externalsource-controller")
            )
        );
    }

    // Unchanged: asked with the ETag, answered 304, the revision kept.
    poke(&r, "settings", 1);
    until("a conditional request", || {
        origin
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.as_deref() == Some(first_etag.as_str()))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        source(&r, "settings")["status"]["artifact"]["revision"],
        artifact["revision"]
    );

    // Events say what happened, about the source.
    let events = || r.fake.list("events.k8s.io/v1", "events", Some("team"));
    let new = events()
        .into_iter()
        .find(|e| e["reason"] == "NewArtifact")
        .expect("a NewArtifact event");
    assert_eq!(
        (new["type"].as_str(), new["regarding"]["name"].as_str()),
        (Some("Normal"), Some("settings"))
    );
    assert!(
        new["note"]
            .as_str()
            .unwrap()
            .contains("stored artifact for revision")
    );

    // The source failing: the source and its ExternalArtifact say so; the artifact stays.
    origin.down.store(true, std::sync::atomic::Ordering::SeqCst);
    poke(&r, "settings", 9);
    until("FetchFailed", || {
        condition(&source(&r, "settings"), "FetchFailed").is_some()
    })
    .await;
    until("the ExternalArtifact not Ready", || {
        let ea = r
            .fake
            .get(EA, "externalartifacts", "team", "settings")
            .unwrap_or(Value::Null);
        condition(&ea, "Ready") == Some(("False".into(), "FetchFailed".into()))
    })
    .await;
    let ea = r
        .fake
        .get(EA, "externalartifacts", "team", "settings")
        .unwrap();
    assert_eq!(
        ea["status"]["artifact"], artifact,
        "consumers keep the last artifact"
    );
    let warning = events()
        .into_iter()
        .find(|e| e["reason"] == "FetchFailed")
        .expect("a FetchFailed event");
    assert_eq!(warning["type"], "Warning");
    origin
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);

    // Changed twice: new revisions, and only the last two artifacts are kept.
    let mut revisions = vec![artifact["revision"].clone()];
    for (n, body) in [
        (2, &b"{\"replicas\": 3}"[..]),
        (3, &b"{\"replicas\": 4}"[..]),
    ] {
        origin.set(body);
        poke(&r, "settings", n);
        until("a new revision", || {
            !revisions.contains(&source(&r, "settings")["status"]["artifact"]["revision"])
        })
        .await;
        revisions.push(source(&r, "settings")["status"]["artifact"]["revision"].clone());
    }
    let latest = source(&r, "settings")["status"]["artifact"].clone();
    assert_eq!(
        flux_fetch(&latest, "config/settings.json").await,
        b"{\"replicas\": 4}"
    );
    let stored: Vec<String> = r
        .storage
        .list("externalsource/team/settings/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        !stored.iter().any(|k| k.contains(&content)),
        "the oldest is collected: {stored:?}"
    );

    // Suspended: no more requests.
    r.fake
        .edit(API, "externalsources", "team", "settings", |o| {
            o["spec"]["suspend"] = json!(true)
        });
    until("Suspended", || {
        condition(&source(&r, "settings"), "Ready").is_some_and(|c| c.1 == "Suspended")
    })
    .await;
    let asked = origin.seen.lock().unwrap().len();
    poke(&r, "settings", 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.seen.lock().unwrap().len(), asked);

    // Deleted: the finalizer removes the stored artifacts, then the source goes.
    r.fake.delete(API, "externalsources", "team", "settings");
    until("the source gone", || {
        r.fake
            .get(API, "externalsources", "team", "settings")
            .is_none()
    })
    .await;
    assert!(
        r.storage
            .list("externalsource/team/settings/")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        r.fake
            .get(EA, "externalartifacts", "team", "settings")
            .is_none()
    );
    r.shutdown.trigger();
}

#[tokio::test]
async fn hooks_transform_the_data_and_a_command_not_whitelisted_stalls() {
    let dir = std::env::temp_dir().join(format!("keel-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whitelist = dir.join("whitelist.yaml");
    std::fs::write(&whitelist, "commands:\n  tr:\n    allowed: true\n    argumentPatterns: ['a-z', 'A-Z']\n  rev:\n    allowed: true\n").unwrap();
    let mut config = Config::for_tests();
    config.hook_whitelist_path = Some(whitelist);
    let r = start(config).await;
    let origin = Origin::default();
    origin.set(b"hello\n");
    let url = origin.serve().await;
    let spec = |post: Value| json!({"interval": "1m", "generator": {"type": "http", "http": {"url": url}}, "hooks": {"postRequest": post}});
    r.fake.create(API, "externalsources", "team", json!({"metadata": {"name": "shout"},
        "spec": spec(json!([{"name": "upper", "command": "tr", "args": ["a-z", "A-Z"]}, {"name": "reverse", "command": "rev"}]))}));
    until_ready(&r, "shout").await;
    let artifact = source(&r, "shout")["status"]["artifact"].clone();
    assert_eq!(flux_fetch(&artifact, "data").await, b"OLLEH\n");

    r.fake.create(API, "externalsources", "team", json!({"metadata": {"name": "evil"},
        "spec": spec(json!([{"name": "shell", "command": "sh", "args": ["-c", "id"], "retryPolicy": "ignore"}]))}));
    until("Stalled", || {
        condition(&source(&r, "evil"), "Stalled").is_some()
    })
    .await;
    let s = source(&r, "evil");
    assert_eq!(
        condition(&s, "Ready"),
        Some(("False".into(), "HookDenied".into()))
    );
    assert!(s["status"].get("artifact").is_none());
    r.shutdown.trigger();
    let _ = std::fs::remove_dir_all(dir);
}
