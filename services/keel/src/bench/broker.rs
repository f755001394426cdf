//! `keel bench broker`: the broker in this process on a scratch database, provisioning
//! PostgreSQL databases on the same server, measured from the request to the signed Ready
//! callback, beside the same `CREATE ROLE` + `CREATE DATABASE` issued directly (the floor).
//!
//! Phases, each at concurrency 1 and then `concurrency`: the floor (one connection per client,
//! the two statements per database), then the broker (each client asks for a database and
//! waits for its Ready callback before the next). Then `/v1/resources` and `/v1/status` read
//! by `readers` clients for `seconds` each, beside the direct SQL select of the same rows.
//! Everything made is deleted at the end: the broker's through deprovision, the floor's by
//! `DROP`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{Router, body::Bytes, routing::post};
use broker::{App, Config, signing::SigningKey};
use hdrhistogram::Histogram;
use keel_service::Shutdown;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::{ScratchDatabase, histogram, latency_line, report};

#[derive(Debug, Clone, clap::Args)]
pub struct BrokerBench {
    /// PostgreSQL server the broker keeps its state on and provisions on (a scratch database
    /// `keel_bench_broker` is created and dropped).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    /// Databases provisioned one at a time.
    #[arg(long, default_value_t = 30)]
    pub sequential: usize,
    /// Databases provisioned by `concurrency` clients.
    #[arg(long, default_value_t = 100)]
    pub concurrent: usize,
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Clients of the read phase.
    #[arg(long, default_value_t = 16)]
    pub readers: usize,
    /// Length of each read slice, in seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

const TOKEN: &str = "bench-token";
const NAMESPACE: &str = "bench";

/// Ready callbacks by deployment id, with when they arrived.
#[derive(Default)]
struct Arrivals {
    ready: Mutex<HashMap<String, Instant>>,
    deleted: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Arrivals {
    async fn wait(&self, id: &str, deleted: bool) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let map = if deleted { &self.deleted } else { &self.ready };
            if let Some(at) = map.lock().expect("not poisoned").get(id) {
                return Ok(*at);
            }
            tokio::time::timeout_at(deadline, changed)
                .await
                .with_context(|| format!("no callback for {id} within a minute"))?;
        }
    }
}

async fn receiver(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let app = Router::new().route(
        "/callback",
        post(move |body: Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let id = v["deploymentId"].as_str().unwrap_or_default().to_owned();
                    match v["phase"].as_str() {
                        Some("Ready") => {
                            arrivals.ready.lock().expect("not poisoned").insert(id, at)
                        }
                        Some("Deleted") => arrivals
                            .deleted
                            .lock()
                            .expect("not poisoned")
                            .insert(id, at),
                        _ => None,
                    };
                    arrivals.changed.notify_waiters();
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/callback", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

struct Bench {
    http: reqwest::Client,
    base: String,
    callback: String,
    arrivals: Arc<Arrivals>,
}

impl Bench {
    /// Asks for database `name` and waits for its Ready callback: the time between them.
    async fn provision(&self, name: &str) -> anyhow::Result<(String, Duration)> {
        let started = Instant::now();
        let answer: Value = self
            .http
            .post(format!("{}/v1/provision", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({
                "resourceType": "database", "resourceName": name, "namespace": NAMESPACE,
                "team": "bench", "callbackUrl": self.callback,
                "spec": {"engine": "postgresql", "size": "small"},
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = answer["deploymentId"]
            .as_str()
            .context("no deploymentId")?
            .to_owned();
        let ready = self.arrivals.wait(&id, false).await?;
        Ok((id, ready - started))
    }

    async fn deprovision(&self, id: &str, name: &str) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/v1/deprovision", self.base))
            .bearer_auth(TOKEN)
            .json(
                &json!({"deploymentId": id, "resourceType": "database", "resourceName": name,
                          "namespace": NAMESPACE, "callbackUrl": self.callback}),
            )
            .send()
            .await?
            .error_for_status()?;
        self.arrivals.wait(id, true).await?;
        Ok(())
    }
}

/// Runs `total` jobs from `clients` tasks; each job's duration goes into the histogram.
async fn spread<F, Fut>(
    total: usize,
    clients: usize,
    job: F,
) -> anyhow::Result<(Histogram<u64>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (job, next) = (job.clone(), next.clone());
        tasks.spawn(async move {
            let mut h = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= total {
                    return anyhow::Ok(h);
                }
                let took = job(i).await?;
                h.record(took.as_micros().max(1) as u64)?;
            }
        });
    }
    let mut all = histogram();
    while let Some(done) = tasks.join_next().await {
        all.add(done??)?;
    }
    Ok((all, started.elapsed()))
}

/// The floor: the two statements a database needs, on a connection per client.
async fn floor(
    admin: &PgPool,
    prefix: &str,
    total: usize,
    clients: usize,
) -> anyhow::Result<Histogram<u64>> {
    let verifier = broker::drivers::postgres::scram_verifier("bench-password");
    let (admin, prefix) = (admin.clone(), prefix.to_owned());
    let (h, _) = spread(total, clients, move |i| {
        let (admin, verifier, name) = (admin.clone(), verifier.clone(), format!("{prefix}{i}"));
        async move {
            let started = Instant::now();
            let mut conn = admin.acquire().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE ROLE \"{name}\" LOGIN CONNECTION LIMIT 10 PASSWORD '{verifier}'"
            )))
            .execute(&mut *conn)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\" OWNER \"{name}\""
            )))
            .execute(&mut *conn)
            .await?;
            Ok(started.elapsed())
        }
    })
    .await?;
    Ok(h)
}

