//! A PostgreSQL database provisioned on the real local server through the API: callbacks
//! signed and verified, credentials handed over once and matching what the server stores,
//! deprovisioned until nothing is left.

use broker::{Config, signing};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn a_postgres_database_is_provisioned_handed_over_once_and_deprovisioned() {
    let db = database().await;
    let admin = keel_db::connect(&db.url, "public", 2).await.unwrap();
    let config = Config::for_database(&db.url);
    let app = start(&config).await;
    let (callback_url, received) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "database", "resourceName": "app-db", "namespace": ns,
        "team": "platform-team", "owner": "user@example.com", "callbackUrl": callback_url,
        "spec": {"engine": "postgresql", "version": "15", "size": "medium"}
    });
    let (status, accepted) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request.clone()),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["deploymentId"].as_str().unwrap().to_owned();
    assert!(broker::domain::is_deployment_id(&id), "{id}");
    assert_eq!(
        accepted["message"],
        "Provisioning request accepted for database/app-db"
    );
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;

    // The same request again: 200 with the same id; another spec: 409.
    let (status, again) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request.clone()),
    )
    .await;
    assert_eq!(
        (status, again["deploymentId"].as_str()),
        (200, Some(id.as_str()))
    );
    let mut other = request.clone();
    other["spec"]["size"] = json!("large");
    let (status, conflict) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(other),
    )
    .await;
    assert_eq!(
        (
            status,
            conflict["error"].as_str(),
            conflict["code"].as_u64()
        ),
        (409, Some("conflict"), Some(409))
    );

    let (_, listed) = call(
        reqwest::Method::GET,
        format!("{}/v1/resources?namespace={ns}", app.base),
        None,
    )
    .await;
    assert_eq!(listed["total"], 1, "{listed}");
    let r = &listed["resources"][0];
    assert_eq!(r["phase"], "Ready");
    assert_eq!(r["connectionSecret"], "app-db-credentials");
    assert_eq!(
        r["desiredSpec"],
        json!({"engine": "postgresql", "version": "15", "size": "medium"})
    );
    assert_eq!(r["estimatedMonthlyCost"], 45.5);
    assert!(
        r["actualSpec"]["version"]
            .as_str()
            .unwrap()
            .starts_with("15."),
        "{r}"
    );
    assert!(!listed.to_string().contains("password"));

    // The credentials, once; they are what the server stores, with the size's limit.
    let secret = format!("{}/v1/secrets/app-db-credentials?namespace={ns}", app.base);
    let (status, creds) = call(reqwest::Method::GET, secret.clone(), None).await;
    assert_eq!(status, 200, "{creds}");
    let role = creds["username"].as_str().unwrap().to_owned();
    assert!(password_matches(&admin, &role, creds["password"].as_str().unwrap()).await);
    assert!(!password_matches(&admin, &role, "not-the-password").await);
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(limit, 25);
    let owner: String =
        sqlx::query_scalar("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1")
            .bind(creds["database"].as_str().unwrap())
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(owner, role);
    let (status, gone) = call(reqwest::Method::GET, secret.clone(), None).await;
    assert_eq!((status, gone["error"].as_str()), (410, Some("gone")));

    // Rotated: new credentials on the server, readable once more; the old ones stop working.
    let rotate = format!(
        "{}/v1/secrets/app-db-credentials/rotate?namespace={ns}",
        app.base
    );
    let (status, rotated) = call(reqwest::Method::POST, rotate, None).await;
    assert_eq!(
        (status, rotated["status"].as_str()),
        (200, Some("rotated")),
        "{rotated}"
    );
    let (status, fresh) = call(reqwest::Method::GET, secret, None).await;
    assert_eq!(status, 200, "{fresh}");
    let (old, new) = (
        creds["password"].as_str().unwrap(),
        fresh["password"].as_str().unwrap(),
    );
    assert_ne!(old, new);
    assert_eq!(fresh["username"], creds["username"]);
    assert!(password_matches(&admin, &role, new).await);
    assert!(!password_matches(&admin, &role, old).await);
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/secrets/nothing-here/rotate?namespace={ns}", app.base),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let deprovision = json!({"deploymentId": id, "resourceType": "database", "resourceName": "app-db", "namespace": ns, "callbackUrl": callback_url});
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", app.base),
        Some(deprovision.clone()),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("Deleted", || async {
        phase(&app.base, &id).await == "Deleted"
    })
    .await;
    let left: (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
    ).bind(&role).fetch_one(&admin).await.unwrap();
    assert_eq!(left, (false, false));
    // Deprovisioning again is accepted and changes nothing.
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", app.base),
        Some(deprovision),
    )
    .await;
    assert_eq!(status, 202);

    // Every phase reported, in order, each signed over timestamp + "." + body.
    eventually("four callbacks", || async {
        received.lock().unwrap().len() >= 4
    })
    .await;
    let got: Vec<Received> = std::mem::take(&mut *received.lock().unwrap());
    let phases: Vec<String> = got
        .iter()
        .map(|r| {
            let ts = r.headers["x-kidp-timestamp"].to_str().unwrap();
            let sig = r.headers["x-kidp-signature"].to_str().unwrap();
            assert!(signing::verify(&app.key, ts, &r.body, sig), "bad signature");
            let mut tampered = r.body.to_vec();
            tampered[1] ^= 1;
            assert!(!signing::verify(&app.key, ts, &tampered, sig));
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["deploymentId"], id.as_str());
            v["phase"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(phases, ["Provisioning", "Ready", "Deleting", "Deleted"]);
    let ready: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(ready["connectionSecret"], "app-db-credentials");
    assert_eq!(ready["additionalMetadata"]["engine"], "postgresql");
    assert!(!String::from_utf8_lossy(&got[1].body).contains(creds["password"].as_str().unwrap()));
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn requests_without_a_token_or_with_bad_input_are_refused_in_the_seeds_format() {
    let db = database().await;
    let mut config = Config::for_database(&db.url);
    config.listen.metrics_port = Some(0);
    let app = start(&config).await;
    let r = client()
        .get(format!("{}/v1/status?id=x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "unauthorized", "message": "a bearer token is required", "code": 401})
    );
    let r = client()
        .get(format!("{}/v1/status?id=x", app.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let ok = json!({"resourceType": "database", "resourceName": "db", "namespace": "ns", "team": "t",
        "callbackUrl": "http://127.0.0.1:1/cb", "spec": {"engine": "postgresql", "version": "15"}});
    let cases = [
        (json!({}), "validation_failed", "resourceType is required"),
        (
            {
                let mut v = ok.clone();
                v["resourceName"] = json!("Bad_Name");
                v
            },
            "validation_failed",
            "resourceName \"Bad_Name\" must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ),
        (
            {
                let mut v = ok.clone();
                v.as_object_mut().unwrap().remove("team");
                v
            },
            "validation_failed",
            "team is required",
        ),
        (
            {
                let mut v = ok.clone();
                v["spec"]["version"] = json!("9");
                v
            },
            "validation_failed",
            "spec.version \"9\" is not supported for postgresql; supported: 16, 15, 14, 13, 12",
        ),
        (
            {
                let mut v = ok.clone();
                v["spec"]["engine"] = json!("mongodb");
                v["spec"]["version"] = json!("7.0");
                v
            },
            "validation_failed",
            "no target of this broker serves database with engine mongodb; configured: database/postgresql",
        ),
        (
            {
                let mut v = ok.clone();
                v["callbackUrl"] = json!("ftp://x");
                v
            },
            "validation_failed",
            "callbackUrl \"ftp://x\" is not an http(s) URL",
        ),
    ];
    for (body, error, message) in cases {
        let (status, got) = call(
            reqwest::Method::POST,
            format!("{}/v1/provision", app.base),
            Some(body),
        )
        .await;
        assert_eq!(
            (status, got),
            (
                400,
                json!({"error": error, "message": message, "code": 400})
            )
        );
    }
    // A NUL anywhere (PostgreSQL stores none) is a 400, in a body or in a query.
    let mut nul = ok.clone();
    nul["spec"]["backup"] = json!({"enabled": true, "schedule": "0 1 * * \u{0}"});
    let (status, got) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(nul),
    )
    .await;
    assert_eq!(
        (status, got["message"].as_str()),
        (
            400,
            Some("spec.backup.schedule must not contain a NUL character")
        )
    );
    for query in [
        "resources?namespace=%00",
        "resources?namespace=n&resourceName=a%00",
        "dead-letters?namespace=a%00b",
    ] {
        let (status, got) = call(
            reqwest::Method::GET,
            format!("{}/v1/{query}", app.base),
            None,
        )
        .await;
        assert_eq!(
            (status, got["error"].as_str()),
            (400, Some("validation_failed")),
            "{query}: {got}"
        );
    }
    // A version the target does not run is refused at once, naming what it runs.
    let mut newer = ok.clone();
    newer["spec"]["version"] = json!("16");
    let (status, got) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(newer),
    )
    .await;
    let admin = keel_db::connect(&db.url, "public", 1).await.unwrap();
    let served: String =
        sqlx::query_scalar("SELECT split_part(current_setting('server_version'), ' ', 1)")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(
        (status, got["message"].as_str()),
        (
            400,
            Some(
                format!(
                    "spec.version \"16\" cannot be served: the postgresql target runs {served}"
                )
                .as_str()
            )
        )
    );
    let r = client()
        .post(format!("{}/v1/provision", app.base))
        .bearer_auth("test-token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let (status, missing) = call(
        reqwest::Method::GET,
        format!(
            "{}/v1/status?id=deploy-00000000000000000000000000000000",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(
        (status, missing["error"].as_str()),
        (404, Some("resource_not_found"))
    );
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{}/v1/resources", app.base),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // Nothing was stored by any of it.
    let pool = keel_db::connect(&db.url, "broker", 1).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let health: Value = client()
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    let ready: Value = client()
        .get(format!("{}/readiness", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["ready"].as_bool(), ready["reason"].as_str()),
        (Some(true), Some("ok"))
    );
    // The operations port answers the probes in the same bodies, and serves the metrics.
    let ops = app.ops.as_deref().expect("an operations port");
    for path in ["/health", "/readiness"] {
        let body: Value = client()
            .get(format!("{ops}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["version"], broker::api::VERSION, "{path}: {body}");
    }
    let metrics = client()
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("broker_http_request_duration_seconds"),
        "{metrics}"
    );
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
