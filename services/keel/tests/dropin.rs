//! Keel where the originals run: sources-api and the listener started as processes from the
//! environment the cost-onprem Helm chart gives sources-api-go and Koku's sources listener
//! (`cost-onprem/templates/sources-api/deployment.yaml`,
//! `cost-management/sources/deployment-sources-listener.yaml` with `_helpers-koku.tpl`'s
//! common env), and from Clowder app configs (`ACG_CONFIG`) as the platform mounts them; in
//! both, a source created through sources-api becomes a provider and its status comes back.
//!
//! The only variables added to the chart's are the ports (`PORT`, `METRICS_PORT`: two
//! services on one test machine cannot both take 8000 and 9000) and `SOURCES_PSKS`, naming the
//! key Koku's listener sends: `BYPASS_RBAC` opens writes but, unlike sources-api-go's, not the
//! internal API with every tenant's credentials. The values point at this test's database and a
//! Kafka-protocol broker of its own.

mod support;

use std::{process::Stdio, str::FromStr as _, time::Duration};

use keel_db::testing::TestDatabase;
use keel_events::testing::TansuBroker;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use support::{free_port, get_json, server_url, workspace_bin};
use tokio::process::{Child, Command};

/// The binary started with exactly `env` (PATH aside).
fn spawn(name: &str, env: &[(&str, String)]) -> Child {
    Command::new(workspace_bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// Waits for `url` to answer 200, as the chart's probes do.
async fn probe(http: &reqwest::Client, url: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer 200 within a minute");
}

/// What each drop-in test starts from: its own database (host, port, name and user as a
/// chart would spell them) and its own Kafka-protocol broker.
struct Setup {
    database: TestDatabase,
    db_host: String,
    db_port: u16,
    db_name: String,
    db_user: String,
    /// Kept running until the test ends.
    _broker: TansuBroker,
    kafka_host: String,
    kafka_port: String,
}

impl Setup {
    async fn start() -> Self {
        keel_service::tls::install_crypto_provider();
        let database = TestDatabase::create(&server_url(), &[]).await.unwrap();
        let options = PgConnectOptions::from_str(&database.url).unwrap();
        let broker = TansuBroker::start().await;
        let brokers = broker.kafka().brokers;
        let (kafka_host, kafka_port) = brokers.rsplit_once(':').unwrap();
        Self {
            db_host: options.get_host().to_owned(),
            db_port: options.get_port(),
            db_name: options.get_database().unwrap().to_owned(),
            db_user: options.get_username().to_owned(),
            kafka_host: kafka_host.to_owned(),
            kafka_port: kafka_port.to_owned(),
            _broker: broker,
            database,
        }
    }
}

/// sources-api-go's development key: base64 of 16 bytes, without padding.
const GO_STYLE_KEY: &str = "YWFhYWFhYWFhYWFhYWFhYQ";

/// Creates an AWS source with cost management through sources-api at `base` (writes are
/// open: the chart sets BYPASS_RBAC); waits until the listener built its provider and the
/// application reports available.
async fn source_becomes_a_provider(http: &reqwest::Client, base: &str, org: &str) {
    let body = json!({
        "sources": [{"name": "Drop-in AWS", "source_type_name": "amazon"}],
        "applications": [{"application_type_name": "cost-management", "source_name": "Drop-in AWS",
                          "extra": {"bucket": "cost-bucket"}}],
        "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                             "authtype": "arn", "username": "arn:aws:iam::123456789012:role/Cost"}]
    });
    let reply = http
        .post(format!("{base}/api/sources/v1.0/bulk_create"))
        .header("x-rh-sources-org-id", org)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201, "BYPASS_RBAC=true lets the write in");
    let created: Value = reply.json().await.unwrap();
    let app = created["applications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut status = Value::Null;
    for _ in 0..600 {
        let url = format!("{base}/api/sources/v1.0/applications/{app}");
        status = get_json(http, &url, Some(org)).await;
        if status["availability_status"] == "available" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status["availability_status"], "available",
        "the listener built the provider and reported back: {status}"
    );
}

/// The `event_stream` check of a readiness report: which transport the service took.
async fn event_stream(http: &reqwest::Client, readiness: &str) -> String {
    let report: Value = http
        .get(readiness)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    report["checks"]["event_stream"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// How many providers the org's tenant schema lists.
async fn provider_in_tenant(database: &TestDatabase, org: &str) -> i64 {
    let db = keel_db::connect(&database.url, "cost", 2).await.unwrap();
    let schema = format!("org{org}");
    let sql = format!("SELECT count(*) FROM {schema}.reporting_tenant_api_provider");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db)
        .await
        .unwrap()
}

#[tokio::test]
async fn from_the_cost_onprem_charts_environment_a_source_becomes_a_provider() {
    let s = Setup::start().await;
    let (port, metrics_port) = (free_port(), free_port());
    let sources_env = [
        ("DATABASE_USER", s.db_user.clone()),
        ("DATABASE_PASSWORD", "chart-pass/word".to_owned()),
        ("DATABASE_HOST", s.db_host.clone()),
        ("DATABASE_PORT", s.db_port.to_string()),
        ("DATABASE_NAME", s.db_name.clone()),
        ("LOG_LEVEL", "INFO".to_owned()),
        ("REDIS_CACHE_HOST", "cost-onprem-valkey".to_owned()),
        ("REDIS_CACHE_PORT", "6379".to_owned()),
        ("BYPASS_RBAC", "true".to_owned()),
        // Keel's one addition: BYPASS_RBAC does not open the internal API (the credentials), so
        // sources-api lists the key Koku's listener sends (its default, SOURCES_PSK).
        ("SOURCES_PSKS", "sources-psk".to_owned()),
        ("QUEUE_HOST", s.kafka_host.clone()),
        ("QUEUE_PORT", s.kafka_port.clone()),
        ("ENCRYPTION_KEY", GO_STYLE_KEY.to_owned()),
        ("SOURCES_ENV", "onprem".to_owned()),
        ("PORT", port.to_string()),
        ("METRICS_PORT", metrics_port.to_string()),
    ];
    let _sources = spawn("sources-api", &sources_env);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // The chart's liveness and readiness probe.
    probe(&http, &format!("{base}/api/sources/v1.0/source_types")).await;
    probe(&http, &format!("http://127.0.0.1:{metrics_port}/metrics")).await;

    let (listener_port, listener_metrics) = (free_port(), free_port());
    let listener_env = [
        ("SOURCES", "true".to_owned()),
        ("KAFKA_CONNECT", "true".to_owned()),
        ("API_PATH_PREFIX", "/api/cost-management".to_owned()),
        ("SOURCES_API_SVC_HOST", "127.0.0.1".to_owned()),
        ("SOURCES_API_SVC_PORT", port.to_string()),
        ("SOURCES_API_PREFIX", "/api/sources/v1.0".to_owned()),
        ("ONPREM", "True".to_owned()),
        ("DATABASE_SERVICE_NAME", "database".to_owned()),
        ("DATABASE_ENGINE", "postgresql".to_owned()),
        ("DATABASE_SERVICE_HOST", s.db_host.clone()),
        ("DATABASE_SERVICE_PORT", s.db_port.to_string()),
        ("DATABASE_NAME", s.db_name.clone()),
        ("DATABASE_USER", s.db_user.clone()),
        ("DATABASE_PASSWORD", "koku-password".to_owned()),
        ("REDIS_HOST", "cost-onprem-valkey".to_owned()),
        ("REDIS_PORT", "6379".to_owned()),
        ("INSIGHTS_KAFKA_HOST", s.kafka_host.clone()),
        ("INSIGHTS_KAFKA_PORT", s.kafka_port.clone()),
        ("S3_ENDPOINT", "http://cost-onprem-minio:9000".to_owned()),
        ("DJANGO_SECRET_KEY", "chart-django-secret".to_owned()),
        ("SCHEDULE_REPORT_CHECKS", "true".to_owned()),
        ("POLLING_TIMER", "86400".to_owned()),
        ("PORT", listener_port.to_string()),
        ("METRICS_PORT", listener_metrics.to_string()),
    ];
    let _listener = spawn("listener", &listener_env);
    // Koku's listener probes: /readyz and /livez on its metrics port.
    probe(&http, &format!("http://127.0.0.1:{listener_metrics}/livez")).await;
    probe(
        &http,
        &format!("http://127.0.0.1:{listener_metrics}/readyz"),
    )
    .await;

    // Both took Kafka from the chart's variables, not the embedded log.
    let sources_stream = event_stream(&http, &format!("{base}/readiness")).await;
    assert!(sources_stream.starts_with("kafka:"), "{sources_stream}");
    let listener_stream = event_stream(
        &http,
        &format!("http://127.0.0.1:{listener_metrics}/readyz"),
    )
    .await;
    assert!(listener_stream.starts_with("kafka:"), "{listener_stream}");

    source_becomes_a_provider(&http, &base, "7001").await;
    assert_eq!(provider_in_tenant(&s.database, "7001").await, 1);
}

#[tokio::test]
async fn from_clowder_app_configs_with_renamed_topics_a_source_becomes_a_provider() {
    let s = Setup::start().await;
    let renamed = format!(
        "platform.sources.event-stream-{}",
        uuid::Uuid::new_v4().simple()
    );
    let (port, metrics_port) = (free_port(), free_port());
    let (listener_port, listener_metrics) = (free_port(), free_port());
    let app_config = |public: u16, metrics: u16, endpoints: Value| {
        json!({
            "publicPort": public, "metricsPort": metrics, "metricsPath": "/metrics",
            "database": {"name": s.db_name, "username": s.db_user, "password": "clowder-pw",
                         "hostname": s.db_host, "port": s.db_port, "adminUsername": "admin",
                         "adminPassword": "x", "sslMode": "disable"},
            "kafka": {"brokers": [{"hostname": s.kafka_host, "port": s.kafka_port.parse::<u16>().unwrap()}],
                      "topics": [{"requestedName": "platform.sources.event-stream", "name": renamed},
                                 {"requestedName": "platform.sources.status",
                                  "name": format!("{renamed}-status")}]},
            "endpoints": endpoints
        })
    };
    let dir = std::env::temp_dir().join(format!("clowder-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sources_config = dir.join("sources-cdappconfig.json");
    std::fs::write(
        &sources_config,
        app_config(port, metrics_port, json!([])).to_string(),
    )
    .unwrap();
    let listener_config = dir.join("koku-cdappconfig.json");
    let endpoints =
        json!([{"app": "sources-api", "name": "svc", "hostname": "127.0.0.1", "port": port}]);
    std::fs::write(
        &listener_config,
        app_config(listener_port, listener_metrics, endpoints).to_string(),
    )
    .unwrap();

    let _sources = spawn(
        "sources-api",
        &[
            ("ACG_CONFIG", sources_config.to_string_lossy().into_owned()),
            ("CLOWDER_ENABLED", "true".to_owned()),
            ("ENCRYPTION_KEY", GO_STYLE_KEY.to_owned()),
            ("BYPASS_RBAC", "true".to_owned()),
            ("SOURCES_PSKS", "sources-psk".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    probe(&http, &format!("{base}/api/sources/v1.0/source_types")).await;
    probe(&http, &format!("http://127.0.0.1:{metrics_port}/readyz")).await;
    let _listener = spawn(
        "listener",
        &[
            ("ACG_CONFIG", listener_config.to_string_lossy().into_owned()),
            ("CLOWDER_ENABLED", "true".to_owned()),
            ("DJANGO_SECRET_KEY", "clowder-django-secret".to_owned()),
        ],
    );
    probe(
        &http,
        &format!("http://127.0.0.1:{listener_metrics}/readyz"),
    )
    .await;

    let listener_stream = event_stream(
        &http,
        &format!("http://127.0.0.1:{listener_metrics}/readyz"),
    )
    .await;
    assert!(
        listener_stream.starts_with(&format!("kafka: {renamed} has")),
        "the listener consumes the renamed topic: {listener_stream}"
    );

    source_becomes_a_provider(&http, &base, "7002").await;
    assert_eq!(provider_in_tenant(&s.database, "7002").await, 1);
    // The events went through the renamed topic: it exists on the broker (created by
    // sources-api under the name Clowder gave) and the default one was never created.
    let plain = keel_events::KafkaSettings::plain(format!("{}:{}", s.kafka_host, s.kafka_port));
    keel_events::kafka::ping(&plain, &renamed, Duration::from_secs(5))
        .await
        .expect("the renamed topic");
    assert!(
        keel_events::kafka::ping(
            &plain,
            "platform.sources.event-stream",
            Duration::from_secs(2)
        )
        .await
        .is_err(),
        "nothing used the requested name on this broker"
    );
    let _ = std::fs::remove_dir_all(dir);
}