/// Drops what the floor made from `clients` connections, each drop timed.
async fn drop_timed(
    admin: &PgPool,
    prefix: &str,
    clients: usize,
) -> anyhow::Result<Histogram<u64>> {
    let names: Arc<Vec<String>> = Arc::new(
        sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE rolname LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_all(admin)
            .await?,
    );
    let admin = admin.clone();
    let (h, _) = spread(names.len(), clients, move |i| {
        let (admin, names) = (admin.clone(), names.clone());
        async move {
            let started = Instant::now();
            let name = &names[i];
            let mut conn = admin.acquire().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{name}\"")))
                .execute(&mut *conn)
                .await?;
            Ok(started.elapsed())
        }
    })
    .await?;
    Ok(h)
}

async fn drop_floor(admin: &PgPool, prefix: &str) -> anyhow::Result<()> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE rolname LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_all(admin)
            .await?;
    for name in names {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(admin)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP ROLE IF EXISTS \"{name}\""
        )))
        .execute(admin)
        .await?;
    }
    Ok(())
}

/// Closed-loop reads of `url` from `clients` for `seconds`.
async fn read_load(
    http: &reqwest::Client,
    url: String,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let mut h = histogram();
            while Instant::now() < until {
                let t = Instant::now();
                http.get(&url)
                    .bearer_auth(TOKEN)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(h)
        });
    }
    let mut all = histogram();
    while let Some(done) = tasks.join_next().await {
        all.add(done??)?;
    }
    Ok((all.len(), started.elapsed(), all))
}

/// Closed-loop selects of one deployment's row from `clients` for `seconds`.
async fn select_load(
    db: &PgPool,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let db = db.clone();
        tasks.spawn(async move {
            let mut h = histogram();
            while Instant::now() < until {
                let t = Instant::now();
                sqlx::query(
                    "SELECT * FROM deployments \
                     WHERE namespace = $1 AND resource_name = 'c1-0' AND phase <> 'Deleted'",
                )
                .bind(NAMESPACE)
                .fetch_all(&db)
                .await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(h)
        });
    }
    let mut all = histogram();
    while let Some(done) = tasks.join_next().await {
        all.add(done??)?;
    }
    Ok((all.len(), started.elapsed(), all))
}

pub async fn broker(b: BrokerBench) -> anyhow::Result<()> {
    keel_service::tls::install_crypto_provider();
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_broker").await?;
    let admin = keel_db::connect(&scratch.url, "public", b.concurrency as u32 + 2).await?;
    let outcome = measure(&b, &scratch.url, &admin).await;
    let cleaned = drop_floor(&admin, "keel_bench_floor_").await;
    admin.close().await;
    scratch.remove()?;
    outcome.and(cleaned)
}

