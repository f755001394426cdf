//! What the broker tests share: a broker on port 0 over a test database, a callback
//! receiver on loopback, authenticated calls, polling.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use base64::Engine as _;
use broker::{App, Config, signing::SigningKey};
use keel_db::testing::TestDatabase;
use keel_service::Shutdown;
use serde_json::{Value, json};
use sqlx::PgPool;

pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A manager's callback endpoint on loopback that records what it receives.
pub async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let (url, got, _) = receiver_failing(0).await;
    (url, got)
}

/// A callback endpoint that answers 500 while `failures` (the third value, settable) is above
/// zero, counting it down, and records what it accepts.
pub async fn receiver_failing(
    failures: usize,
) -> (String, Arc<Mutex<Vec<Received>>>, Arc<AtomicUsize>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let failing = Arc::new(AtomicUsize::new(failures));
    let app = Router::new().route(
        "/v1/callback",
        post({
            let (got, failing) = (got.clone(), failing.clone());
            move |headers: HeaderMap, body: Bytes| {
                let (got, failing) = (got.clone(), failing.clone());
                async move {
                    let fail = failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if fail {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    got.lock().unwrap().push(Received { headers, body });
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, failing)
}

/// The phases of the callbacks received for `id`, in arrival order.
pub fn phases_of(received: &Mutex<Vec<Received>>, id: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            (v["deploymentId"] == id).then(|| v["phase"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

pub async fn database() -> TestDatabase {
    keel_service::tls::install_crypto_provider();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    TestDatabase::create(&url, &[broker::OWNER])
        .await
        .expect("a test database (is PostgreSQL running?)")
}

pub struct Running {
    pub base: String,
    /// The operations port's base URL, when one is configured.
    pub ops: Option<String>,
    pub key: Vec<u8>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A broker with a fresh signing key.
pub async fn start(config: &Config) -> Running {
    let (key, _) = SigningKey::generate().unwrap();
    run(config, key).await
}

/// A broker with the configuration's signing key.
pub async fn start_configured(config: &Config) -> Running {
    let key = SigningKey::parse(config.signing_key.as_ref().unwrap().expose()).unwrap();
    run(config, key).await
}

async fn run(config: &Config, key: SigningKey) -> Running {
    let public = key.public_key().to_vec();
    let app = App::build_with_key(config, key).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let ops = app.ops_addr().map(|a| format!("http://{a}"));
    let shutdown = Shutdown::default();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Running {
        base,
        ops,
        key: public,
        shutdown,
        task,
    }
}

impl Running {
    /// A broker running elsewhere (a child process), reached at `base`.
    pub fn remote(base: String) -> Self {
        Self {
            base,
            ops: None,
            key: Vec::new(),
            shutdown: Shutdown::default(),
            task: tokio::spawn(async { Ok(()) }),
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = client().request(method, url).bearer_auth("test-token");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// What the broker's `/metrics` says now.
pub async fn metrics_text(app: &Running) -> String {
    let answer = client()
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    answer.text().await.unwrap()
}

pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub async fn phase(base: &str, id: &str) -> String {
    let (_, s) = call(
        reqwest::Method::GET,
        format!("{base}/v1/status?id={id}"),
        None,
    )
    .await;
    s["phase"].as_str().unwrap_or_default().to_owned()
}

/// Whether `password` produces the SCRAM verifier PostgreSQL stores for `role` (what the
/// server checks at login; this machine's pg_hba trusts loopback, so a login proves nothing).
pub async fn password_matches(admin: &PgPool, role: &str, password: &str) -> bool {
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(admin)
        .await
        .unwrap();
    let (head, _) = stored.rsplit_once('$').unwrap();
    let (_, params) = head.split_once('$').unwrap();
    let (iterations, salt) = params.split_once(':').unwrap();
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .unwrap();
    broker::drivers::postgres::scram_verifier_with(password, &salt, iterations.parse().unwrap())
        == stored
}

/// Asks for a database and answers its deployment id (202 expected).
pub async fn provision(
    app: &Running,
    namespace: &str,
    name: &str,
    callback: &str,
    spec: Value,
) -> String {
    let request = json!({
        "resourceType": "database", "resourceName": name, "namespace": namespace,
        "team": "platform-team", "callbackUrl": callback, "spec": spec,
    });
    request_provision(app, request).await
}

/// Sends a provision request and answers its deployment id (202 expected).
pub async fn request_provision(app: &Running, request: Value) -> String {
    let (status, accepted) = call(
        reqwest::Method::POST,
        format!("{}/v1/provision", app.base),
        Some(request),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    accepted["deploymentId"].as_str().unwrap().to_owned()
}

/// Sends a provision request and waits until the deployment is Ready; answers its id.
pub async fn provision_ready(app: &Running, request: Value) -> String {
    let id = request_provision(app, request).await;
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    id
}

/// The credentials of the namespace's resource `name` (its `<name>-credentials` secret).
pub async fn take_secret(app: &Running, namespace: &str, name: &str) -> Value {
    let (status, secret) = call(
        reqwest::Method::GET,
        format!(
            "{}/v1/secrets/{name}-credentials?namespace={namespace}",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    secret
}

/// Polls the resource until `check` holds; answers what it saw last.
pub async fn wait_resource(
    app: &Running,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = resource(app, ns, name).await;
        if check(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a drift check to report a repair of the resource; answers the resource.
pub async fn repaired(app: &Running, ns: &str, name: &str) -> Value {
    wait_resource(app, ns, name, "the repair", |r| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Drift repaired: "))
    })
    .await
}

/// Deprovisions the deployment and waits until it is Deleted.
pub async fn deprovision(
    app: &Running,
    id: &str,
    kind: &str,
    name: &str,
    ns: &str,
    callback: &str,
) {
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/deprovision", app.base),
        Some(
            json!({"deploymentId": id, "resourceType": kind, "resourceName": name,
                    "namespace": ns, "callbackUrl": callback}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("Deleted", || async {
        phase(&app.base, id).await == "Deleted"
    })
    .await;
}

/// A broker over `db` that checks every Ready resource each second, with `targets` set.
pub async fn watching(url: &str, targets: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::for_database(url);
    config.observe_interval = Duration::from_secs(1);
    targets(&mut config);
    start(&config).await
}

/// The namespace's resource `name` as `/v1/resources` shows it.
pub async fn resource(app: &Running, namespace: &str, name: &str) -> Value {
    let (status, listed) = call(
        reqwest::Method::GET,
        format!(
            "{}/v1/resources?namespace={namespace}&resourceName={name}",
            app.base
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    listed["resources"][0].clone()
}

/// Drops what a test provisioned on the PostgreSQL server of `url` in namespace `ns` (a test
/// that fails leaves it to `scripts/test`'s sweep).
pub async fn forget(url: &str, ns: &str) {
    let admin = keel_db::connect(url, "public", 1).await.unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)")
            .bind(format!("{ns}_"))
            .fetch_all(&admin)
            .await
            .unwrap();
    for name in names {
        for statement in [
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS \"{name}\""),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&admin)
                .await
                .unwrap();
        }
    }
    admin.close().await;
}
