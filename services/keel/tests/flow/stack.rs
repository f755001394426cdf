//! sources-api and the listener on one test database, with what the flow tests need: REST
//! calls as a tenant, waiting for sync states, killing and restarting the listener, a proxy
//! that can make sources-api fail, and direct access to the outbox (the embedded log).

use std::{
    str::FromStr as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use keel_db::testing::TestDatabase;
use keel_service::{KafkaSettings, Shutdown, config::Secret};
use serde_json::{Value, json};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PSK: &str = "listener-psk";

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Kafka-protocol broker `scripts/test` starts; its absence is an error, not a skip.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect(
        "KAFKA_BROKERS is not set: run the tests through scripts/test, which starts a Kafka-protocol broker",
    )
}

/// How a stack is started.
pub struct Options {
    /// Start the listener with the stack (else call [`Stack::start_listener`]).
    pub listener: bool,
    /// Carry events over Kafka instead of the embedded log.
    pub kafka: bool,
    /// Put a proxy between the listener and sources-api that can fail requests.
    pub proxy: bool,
    /// Changes to the listener's configuration.
    pub tune: fn(&mut listener::Config),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listener: true,
            kafka: false,
            proxy: false,
            tune: |_| {},
        }
    }
}

pub struct Stack {
    pub sources: String,
    /// The listener's read API (of the listener started last).
    pub listener: String,
    /// Every schema on the search path: cost (listener), sources, keel_events.
    pub db: PgPool,
    pub http: reqwest::Client,
    pub proxy: Option<Proxy>,
    config: listener::Config,
    stop: Shutdown,
    sources_task: Option<JoinHandle<anyhow::Result<()>>>,
    running: Option<Running>,
    _database: TestDatabase,
}

