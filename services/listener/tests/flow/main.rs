//! End to end: sources are created through sources-api's REST API, their events reach the
//! listener (embedded log), and the listener builds providers in tenant schemas and reports
//! the status back through the same REST API. Real PostgreSQL, real HTTP.

use std::time::{Duration, Instant};

use keel_db::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const PSK: &str = "listener-psk";

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// sources-api and the listener on one database.
struct Stack {
    sources: String,
    listener: String,
    db: PgPool,
    http: reqwest::Client,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _database: TestDatabase,
}

impl Stack {
    async fn start() -> Self {
        keel_telemetry::init_for_tests();
        let database = TestDatabase::create(
            &server_url(),
            &[
                sources_api::OWNER,
                keel_events::OWNER,
                listener::OWNER,
                listener::TEMPLATE,
            ],
        )
        .await
        .expect("a test database (is PostgreSQL running?)");
        let key = sources_api::crypto::SecretBox::generate_key();
        let mut sources_config = sources_api::Config::for_database(database.url.clone());
        sources_config.psks = vec![PSK.to_owned()];
        sources_config.encryption_key = Some(key.clone());
        let sources = sources_api::App::build(&sources_config)
            .await
            .expect("sources-api builds");
        let sources_url = format!("http://{}", sources.local_addr());
        let mut config = listener::Config::for_database(database.url.clone(), sources_url.clone());
        config.sources_psk = Some(PSK.to_owned());
        config.encryption_key = Some(key);
        let app = listener::App::build(&config)
            .await
            .expect("listener builds");
        let listener_url = format!("http://{}", app.local_addr());
        let db = app.db().clone();
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(sources.run(stop.clone())),
            tokio::spawn(app.run(stop.clone())),
        ];
        Self {
            sources: sources_url,
            listener: listener_url,
            db,
            http: reqwest::Client::new(),
            stop,
            tasks,
            _database: database,
        }
    }

    async fn bulk_create(&self, org: &str, body: Value) -> Value {
        let reply = self
            .http
            .post(format!("{}/api/sources/v3.1/bulk_create", self.sources))
            .header("x-rh-sources-org-id", org)
            .header("x-rh-sources-psk", PSK)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        reply.json().await.unwrap()
    }

    async fn get(&self, url: String, org: &str) -> Value {
        self.http
            .get(url)
            .header("x-rh-sources-org-id", org)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the source reaches `state`, printing the row when it does not.
    async fn wait_state(&self, source_id: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT state, state_reason FROM api_sources WHERE source_id = $1")
                    .bind(source_id)
                    .fetch_optional(&self.db)
                    .await
                    .unwrap();
            if row.as_ref().is_some_and(|(s, _)| s == state) {
                return;
            }
            if Instant::now() > deadline {
                let op: Option<(String, i32, Option<String>)> = sqlx::query_as(
                    "SELECT kind, attempts, last_error FROM operations WHERE source_id = $1",
                )
                .bind(source_id)
                .fetch_optional(&self.db)
                .await
                .unwrap();
                panic!("source {source_id} never reached {state}: row {row:?}, operation {op:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap().unwrap();
        }
    }
}

fn aws(name: &str, arn: &str) -> Value {
    json!({
        "sources": [{"name": name, "source_type_name": "amazon"}],
        "applications": [{"application_type_name": "cost-management", "source_name": name,
                          "extra": {"bucket": "cost-bucket", "bucket_region": "eu-west-1"}}],
        "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                             "authtype": "arn", "username": arn, "extra": {"external_id": "ext-1"}}]
    })
}

#[tokio::test]
async fn an_aws_source_becomes_a_provider_in_its_tenant_schema_and_reports_available() {
    let stack = Stack::start().await;
    let created = stack
        .bulk_create("4242", aws("My AWS", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let source_id: i64 = created["sources"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let uid = created["sources"][0]["uid"].as_str().unwrap().to_owned();
    let app_id = created["applications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.wait_state(source_id, "linked").await;

    // The provider carries the source's uid, in the org's customer, with Koku's shapes.
    let (uuid, name, ty, org): (uuid::Uuid, String, String, String) = sqlx::query_as(
        "SELECT p.uuid, p.name, p.type, c.org_id FROM api_provider p JOIN api_customer c ON c.id = p.customer_id",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(
        (uuid.to_string(), name.as_str(), ty.as_str(), org.as_str()),
        (uid.clone(), "My AWS", "AWS", "4242")
    );
    let (credentials, data_source): (Value, Value) = sqlx::query_as(
        "SELECT authentication, billing_source FROM api_sources WHERE source_id = $1",
    )
    .bind(source_id)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(
        credentials,
        json!({"credentials": {"role_arn": "arn:aws:iam::111111111111:role/Cost", "external_id": "ext-1"}})
    );
    assert_eq!(
        data_source,
        json!({"data_source": {"bucket": "cost-bucket", "bucket_region": "eu-west-1"}})
    );

    // The tenant schema was cloned from the template, at its migration version, with the row.
    let tenant: (String, String) = sqlx::query_as(
        "SELECT name, type FROM org4242.reporting_tenant_api_provider WHERE provider_id = $1",
    )
    .bind(uuid)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(tenant, ("My AWS".to_owned(), "AWS".to_owned()));
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM org4242._sqlx_migrations")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(versions, listener::TENANT_MIGRATOR.iter().count() as i64);

    // sources-api got the status through its REST API.
    let app = stack
        .get(
            format!("{}/api/sources/v3.1/applications/{app_id}", stack.sources),
            "4242",
        )
        .await;
    assert_eq!(app["availability_status"], "available", "{app}");

    // The read API shows the linked source and the provider to its org only.
    let sources = stack
        .get(
            format!("{}/api/cost-management/v1/sources/", stack.listener),
            "4242",
        )
        .await;
    assert_eq!(sources["meta"]["count"], 1);
    assert_eq!(sources["data"][0]["state"], "linked");
    assert_eq!(sources["data"][0]["koku_uuid"], uid);
    let providers = stack
        .get(
            format!("{}/api/cost-management/v1/providers/", stack.listener),
            "4242",
        )
        .await;
    assert_eq!(providers["data"][0]["uuid"], uid);
    let others = stack
        .get(
            format!("{}/api/cost-management/v1/providers/", stack.listener),
            "9999",
        )
        .await;
    assert_eq!(others["meta"]["count"], 0);
    let status = stack
        .get(
            format!(
                "{}/api/cost-management/v1/source-status/?source_id={source_id}",
                stack.listener
            ),
            "4242",
        )
        .await;
    assert_eq!(
        status,
        json!({"availability_status": "available", "availability_status_error": ""})
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_invalid_role_arn_becomes_unavailable_with_kokus_message_and_no_provider() {
    let stack = Stack::start().await;
    let created = stack.bulk_create("77", aws("Bad AWS", "not-an-arn")).await;
    let source_id: i64 = created["sources"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let app_id = created["applications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.wait_state(source_id, "failed").await;
    let providers: i64 = sqlx::query_scalar("SELECT count(*) FROM api_provider")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(providers, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let app = stack
            .get(
                format!("{}/api/sources/v3.1/applications/{app_id}", stack.sources),
                "77",
            )
            .await;
        if app["availability_status"] == "unavailable" {
            assert_eq!(
                app["availability_status_error"],
                "The role ARN was entered incorrectly for this source. Edit your AWS source and verify the name of your ARN."
            );
            break;
        }
        assert!(Instant::now() < deadline, "status never sent: {app}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_incomplete_source_waits_and_a_bad_status_request_is_refused() {
    let stack = Stack::start().await;
    // No bucket: the settings stay incomplete.
    let created = stack
        .bulk_create(
            "88",
            json!({
                "sources": [{"name": "Half", "source_type_name": "amazon"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "Half"}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                     "authtype": "arn", "username": "arn:aws:iam::111111111111:role/Cost"}]
            }),
        )
        .await;
    let source_id: i64 = created["sources"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    stack.wait_state(source_id, "details").await;
    let providers: i64 = sqlx::query_scalar("SELECT count(*) FROM api_provider")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(providers, 0);
    let url = format!("{}/api/cost-management/v1/source-status/", stack.listener);
    let missing = stack
        .http
        .get(format!("{url}?source_id={source_id}"))
        .header("x-rh-sources-org-id", "88")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "incomplete settings have no status");
    let bad = stack
        .http
        .get(format!("{url}?source_id=abc"))
        .header("x-rh-sources-org-id", "88")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "400");
    let anonymous = stack
        .http
        .get(format!("{url}?source_id={source_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    stack.stop().await;
}

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/listener.json");

/// The document generated from the code must match the checked-in file. Run with
/// `UPDATE_OPENAPI=1` (`just openapi`) to rewrite it after an intended API change.
#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = listener::openapi_document().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/listener.json is stale: run `just openapi` and commit the result"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for path in ["/source-status", "/sources", "/providers"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
