//! SIGTERM, as `docker stop` and a Kubernetes rollout send it: `keel up`, each standalone
//! binary, and a binary running as PID 1 of its own PID namespace (as in its container) stop
//! accepting, answer the request in flight, commit the consumer's position, and exit 0 within
//! the drain deadline.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use keel_db::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{free_port, get_json, server_url, workspace_bin};
use tokio::process::{Child, Command};

const PSK: &str = "shutdown-psk";
const DRAIN_SECONDS: u64 = 15;

async fn database() -> (TestDatabase, PgPool) {
    keel_service::tls::install_crypto_provider();
    let database = TestDatabase::create(&server_url(), &[])
        .await
        .expect("a test database (is PostgreSQL running?)");
    let db = keel_db::connect(&database.url, "sources,cost,keel_events", 3)
        .await
        .unwrap();
    (database, db)
}

fn key() -> String {
    keel_crypto::SecretBox::generate_key()
}

/// A process started with exactly `env` (and nothing inherited but PATH).
fn spawn(program: &str, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command.spawn().expect("the binary starts")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/readiness")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} did not become ready within a minute");
}

fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
}

/// Creates a source through sources-api at `base`; returns its id.
async fn create_source(http: &reqwest::Client, base: &str, org: &str, name: &str) -> String {
    let url = format!("{base}/api/sources/v3.1/source_types?filter[name]=amazon");
    let types = get_json(http, &url, None).await;
    let reply: Value = http
        .post(format!("{base}/api/sources/v3.1/sources"))
        .header("x-rh-sources-org-id", org)
        .header("x-rh-sources-psk", PSK)
        .json(&json!({"name": name, "source_type_id": types["data"][0]["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["id"].as_str().expect("a created source").to_owned()
}

/// Sends SIGTERM to `pid` while a PATCH of a source waits on a row lock the test holds, then
/// lets the PATCH go: the answer must arrive (200) and the process exit 0 before the drain
/// deadline. `child` is what the test waits on (the process itself, or `unshare` around it).
async fn in_flight_request_survives_sigterm(
    db: &PgPool,
    base: &str,
    pid: u32,
    child: &mut Child,
) -> Duration {
    let http = reqwest::Client::new();
    let org = "shutdown-org";
    let id = create_source(&http, base, org, "in flight").await;
    let mut lock = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sources.sources WHERE id = $1::bigint FOR UPDATE")
        .bind(&id)
        .execute(&mut *lock)
        .await
        .unwrap();
    let patch = tokio::spawn({
        let (http, url) = (
            http.clone(),
            format!("{base}/api/sources/v3.1/sources/{id}"),
        );
        async move {
            http.patch(url)
                .header("x-rh-sources-org-id", org)
                .header("x-rh-sources-psk", PSK)
                .json(&json!({"name": "renamed while stopping"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // The PATCH is in flight once its session waits on the lock.
    for _ in 0..100 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    sigterm(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process waits for the request in flight"
    );
    lock.rollback().await.unwrap();
    assert_eq!(
        patch.await.unwrap().expect("the PATCH is answered"),
        200,
        "the request in flight is answered"
    );
    let status = tokio::time::timeout(Duration::from_secs(DRAIN_SECONDS), child.wait())
        .await
        .expect("the process exits within the drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let renamed: String =
        sqlx::query_scalar("SELECT name FROM sources.sources WHERE id = $1::bigint")
            .bind(&id)
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(
        renamed, "renamed while stopping",
        "the answered write committed"
    );
    stopping.elapsed()
}

/// The listener's stored position on the event stream.
async fn position(db: &PgPool) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT outbox_id FROM keel_events.consumer_positions \
         WHERE group_id = 'hccm-sources' AND topic = 'platform.sources.event-stream'",
    )
    .fetch_optional(db)
    .await
    .unwrap()
}

/// Waits until the listener's position reaches the last event written; returns it.
async fn wait_consumed(db: &PgPool) -> i64 {
    let last: i64 = sqlx::query_scalar(
        "SELECT max(id) FROM sources.outbox WHERE topic = 'platform.sources.event-stream'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    for _ in 0..400 {
        if position(db).await == Some(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the listener did not consume up to {last}");
}

fn sources_env(database: &TestDatabase, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database.url.clone()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("METRICS_PORT", free_port().to_string()),
        ("SOURCES_PSKS", PSK.to_owned()),
        ("ENCRYPTION_KEY", key()),
        ("SHUTDOWN_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
    ]
}

#[tokio::test]
async fn sources_api_answers_its_request_in_flight_and_exits_0_on_sigterm() {
    let (database, db) = database().await;
    let port = free_port();
    let bin = workspace_bin("sources-api");
    let mut child = spawn(bin.to_str().unwrap(), &[], &sources_env(&database, port));
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base).await;
    let pid = child.id().unwrap();
    in_flight_request_survives_sigterm(&db, &base, pid, &mut child).await;
}

#[tokio::test]
async fn as_pid_1_of_its_own_namespace_sources_api_still_drains_on_sigterm() {
    // PID 1 gets no default action for SIGTERM: without a handler it would ignore the signal
    // and this test would time out, as `docker stop` would wait out its grace period.
    let (database, db) = database().await;
    let port = free_port();
    let bin = workspace_bin("sources-api");
    let mut unshare = spawn(
        "unshare",
        &["--pid", "--fork", "--kill-child", bin.to_str().unwrap()],
        &sources_env(&database, port),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base).await;
    let outer = unshare.id().unwrap();
    let children = std::process::Command::new("pgrep")
        .args(["-P", &outer.to_string()])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&children.stdout)
        .trim()
        .parse()
        .expect("unshare's child: the binary, PID 1 of its namespace");
    in_flight_request_survives_sigterm(&db, &base, pid, &mut unshare).await;
}

#[tokio::test]
async fn keel_up_drains_both_services_and_commits_the_listener_position_on_sigterm() {
    let (database, db) = database().await;
    let (port, listener_port, broker_port) = (free_port(), free_port(), free_port());
    let data_dir = std::env::temp_dir().join(format!("keel-up-{}", uuid::Uuid::new_v4().simple()));
    let mut child = spawn(
        env!("CARGO_BIN_EXE_keel"),
        &["up"],
        &[
            ("DATABASE_URL", database.url.clone()),
            ("PORT", port.to_string()),
            ("LISTENER_PORT", listener_port.to_string()),
            ("BROKER_PORT", broker_port.to_string()),
            ("SOURCES_PSKS", PSK.to_owned()),
            ("KEEL_DATA_DIR", data_dir.to_string_lossy().into_owned()),
            ("SHUTDOWN_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    wait_ready(&http, &format!("http://127.0.0.1:{listener_port}")).await;
    // The broker runs too, with a token and a signing key `up` made (owner-only files).
    let broker = format!("http://127.0.0.1:{broker_port}");
    wait_ready(&http, &broker).await;
    for file in ["broker.token", "broker.key"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let token = std::fs::read_to_string(data_dir.join("broker.token")).unwrap();
    let resources = format!("{broker}/v1/resources?namespace=up");
    let listed = http
        .get(&resources)
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(http.get(&resources).send().await.unwrap().status(), 401);
    for n in 0..5 {
        create_source(&http, &base, "up-org", &format!("s{n}")).await;
    }
    let consumed = wait_consumed(&db).await;
    let pid = child.id().unwrap();
    in_flight_request_survives_sigterm(&db, &base, pid, &mut child).await;
    // Whether or not the listener read the rename's event (it committed after the signal),
    // its stored position never falls behind what it had consumed.
    assert!(position(&db).await.is_some_and(|at| at >= consumed));
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test]
async fn the_listener_binary_exits_0_on_sigterm_with_its_position_committed() {
    let (database, db) = database().await;
    let port = free_port();
    let sources_bin = workspace_bin("sources-api");
    let key = key();
    let mut env = sources_env(&database, port);
    env.retain(|(k, _)| *k != "ENCRYPTION_KEY");
    env.push(("ENCRYPTION_KEY", key.clone()));
    let mut sources = spawn(sources_bin.to_str().unwrap(), &[], &env);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let listener_port = free_port();
    let mut listener = spawn(
        workspace_bin("listener").to_str().unwrap(),
        &[],
        &[
            ("DATABASE_URL", database.url.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", listener_port.to_string()),
            ("METRICS_PORT", free_port().to_string()),
            ("SOURCES_API_URL", base.clone()),
            ("SOURCES_PSK", PSK.to_owned()),
            ("ENCRYPTION_KEY", key),
            ("SHUTDOWN_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
        ],
    );
    let listener_base = format!("http://127.0.0.1:{listener_port}");
    wait_ready(&http, &listener_base).await;
    for n in 0..5 {
        create_source(&http, &base, "listener-org", &format!("s{n}")).await;
    }
    let last = wait_consumed(&db).await;
    let stopping = Instant::now();
    sigterm(listener.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(DRAIN_SECONDS), listener.wait())
        .await
        .expect("the listener exits within the drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(stopping.elapsed() < Duration::from_secs(DRAIN_SECONDS));
    assert_eq!(position(&db).await, Some(last), "the position is committed");
    sigterm(sources.id().unwrap());
    assert!(sources.wait().await.unwrap().success());
}

/// `KEEL_SERVICES=sources-api` runs sources-api alone, to serve another listener (Koku's):
/// the listener's port stays free, its schema is never made, nothing joins its consumer group,
/// and SIGTERM still ends the run with 0.
#[tokio::test]
async fn keel_up_runs_only_the_services_chosen() {
    let (database, db) = database().await;
    let (port, listener_port) = (free_port(), free_port());
    let data_dir = std::env::temp_dir().join(format!("keel-up-{}", uuid::Uuid::new_v4().simple()));
    let mut child = spawn(
        env!("CARGO_BIN_EXE_keel"),
        &["up"],
        &[
            ("KEEL_SERVICES", "sources-api".to_owned()),
            ("DATABASE_URL", database.url.clone()),
            ("PORT", port.to_string()),
            ("LISTENER_PORT", listener_port.to_string()),
            ("SOURCES_PSKS", PSK.to_owned()),
            ("KEEL_DATA_DIR", data_dir.to_string_lossy().into_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    create_source(&http, &base, "alone-org", "s").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", listener_port)).is_err(),
        "nothing listens on the listener's port"
    );
    let cost: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cost')")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!cost, "the listener's schema was never made");
    assert_eq!(position(&db).await, None, "no hccm-sources position");
    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(DRAIN_SECONDS), child.wait())
        .await
        .expect("keel up exits within the drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test]
async fn the_broker_binary_exits_0_on_sigterm() {
    let (database, _db) = database().await;
    let port = free_port();
    let mut broker = spawn(
        workspace_bin("broker").to_str().unwrap(),
        &[],
        &[
            ("DATABASE_URL", database.url.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("METRICS_PORT", "0".to_owned()),
            ("ENCRYPTION_KEY", key()),
            ("BROKER_TOKENS", "t".to_owned()),
            (
                "BROKER_PRIVATE_KEY",
                broker::signing::SigningKey::generate().unwrap().1,
            ),
            ("SHUTDOWN_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
        ],
    );
    wait_ready(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    let stopping = Instant::now();
    sigterm(broker.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(DRAIN_SECONDS), broker.wait())
        .await
        .expect("the broker exits within the drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(stopping.elapsed() < Duration::from_secs(DRAIN_SECONDS));
}
