//! The Kubernetes target against the fake API server on loopback: the exact objects applied
//! (server-side, one field manager), Ready only once the replicas serve, status read back,
//! drift repaired by applying again, deletion with the volumes, CloudNativePG clusters, and
//! an API server that does not answer.

use base64::Engine as _;
use broker::config::{KubernetesMode, KubernetesTarget};
use keel_kube_fake::FakeApiServer;
use serde_json::{Value, json};

use crate::common::*;

const APPS: &str = "apps/v1";

async fn broker_on(fake: &FakeApiServer, mode: KubernetesMode, db: &str) -> Running {
    watching(db, |c| {
        c.kubernetes = Some(KubernetesTarget {
            mode,
            api_url: Some(fake.url().to_owned()),
            engines: vec!["postgresql".into(), "redis".into()],
            storage_class: Some("fast".into()),
        });
    })
    .await
}

async fn object(fake: &FakeApiServer, api: &str, plural: &str, ns: &str, name: &str) -> Value {
    let mut found = None;
    eventually(&format!("{plural}/{name}"), || {
        found = fake.get(api, plural, ns, name);
        std::future::ready(found.is_some())
    })
    .await;
    found.unwrap()
}

fn decoded(secret: &Value, key: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][key].as_str().unwrap())
        .unwrap();
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn a_database_is_applied_served_repaired_and_deleted_with_its_volumes() {
    let db = database().await;
    let fake = FakeApiServer::start().await;
    let app = broker_on(&fake, KubernetesMode::Statefulset, &db.url).await;
    let (callback, got) = receiver().await;
    let ns = namespace();
    let spec = json!({
        "engine": "postgresql", "version": "15", "size": "medium", "highAvailability": true,
        "backup": {"enabled": true, "schedule": "30 3 * * *", "retention": "14d"},
        "driftPolicy": "repair",
    });
    let id = provision(&app, &ns, "orders", &callback, spec).await;

    let set = object(&fake, APPS, "statefulsets", &ns, "orders").await;
    assert_eq!(set["spec"]["replicas"], 3, "highly available: {set}");
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "postgres:15");
    let medium = json!({"cpu": "2", "memory": "4Gi"});
    assert_eq!(
        container["resources"],
        json!({"requests": medium, "limits": medium})
    );
    let claim = &set["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "50Gi");
    assert_eq!(claim["storageClassName"], "fast");
    assert_eq!(
        set["metadata"]["labels"]["kidp.io/deployment-id"],
        id.as_str()
    );
    assert_eq!(
        set["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "keel-broker"
    );
    let desired: Value = serde_json::from_str(
        set["metadata"]["annotations"]["kidp.io/desired-spec"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (desired["engine"].as_str(), desired["size"].as_str()),
        (Some("postgresql"), Some("medium"))
    );
    let service = object(&fake, "v1", "services", &ns, "orders").await;
    assert_eq!(service["spec"]["ports"][0]["port"], 5432);
    // Applied after the service: waited for like the others.
    object(&fake, "v1", "persistentvolumeclaims", &ns, "orders-backups").await;
    let cron = object(&fake, "batch/v1", "cronjobs", &ns, "orders-backup").await;
    assert_eq!(cron["spec"]["schedule"], "30 3 * * *");
    let script =
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap();
    assert!(
        script.contains("pg_dump") && script.contains("-mtime +14"),
        "{script}"
    );
    // Every write is a forced server-side apply by the broker's one field manager.
    let writes: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method != "GET")
        .collect();
    assert!(!writes.is_empty());
    for w in &writes {
        assert_eq!(w.method, "PATCH", "{w:?}");
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            (
                w.param("fieldManager").as_deref(),
                w.param("force").as_deref()
            ),
            (Some("keel-broker"), Some("true"))
        );
    }

    // Not Ready while the replicas do not serve.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(phase(&app.base, &id).await, "Provisioning");
    fake.set_status(
        APPS,
        "statefulsets",
        &ns,
        "orders",
        json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 1}),
    );
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let r = resource(&app, &ns, "orders").await;
    assert_eq!(
        r["endpoint"],
        format!("orders.{ns}.svc.cluster.local"),
        "{r}"
    );
    assert_eq!(r["port"], 5432);
    assert_eq!(r["resourceUsage"]["replicas"], 3, "ready replicas: {r}");
    assert_eq!(r["actualSpec"]["version"], "15");
    let creds = take_secret(&app, &ns, "orders").await;
    let secret = object(&fake, "v1", "secrets", &ns, "orders-credentials").await;
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(
        decoded(&secret, "password"),
        creds["password"].as_str().unwrap()
    );
    assert_eq!(decoded(&secret, "username"), "orders");
    assert_eq!(
        decoded(&secret, "host"),
        format!("orders.{ns}.svc.cluster.local")
    );

    // A replica down shows as Degraded, not as drift.
    fake.set_status(
        APPS,
        "statefulsets",
        &ns,
        "orders",
        json!({"replicas": 3, "readyReplicas": 1, "observedGeneration": 1}),
    );
    let r = wait_resource(&app, &ns, "orders", "Degraded", |r| {
        r["healthStatus"] == "Degraded"
    })
    .await;
    assert_eq!(r["message"], "Not ready: 1/3 replicas ready");
    assert_eq!(r["driftDetected"], false, "{r}");

    // Scaled down, given other resources and its Service deleted behind the broker's back.
    fake.edit(APPS, "statefulsets", &ns, "orders", |s| {
        s["spec"]["replicas"] = json!(1);
        s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
            json!({"cpu": "8", "memory": "4Gi"});
    });
    fake.delete("v1", "services", &ns, "orders");
    let r = repaired(&app, &ns, "orders").await;
    let message = r["message"].as_str().unwrap();
    for part in [
        "Missing: service orders (removed outside the broker)",
        "Replicas mismatch: desired=3, actual=1",
        "Resources mismatch: desired=cpu=2, memory=4Gi, actual=cpu=8, memory=4Gi",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    let set = object(&fake, APPS, "statefulsets", &ns, "orders").await;
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"],
        medium
    );
    assert!(fake.get("v1", "services", &ns, "orders").is_some());

    // The StatefulSet controller's claims go with the database.
    fake.create("v1", "persistentvolumeclaims", &ns, json!({"metadata": {"name": "data-orders-0",
        "labels": {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "orders"}}}));
    deprovision(&app, &id, "database", "orders", &ns, &callback).await;
    for (api, plural, name) in [
        (APPS, "statefulsets", "orders"),
        ("v1", "services", "orders"),
        ("v1", "secrets", "orders-credentials"),
        ("v1", "persistentvolumeclaims", "orders-backups"),
        ("v1", "persistentvolumeclaims", "data-orders-0"),
        ("batch/v1", "cronjobs", "orders-backup"),
    ] {
        assert!(
            fake.get(api, plural, &ns, name).is_none(),
            "{plural}/{name} is left"
        );
    }
    eventually("the Deleted callback", || {
        std::future::ready(phases_of(&got, &id).last().map(String::as_str) == Some("Deleted"))
    })
    .await;
    assert_eq!(
        phases_of(&got, &id),
        ["Provisioning", "Ready", "Deleting", "Deleted"]
    );
}

