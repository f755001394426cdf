//! `keel bench sources`: load on a running sources-api, measured, beside PostgreSQL's own
//! single-row insert speed (pgbench) at the same concurrency on the same server.
//!
//! `rounds` times: `POST /sources` from `concurrency` workers for `seconds` (closed loop), then
//! pgbench inserting one row per transaction with the same number of clients for as long. The
//! slices alternate so that both see the machine in the same state (a shared virtual machine's
//! speed drifts by half within minutes); the ratio is of the totals. Then `GET /sources` at a
//! fixed rate (open loop: latency is measured from when each request was due, so a stalled
//! server cannot hide its queue).

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::sync::Mutex;

use super::{ScratchDatabase, histogram, psql, report};

#[derive(Debug, Clone, clap::Args)]
pub struct SourcesBench {
    /// Base URL of the running sources-api.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Pre-shared key for the writes.
    #[arg(long, env = "BENCH_PSK", default_value = "dev-psk")]
    pub psk: String,
    /// Concurrent writers (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Length of each slice, in seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Rounds of a POST slice followed by a pgbench slice.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Request rate of the GET phase.
    #[arg(long, default_value_t = 1000)]
    pub get_rate: u64,
    /// Sources of the tenant the GET phase lists (its first page of 100 is read).
    #[arg(long, default_value_t = 100)]
    pub list_size: usize,
    /// PostgreSQL server for the pgbench baseline (a scratch database `keel_bench` is used).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
}

pub async fn run(b: SourcesBench) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency * 4)
        .build()?;
    let api = format!("{}/api/sources/v3.1", b.url.trim_end_matches('/'));
    let org = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let types: serde_json::Value = client
        .get(format!("{api}/source_types?filter[name]=amazon"))
        .send()
        .await
        .context("is sources-api running at --url?")?
        .json()
        .await?;
    let amazon = types["data"][0]["id"]
        .as_str()
        .context("no amazon source type")?
        .to_owned();

    // POST /sources and pgbench, alternating.
    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench").await?;
    psql(
        &scratch.url,
        "CREATE TABLE rows (id bigserial PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    )?;
    let (mut posted, mut inserted) = (0.0, 0.0);
    for round in 1..=b.rounds.max(1) {
        posted += post_slice(&b, &api, &org, &amazon, round).await?;
        let tps = pgbench(&b, &scratch.url)?;
        #[expect(clippy::print_stdout)]
        {
            println!(
                "pgbench insert #{round} {tps:>9.1} tx/s  ({} clients, one INSERT per transaction)",
                b.concurrency
            );
        }
        inserted += tps;
    }
    scratch.remove()?;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "POST / pgbench       {:>9.1} %  (mean {:.1} req/s beside {:.1} tx/s)",
            100.0 * posted / inserted,
            posted / f64::from(b.rounds.max(1)),
            inserted / f64::from(b.rounds.max(1))
        );
    }

    // GET /sources at a fixed rate: the first page of a tenant with `list_size`
    // sources (the POST phase's tenant has far more than any real one).
    let list_org = format!("bench-list-{}", uuid::Uuid::new_v4().simple());
    for n in 0..b.list_size {
        let r = client
            .post(format!("{api}/sources"))
            .header("x-rh-sources-org-id", &list_org)
            .header("x-rh-sources-psk", &b.psk)
            .json(&json!({"name": format!("list-{n}"), "source_type_id": amazon}))
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("seeding the list tenant failed: {}", r.status());
        }
    }
    let org = list_org;
    let hist = Arc::new(Mutex::new(histogram()));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let interval = Duration::from_secs_f64(1.0 / b.get_rate as f64);
    let total = b.get_rate * b.seconds;
    let start = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, api, org) = (client.clone(), api.clone(), org.clone());
        let (hist, ok, failed) = (hist.clone(), ok.clone(), failed.clone());
        requests.spawn(async move {
            let res = client
                .get(format!("{api}/sources"))
                .header("x-rh-sources-org-id", &org)
                .send()
                .await;
            let good = match res {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if good {
                hist.lock()
                    .await
                    .record(due.elapsed().as_micros() as u64)
                    .ok();
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    report(
        &format!("GET /sources@{}", b.get_rate),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed(),
        &*hist.lock().await,
    );

    Ok(())
}

/// One slice of `POST /sources` from `b.concurrency` workers; answers the rate. Each worker
/// sends its requests one after another on a connection of its own, with a bare HTTP/1
/// client and the request's constant parts made once: on a machine of two cores the load
/// generator's own work is taken from the server, and pgbench's client is as light.
async fn post_slice(
    b: &SourcesBench,
    api: &str,
    org: &str,
    amazon: &str,
    round: u32,
) -> anyhow::Result<f64> {
    let target = Target::parse(&format!("{api}/sources"), org, &b.psk)?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(histogram()));
    let deadline = Instant::now() + Duration::from_secs(b.seconds);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..b.concurrency {
        let (target, amazon) = (target.clone(), amazon.to_owned());
        let (done, errors, hist) = (done.clone(), errors.clone(), hist.clone());
        workers.spawn(async move {
            let mut sender = target.connect().await?;
            let mut local = histogram();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = format!(
                    r#"{{"name":"bench-{round}-{worker}-{n}","source_type_id":"{amazon}"}}"#
                );
                let t = Instant::now();
                match target.post(&mut sender, body).await {
                    Ok(201) => {
                        local.record(t.elapsed().as_micros() as u64).ok();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        sender = target.connect().await?;
                    }
                }
            }
            hist.lock().await.add(&local).ok();
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker??;
    }
    Ok(report(
        &format!("POST /sources #{round}"),
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
        &*hist.lock().await,
    ))
}

/// Where the POST slices send their requests, and the headers every request carries.
#[derive(Clone)]
struct Target {
    address: String,
    uri: http::Uri,
    headers: http::HeaderMap,
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

impl Target {
    fn parse(url: &str, org: &str, psk: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse()?;
        let authority = uri.authority().context("the URL names no host")?.clone();
        if uri.scheme_str() != Some("http") {
            bail!("the sources bench speaks plain HTTP; --url must start with http://");
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, authority.as_str().parse()?);
        headers.insert(http::header::CONTENT_TYPE, "application/json".parse()?);
        headers.insert("x-rh-sources-org-id", org.parse()?);
        headers.insert("x-rh-sources-psk", psk.parse()?);
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Ok(Self {
            address,
            uri,
            headers,
        })
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let stream = tokio::net::TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends one create and reads the whole answer; returns its status.
    async fn post(&self, sender: &mut Sender, body: String) -> anyhow::Result<u16> {
        use http_body_util::BodyExt as _;
        let mut request = http::Request::post(self.uri.clone())
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        *request.headers_mut() = self.headers.clone();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// pgbench's single-row inserts into `rows` of the scratch database, for `b.seconds`.
fn pgbench(b: &SourcesBench, url: &str) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("keel-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO rows (name) VALUES ('bench-' || :client_id);\n",
    )?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &b.concurrency.to_string(),
            "-j",
            &b.concurrency.min(4).to_string(),
        ])
        .args(["-T", &b.seconds.to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .context("pgbench is needed for the baseline (Debian: postgresql-contrib)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    match tps {
        Some(tps) => Ok(tps),
        None => bail!(
            "could not read pgbench's tps from:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
