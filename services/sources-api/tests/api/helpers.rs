use base64::{Engine as _, engine::general_purpose::STANDARD};
use keel_db::testing::TestDatabase;
use keel_service::{Shutdown, config::Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sources_api::{App, Config, OWNER};
use sqlx::PgPool;

pub const PSK: &str = "test-psk";
pub const PREFIX: &str = "/api/sources/v3.1";

/// The PostgreSQL server tests create their databases on.
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A running sources-api with a database of its own.
pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub client: reqwest::Client,
    pub database_url: String,
    pub encryption_key: String,
    stop: Shutdown,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Dropped last: removes the database.
    database: Option<TestDatabase>,
}

/// Who a request is sent as.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// `x-rh-sources-org-id` and the PSK.
    Org(&'a str),
    /// A base64 identity with this org id, and the PSK.
    Identity(&'a str),
    /// Headers exactly as given.
    Raw(&'a [(&'a str, &'a str)]),
}

/// A base64 identity of user `user_id` in org `org_id`.
pub fn user_identity(org_id: &str, user_id: &str) -> String {
    let id =
        json!({ "identity": { "org_id": org_id, "type": "User", "user": { "user_id": user_id } } });
    STANDARD.encode(id.to_string())
}

pub fn identity(org_id: &str, account: Option<&str>) -> String {
    let mut id =
        json!({ "identity": { "org_id": org_id, "type": "User", "user": { "user_id": "u1" } } });
    if let Some(account) = account {
        id["identity"]["account_number"] = json!(account);
    }
    STANDARD.encode(id.to_string())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The one error detail of an error document, checking its shape and status text.
    pub fn error(&self) -> String {
        let errors = self.body["errors"].as_array().expect("an error document");
        assert_eq!(errors.len(), 1, "{}", self.body);
        assert_eq!(errors[0]["status"], self.status.as_u16().to_string());
        errors[0]["detail"].as_str().expect("a detail").to_owned()
    }

    pub fn ids(&self) -> Vec<String> {
        self.body["data"]
            .as_array()
            .expect("a collection")
            .iter()
            .map(|d| d["id"].as_str().expect("string id").to_owned())
            .collect()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        keel_telemetry::init_for_tests();
        let database = TestDatabase::create(&server_url(), &[OWNER])
            .await
            .expect("a test database (is PostgreSQL running?)");
        let mut config = Config::for_database(database.url.clone());
        config.psks = vec![PSK.to_owned(), "other-psk".to_owned()];
        config.common.encryption_key =
            Some(Secret::new(sources_api::crypto::SecretBox::generate_key()));
        configure(&mut config);
        Self::start(config, database).await
    }

    async fn start(config: Config, database: TestDatabase) -> Self {
        let app = App::build(&config).await.expect("app builds");
        let base = format!("http://{}", app.local_addr());
        let db = app.db().clone();
        let stop = Shutdown::default();
        let server = tokio::spawn(app.run(stop.clone()));
        Self {
            base,
            db,
            client: reqwest::Client::new(),
            database_url: config.common.database_url.clone(),
            encryption_key: config
                .common
                .encryption_key
                .as_ref()
                .map(|k| k.expose().to_owned())
                .unwrap_or_default(),
            stop,
            server: Some(server),
            database: Some(database),
        }
    }

    /// Stops the server and starts a new one on the same database (e.g. to re-run seeding).
    pub async fn restart(mut self, configure: impl FnOnce(&mut Config)) -> Self {
        self.stop.trigger();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        let mut config = Config::for_database(self.database_url.clone());
        config.psks = vec![PSK.to_owned()];
        config.common.encryption_key = Some(Secret::new(self.encryption_key.clone()));
        configure(&mut config);
        let database = self.database.take().expect("the app owns its database");
        Self::start(config, database).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
        body: Option<&str>,
    ) -> Reply {
        let url = if path.starts_with('/')
            && !path.starts_with("/api/")
            && !path.starts_with("/internal/")
            && !is_ops(path)
        {
            format!("{}{PREFIX}{path}", self.base)
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.client.request(method, url);
        match who {
            As::Org(org) => {
                req = req
                    .header("x-rh-sources-org-id", org)
                    .header("x-rh-sources-psk", PSK);
            }
            As::Identity(org) => {
                req = req
                    .header("x-rh-identity", identity(org, None))
                    .header("x-rh-sources-psk", PSK);
            }
            As::Raw(headers) => {
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
            }
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> Reply {
        self.request(Method::GET, path, who, None).await
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: &Value) -> Reply {
        self.request(Method::POST, path, who, Some(&body.to_string()))
            .await
    }

    pub async fn patch(&self, path: &str, who: As<'_>, body: &Value) -> Reply {
        self.request(Method::PATCH, path, who, Some(&body.to_string()))
            .await
    }

    pub async fn delete(&self, path: &str, who: As<'_>) -> Reply {
        self.request(Method::DELETE, path, who, None).await
    }

    /// The id of a seeded source type, looked up by name as clients must.
    pub async fn source_type_id(&self, name: &str) -> String {
        let reply = self
            .get(&format!("/source_types?filter[name]={name}"), As::Org("1"))
            .await;
        assert_eq!(reply.ids().len(), 1, "source type {name}");
        reply.ids().remove(0)
    }

    pub async fn application_type_id(&self, name: &str) -> String {
        let reply = self
            .get(
                &format!("/application_types?filter[name]={name}"),
                As::Org("1"),
            )
            .await;
        assert_eq!(reply.ids().len(), 1, "application type {name}");
        reply.ids().remove(0)
    }

    /// Creates a source through the API and returns it.
    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn create_source(&self, org: &str, name: &str, source_type: &str) -> Value {
        let type_id = self.source_type_id(source_type).await;
        let reply = self
            .post(
                "/sources",
                As::Org(org),
                &json!({ "name": name, "source_type_id": type_id }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Attaches an application straight in the database: the applications API is not part of
    /// this service yet, but the sub-collections read them.
    pub async fn attach_application(&self, source_id: &str, application_type_id: &str) {
        sqlx::query(
            "INSERT INTO applications (tenant_id, source_id, application_type_id) \
             SELECT tenant_id, id, $2 FROM sources WHERE id = $1",
        )
        .bind(source_id.parse::<i64>().unwrap())
        .bind(application_type_id.parse::<i64>().unwrap())
        .execute(&self.db)
        .await
        .unwrap();
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

fn is_ops(path: &str) -> bool {
    ["/health", "/readiness", "/metrics"]
        .iter()
        .any(|p| path.starts_with(p))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// One outbox row, as a consumer will see it on the topic.
#[derive(Debug, Clone)]
pub struct Outboxed {
    pub topic: String,
    pub event_type: String,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Value,
}

impl TestApp {
    /// Every outbox row, in the order they will be published.
    pub async fn outbox(&self) -> Vec<Outboxed> {
        let rows: Vec<(String, String, String, Value, String)> = sqlx::query_as(
            "SELECT topic, event_type, key, headers, payload::text FROM outbox ORDER BY id",
        )
        .fetch_all(&self.db)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(topic, event_type, key, headers, payload)| Outboxed {
                topic,
                event_type,
                key,
                headers: headers
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_owned(),
                            p[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                payload: serde_json::from_str(&payload).unwrap(),
            })
            .collect()
    }

    pub async fn event_types(&self) -> Vec<String> {
        self.outbox()
            .await
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    pub async fn clear_outbox(&self) {
        sqlx::query("DELETE FROM outbox")
            .execute(&self.db)
            .await
            .unwrap();
    }

    /// Creates an application of the named type through the API.
    pub async fn create_application(
        &self,
        org: &str,
        source_id: &str,
        app_type: &str,
        extra: Value,
    ) -> Value {
        let type_id = self.application_type_id(app_type).await;
        let reply = self
            .post(
                "/applications",
                As::Org(org),
                &json!({"source_id": source_id, "application_type_id": type_id, "extra": extra}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    pub async fn create_authentication(&self, org: &str, body: Value) -> Value {
        let reply = self.post("/authentications", As::Org(org), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }
}

pub const COST: &str = "/insights/platform/cost-management";

/// Captures every log line this test process writes (at debug level and above).
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .json()
            .try_init()
            .expect("the capture is the first subscriber of this test process");
        capture
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