#[tokio::test]
async fn postgresql_as_a_cloudnativepg_cluster() {
    let db = database().await;
    let fake = FakeApiServer::start().await;
    let app = broker_on(&fake, KubernetesMode::Cloudnativepg, &db.url).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let spec = json!({"engine": "postgresql", "version": "16", "size": "large",
        "highAvailability": true, "backup": {"enabled": true}});
    let id = provision(&app, &ns, "ledger", &callback, spec).await;
    let cluster = object(&fake, "postgresql.cnpg.io/v1", "clusters", &ns, "ledger").await;
    assert_eq!(cluster["spec"]["instances"], 3);
    assert_eq!(
        cluster["spec"]["imageName"],
        "ghcr.io/cloudnative-pg/postgresql:16"
    );
    assert_eq!(
        cluster["spec"]["storage"],
        json!({"size": "100Gi", "storageClass": "fast"})
    );
    assert_eq!(
        cluster["spec"]["bootstrap"]["initdb"],
        json!({"database": "ledger", "owner": "ledger", "secret": {"name": "ledger-credentials"}})
    );
    let backup = object(
        &fake,
        "postgresql.cnpg.io/v1",
        "scheduledbackups",
        &ns,
        "ledger-backup",
    )
    .await;
    assert_eq!(backup["spec"]["schedule"], "0 0 2 * * *", "seconds first");
    assert_eq!(backup["spec"]["cluster"]["name"], "ledger");
    fake.set_status(
        "postgresql.cnpg.io/v1",
        "clusters",
        &ns,
        "ledger",
        json!({"instances": 3, "readyInstances": 3, "phase": "Cluster in healthy state"}),
    );
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let r = resource(&app, &ns, "ledger").await;
    assert_eq!(
        r["endpoint"],
        format!("ledger-rw.{ns}.svc.cluster.local"),
        "{r}"
    );
    deprovision(&app, &id, "database", "ledger", &ns, &callback).await;
    assert!(
        fake.list("postgresql.cnpg.io/v1", "clusters", Some(&ns))
            .is_empty()
    );
    assert!(
        fake.list("postgresql.cnpg.io/v1", "scheduledbackups", Some(&ns))
            .is_empty()
    );
    assert!(fake.list("v1", "secrets", Some(&ns)).is_empty());
}