async fn measure(b: &BrokerBench, url: &str, admin: &PgPool) -> anyhow::Result<()> {
    drop_floor(admin, "keel_bench_floor_").await?;
    let mut config = Config::for_database(url);
    config.tokens = vec![keel_service::config::Secret::new(TOKEN.to_owned())];
    config.rate_limit_per_minute = u32::MAX;
    config.workers = 16;
    let (key, _) = SigningKey::generate()?;
    let app = App::build_with_key(&config, key).await?;
    let base = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::default();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let arrivals = Arc::new(Arrivals::default());
    let bench = Arc::new(Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        base: base.clone(),
        callback: receiver(arrivals.clone()).await?,
        arrivals,
    });

    #[expect(clippy::print_stdout)]
    {
        println!(
            "provision to Ready (PostgreSQL database and role on the same server; Ready = the signed callback's arrival)"
        );
    }
    let made = Arc::new(Mutex::new(Vec::new()));
    for (clients, total) in [(1, b.sequential), (b.concurrency, b.concurrent)] {
        let h = floor(
            admin,
            &format!("keel_bench_floor_c{clients}_"),
            total,
            clients,
        )
        .await?;
        latency_line(
            &format!("direct SQL, c={clients}"),
            "CREATE ROLE + CREATE DATABASE",
            &h,
        );
        let (bench2, made2) = (bench.clone(), made.clone());
        let (h, elapsed) = spread(total, clients, move |i| {
            let (bench, made) = (bench2.clone(), made2.clone());
            async move {
                let name = format!("c{clients}-{i}");
                let (id, took) = bench.provision(&name).await?;
                made.lock().expect("not poisoned").push((id, name));
                Ok(took)
            }
        })
        .await?;
        report(&format!("broker, c={clients}"), h.len(), 0, elapsed, &h);
        latency_line(
            &format!("broker, c={clients}"),
            "request to Ready callback",
            &h,
        );
    }

    // Reads over the namespace's resources.
    let count = made.lock().expect("not poisoned").len();
    let list = format!("{base}/v1/resources?namespace={NAMESPACE}&resourceName=c1-0");
    let (n, elapsed, h) = read_load(&bench.http, list, b.readers, b.seconds).await?;
    report("GET /v1/resources", n, 0, elapsed, &h);
    let first = made.lock().expect("not poisoned")[0].0.clone();
    let (n, elapsed, h) = read_load(
        &bench.http,
        format!("{base}/v1/status?id={first}"),
        b.readers,
        b.seconds,
    )
    .await?;
    report("GET /v1/status", n, 0, elapsed, &h);
    let (n, elapsed, h) = read_load(
        &bench.http,
        format!("{base}/v1/resources?namespace={NAMESPACE}"),
        b.readers,
        b.seconds,
    )
    .await?;
    report(&format!("list of {count}"), n, 0, elapsed, &h);
    // The floor of a read: the select behind `/v1/resources?resourceName=`, on a pool.
    let broker_db = keel_db::connect(url, "broker", b.readers as u32).await?;
    let (n, elapsed, h) = select_load(&broker_db, b.readers, b.seconds).await?;
    report("direct SQL select", n, 0, elapsed, &h);
    broker_db.close().await;

    // Deleting, directly: the floor's own databases, as many clients as the broker's.
    let h = drop_timed(admin, "keel_bench_floor_", b.concurrency).await?;
    latency_line(
        &format!("direct SQL, c={}", b.concurrency),
        "DROP DATABASE + DROP ROLE",
        &h,
    );

    // Everything the broker made goes through deprovision.
    let made: Vec<(String, String)> = std::mem::take(&mut *made.lock().expect("not poisoned"));
    let total = made.len();
    let made = Arc::new(made);
    let bench2 = bench.clone();
    let (h, elapsed) = spread(total, b.concurrency, move |i| {
        let (bench, made) = (bench2.clone(), made.clone());
        async move {
            let t = Instant::now();
            let (id, name) = &made[i];
            bench.deprovision(id, name).await?;
            Ok(t.elapsed())
        }
    })
    .await?;
    report("deprovision", h.len(), 0, elapsed, &h);
    shutdown.trigger();
    running.await??;
    Ok(())
}