/// A running listener.
struct Running {
    stop: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
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
        let key = Secret::new(keel_crypto::SecretBox::generate_key());
        let kafka = options.kafka.then(|| KafkaSettings::plain(kafka_brokers()));
        let mut sources_config = sources_api::Config::for_database(database.url.clone());
        sources_config.common.encryption_key = Some(key.clone());
        sources_config.common.kafka = kafka.clone();
        let group = format!("hccm-sources-{}", uuid::Uuid::new_v4().simple());
        if options.kafka {
            sources_config.status_consumer_group = format!("{group}-status");
        }
        let mut config = listener::Config::for_database(database.url.clone(), "");
        config.sources_psk = Some(Secret::new(PSK));
        config.credential_key = Some(listener::CredentialKey::Key(key));
        config.common.kafka = kafka;
        if options.kafka {
            // Other tests share the broker's topic: a group of our own starts at its beginning.
            config.consumer_group = group;
        }
        (options.tune)(&mut config);
        // The same wiring as `keel up`; the listener may then go through the proxy instead.
        keel::stack::link(&mut sources_config, &mut config);
        let sources = sources_api::App::build(&sources_config)
            .await
            .expect("sources-api builds");
        let sources_url = format!("http://{}", sources.local_addr());
        let stop = Shutdown::default();
        let sources_task = tokio::spawn(sources.run(stop.clone()));
        let proxy = if options.proxy {
            Some(Proxy::start(sources_url.clone(), stop.token().clone()).await)
        } else {
            None
        };
        config.sources_api_url = proxy
            .as_ref()
            .map_or(sources_url.clone(), |p| p.url.clone());
        let connect = PgConnectOptions::from_str(&database.url)
            .unwrap()
            .options([("search_path", "cost,sources,keel_events")]);
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await
            .unwrap();
        let mut stack = Self {
            sources: sources_url,
            listener: String::new(),
            db,
            // Bounded, so that a request nobody answers fails the test where it was made
            // instead of holding it until the harness's timeout.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            proxy,
            config,
            stop,
            sources_task: Some(sources_task),
            running: None,
            _database: database,
        };
        if options.listener {
            stack.start_listener().await;
        }
        stack
    }

    /// Starts a listener (again) on the stack's database.
    pub async fn start_listener(&mut self) {
        assert!(self.running.is_none(), "a listener is already running");
        let app = listener::App::build(&self.config)
            .await
            .expect("listener builds");
        self.listener = format!("http://{}", app.local_addr());
        let stop = self.stop.child();
        let task = tokio::spawn(app.run(stop.clone()));
        self.running = Some(Running { stop, task });
        // Ready means consuming: sources-api named the cost-management application type.
        self.wait_for("the listener to be ready", || async {
            self.readiness().await == 200
        })
        .await;
    }

    /// Kills the listener as a crash would: its tasks stop wherever they are, claims stay
    /// leased, nothing is released or committed on the way out.
    pub async fn kill_listener(&mut self) {
        let running = self.running.take().expect("a running listener");
        running.task.abort();
        let _ = running.task.await;
        // A dead process's sessions end with it: whatever they held (open transactions, row
        // and advisory locks) is rolled back and released.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'keel-cost'",
        )
        .execute(&self.db)
        .await
        .unwrap();
    }

    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops the listener and sources-api; the database stays for the test to read (their
    /// sessions have ended, so PostgreSQL's statistics hold everything they did).
    pub async fn halt(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.trigger();
            running.task.await.unwrap().unwrap();
        }
        self.stop.trigger();
        if let Some(task) = self.sources_task.take() {
            task.await.unwrap().unwrap();
        }
    }

    fn v31(&self, path: &str) -> String {
        format!("{}/api/sources/v3.1{path}", self.sources)
    }

    /// A sources-api call as a tenant (by org id); returns the status and the JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        org: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.v31(path))
            .header("x-rh-sources-org-id", org)
            .header("x-rh-sources-psk", PSK);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        let status = StatusCode::from_u16(reply.status().as_u16()).unwrap();
        let text = reply.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A sources-api write that must succeed with `expect`.
    pub async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        org: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (status, reply) = self.call(method.clone(), path, org, body).await;
        assert_eq!(status.as_u16(), expect, "{method} {path}: {reply}");
        reply
    }

    /// Pauses (or unpauses) an application through sources-api.
    pub async fn set_paused(&self, application_id: &str, org: &str, paused: bool) {
        let action = if paused { "pause" } else { "unpause" };
        self.write(
            reqwest::Method::POST,
            &format!("/applications/{application_id}/{action}"),
            org,
            None,
            204,
        )
        .await;
    }

    /// The listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.listener);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The status of the listener's `/readiness`.
    pub async fn readiness(&self) -> u16 {
        let url = format!("{}/readiness", self.listener);
        self.http.get(url).send().await.unwrap().status().as_u16()
    }

    pub async fn bulk_create(&self, org: &str, body: Value) -> Created {
        let reply = self
            .write(reqwest::Method::POST, "/bulk_create", org, Some(body), 201)
            .await;
        Created(reply)
    }

    /// A `bulk_create` by a caller with an account number as well as an org.
    pub async fn bulk_create_with_account(&self, org: &str, account: &str, body: Value) -> Created {
        let reply = self
            .http
            .post(self.v31("/bulk_create"))
            .header("x-rh-sources-org-id", org)
            .header("x-rh-sources-account-number", account)
            .header("x-rh-sources-psk", PSK)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        Created(reply.json().await.unwrap())
    }

    pub async fn get(&self, url: String, org: &str) -> Value {
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

    /// The listener's read API as a tenant.
    pub async fn read_api(&self, path: &str, org: &str) -> Value {
        self.get(
            format!("{}/api/cost-management/v1{path}", self.listener),
            org,
        )
        .await
    }

    /// The sync row's state and reason (`None` once the row is gone).
    pub async fn state(&self, source_id: i64) -> Option<(String, Option<String>)> {
        sqlx::query_as("SELECT state, state_reason FROM api_sources WHERE source_id = $1")
            .bind(source_id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    /// Waits until the source reaches `state`, printing the row when it does not.
    pub async fn wait_state(&self, source_id: i64, state: &str) {
        self.wait_for(&format!("source {source_id} in {state}"), || async {
            self.state(source_id).await.is_some_and(|(s, _)| s == state)
        })
        .await;
    }

    /// Waits until `check` holds, for at most 30 s; on timeout prints the queue.
    pub async fn wait_for<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check().await {
            if Instant::now() > deadline {
                let rows: Vec<(i64, String, Option<String>)> =
                    sqlx::query_as("SELECT source_id, state, state_reason FROM api_sources")
                        .fetch_all(&self.db)
                        .await
                        .unwrap();
                let ops: Vec<(i64, String, i32, Option<String>)> =
                    sqlx::query_as("SELECT source_id, kind, attempts, last_error FROM operations")
                        .fetch_all(&self.db)
                        .await
                        .unwrap();
                panic!("timed out waiting for {what}; sources {rows:?}; operations {ops:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the listener has read every event-stream row of the outbox (embedded log)
    /// and has no queued operation, twice in a row (a status report adds an event).
    pub async fn wait_idle(&self) {
        let quiet = std::cell::Cell::new(0);
        self.wait_for("the listener to settle", || {
            let settled = async {
                let behind: bool = sqlx::query_scalar(
                    "SELECT coalesce((SELECT max(id) FROM outbox WHERE topic = 'platform.sources.event-stream'), 0) \
                          > coalesce((SELECT outbox_id FROM consumer_positions \
                                      WHERE group_id = 'hccm-sources' AND topic = 'platform.sources.event-stream'), 0)",
                )
                .fetch_one(&self.db)
                .await
                .unwrap();
                let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM operations")
                    .fetch_one(&self.db)
                    .await
                    .unwrap();
                !behind && queued == 0
            };
            let quiet = &quiet;
            async move {
                quiet.set(if settled.await { quiet.get() + 1 } else { 0 });
                quiet.get() >= 3
            }
        })
        .await;
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Status reports sources-api received for an application: each PATCH records one
    /// `Application.update` event.
    pub async fn status_reports(&self, application_id: &str) -> i64 {
        self.status_reports_after(application_id, 0).await
    }

    /// Status reports recorded after outbox row `after`.
    pub async fn status_reports_after(&self, application_id: &str, after: i64) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = 'Application.update' \
               AND payload::jsonb ->> 'id' = $1 AND id > $2",
        )
        .bind(application_id)
        .bind(after)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// The application's availability as sources-api holds it.
    pub async fn availability(&self, application_id: &str, org: &str) -> (String, String) {
        let app = self
            .get(self.v31(&format!("/applications/{application_id}")), org)
            .await;
        (
            app["availability_status"].as_str().unwrap_or("").to_owned(),
            app["availability_status_error"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    }

    /// Waits until sources-api holds `status` for the application; returns its error text.
    pub async fn wait_availability(&self, application_id: &str, org: &str, status: &str) -> String {
        let error = std::cell::RefCell::new(String::new());
        self.wait_for(&format!("application {application_id} {status}"), || {
            let error = &error;
            async move {
                let (s, e) = self.availability(application_id, org).await;
                *error.borrow_mut() = e;
                s == status
            }
        })
        .await;
        error.into_inner()
    }
}

/// A bulk_create reply.
pub struct Created(pub Value);

impl Created {
    fn id(&self, kind: &str, n: usize) -> String {
        self.0[kind][n]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {kind}[{n}] in {}", self.0))
            .to_owned()
    }

    pub fn source_id(&self) -> i64 {
        self.id("sources", 0).parse().unwrap()
    }

    pub fn uid(&self) -> String {
        self.0["sources"][0]["uid"].as_str().unwrap().to_owned()
    }

    pub fn app_id(&self) -> String {
        self.id("applications", 0)
    }

    pub fn auth_id(&self) -> String {
        self.id("authentications", 0)
    }
}

/// An AWS source with a complete cost-management application and role ARN.
pub fn aws(name: &str, arn: &str) -> Value {
    json!({
        "sources": [{"name": name, "source_type_name": "amazon"}],
        "applications": [{"application_type_name": "cost-management", "source_name": name,
                          "extra": {"bucket": "cost-bucket", "bucket_region": "eu-west-1"}}],
        "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                             "authtype": "arn", "username": arn, "extra": {"external_id": "ext-1"}}]
    })
}

/// Which requests the proxy fails.
#[derive(Debug, Clone, PartialEq)]
pub enum Failing {
    Nothing,
    Everything,
    /// Requests about this source id (its path or a `filter[source_id]`), answered 400: a
    /// failure that will not heal.
    Refused(i64),
}

/// A loopback HTTP proxy in front of sources-api that fails the requests it is told to (503
/// for an outage, 400 for [`Failing::Refused`]) and forwards the rest.
pub struct Proxy {
    pub url: String,
    failing: Arc<Mutex<Failing>>,
    /// Requests it failed.
    pub failed: Arc<Mutex<u64>>,
    /// Requests it forwarded: method, path and query.
    forwarded: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    failing: Arc<Mutex<Failing>>,
    failed: Arc<Mutex<u64>>,
    forwarded: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(upstream: String, stop: CancellationToken) -> Self {
        let failing = Arc::new(Mutex::new(Failing::Nothing));
        let failed = Arc::new(Mutex::new(0));
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream,
            client: reqwest::Client::new(),
            failing: failing.clone(),
            failed: failed.clone(),
            forwarded: forwarded.clone(),
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Self {
            url,
            failing,
            failed,
            forwarded,
        }
    }

    /// Forwarded requests from number `from` on (see [`Proxy::forwarded_count`]).
    pub fn forwarded_since(&self, from: usize) -> Vec<String> {
        self.forwarded.lock().unwrap()[from..].to_vec()
    }

    pub fn forwarded_count(&self) -> usize {
        self.forwarded.lock().unwrap().len()
    }

    pub fn fail(&self, what: Failing) {
        *self.failing.lock().unwrap() = what;
    }

    pub fn failed(&self) -> u64 {
        *self.failed.lock().unwrap()
    }
}

fn concerns(uri: &axum::http::Uri, source_id: i64) -> bool {
    let id = source_id.to_string();
    let path_hit = uri
        .path()
        .split('/')
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "sources" && w[1] == id);
    let query_hit = uri.query().is_some_and(|q| {
        let decoded = q.replace("%5B", "[").replace("%5D", "]");
        decoded
            .split('&')
            .any(|pair| pair == format!("filter[source_id]={id}"))
    });
    path_hit || query_hit
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let fail = match &*state.failing.lock().unwrap() {
        Failing::Nothing => None,
        Failing::Everything => Some(StatusCode::SERVICE_UNAVAILABLE),
        Failing::Refused(id) => concerns(request.uri(), *id).then_some(StatusCode::BAD_REQUEST),
    };
    if let Some(status) = fail {
        *state.failed.lock().unwrap() += 1;
        let error = json!({"errors": [{"status": status.as_str(), "detail": "injected failure"}]});
        return (status, axum::Json(error)).into_response();
    }
    let (parts, body) = request.into_parts();
    state.forwarded.lock().unwrap().push(format!(
        "{} {}",
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    ));
    let url = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut upstream = state.client.request(method, url).body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let reply = upstream.send().await.unwrap();
    let mut response = Response::builder().status(reply.status().as_u16());
    for (name, value) in reply.headers() {
        response = response.header(name.as_str(), value.as_bytes());
    }
    response
        .body(Body::from(reply.bytes().await.unwrap()))
        .unwrap()
}