#[tokio::test]
async fn an_api_server_that_does_not_answer() {
    let db = database().await;
    let fake = FakeApiServer::start().await;
    let app = broker_on(&fake, KubernetesMode::Statefulset, &db.url).await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = |name: &str, spec: Value| {
        json!({"resourceType": "cache", "resourceName": name, "namespace": ns, "team": "t",
               "callbackUrl": callback, "spec": spec})
    };
    let too_long = "c".repeat(53);
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request(
            &too_long,
            json!({"engine": "redis", "version": "7.2"}),
        )),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    assert!(
        fake.calls().iter().all(|c| c.method == "GET"),
        "nothing was written for it"
    );

    fake.set_down(true);
    eventually("the availability gauge at 0", || async {
        metrics_text(&app)
            .await
            .contains("broker_kubernetes_api_available 0")
    })
    .await;
    let ready = client()
        .get(format!("{}/readiness", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    // Without a version the target must be asked which it runs: refused while it cannot be.
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request("unversioned", json!({"engine": "redis"}))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("provisioning_failed")),
        "{body}"
    );
    // A version asked for is accepted and made once the cluster answers again.
    let id = request_provision(
        &app,
        request("sessions", json!({"engine": "redis", "version": "7.2"})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(phase(&app.base, &id).await, "Provisioning");
    assert!(fake.get(APPS, "statefulsets", &ns, "sessions").is_none());
    fake.set_down(false);
    let set = object(&fake, APPS, "statefulsets", &ns, "sessions").await;
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["image"],
        "redis:7.2"
    );
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "yes"])
    );
    fake.set_status(
        APPS,
        "statefulsets",
        &ns,
        "sessions",
        json!({"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}),
    );
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    eventually("the availability gauge at 1", || async {
        metrics_text(&app)
            .await
            .contains("broker_kubernetes_api_available 1")
    })
    .await;
    let secret = object(&fake, "v1", "secrets", &ns, "sessions-credentials").await;
    assert_eq!(decoded(&secret, "username"), "default");
    // Credentials on a cluster are not rotated in place.
    let (status, body) = call(
        reqwest::Method::POST,
        format!(
            "{}/v1/secrets/sessions-credentials/rotate?namespace={ns}",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    deprovision(&app, &id, "cache", "sessions", &ns, &callback).await;
    assert!(fake.list(APPS, "statefulsets", Some(&ns)).is_empty());
}
