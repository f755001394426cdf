//! `keel chaos`: the spine (sources-api, the Kafka broker, the listener) under a workload
//! while its processes are SIGKILLed at random moments and started again; then, once quiet,
//! proof that nothing acknowledged was lost and every provider is there exactly once.
//! `scripts/chaos` starts PostgreSQL and a local broker under a restart loop, and runs it.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use keel_service::KafkaSettings;
use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tokio_util::sync::CancellationToken;

mod member;
mod processes;
mod report;
mod workload;

use processes::{Broker, Part, Service, Settings, wait_healthy};
use workload::{Api, Tally, Tenant};

use crate::bench::ScratchDatabase;

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// PostgreSQL server (a scratch database `keel_chaos` is created, and dropped after a
    /// run that holds).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    /// The local Kafka broker.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// A file holding the broker's pid; its supervisor starts it again when it dies. Without
    /// it the broker is not restarted.
    #[arg(long, env = "KEEL_CHAOS_BROKER_PID_FILE")]
    pub broker_pid_file: Option<PathBuf>,
    /// The faults (comma-separated): SIGKILL of sources-api, the listener or the broker (only
    /// with --broker-pid-file), or a rebalance of the listener's group.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Part::SourcesApi, Part::Listener, Part::Broker, Part::Rebalance]
    )]
    pub faults: Vec<Part>,
    /// How long the workload runs at most.
    #[arg(long, default_value_t = 90)]
    pub seconds: u64,
    /// Operations the workload makes at most.
    #[arg(long, default_value_t = 4000)]
    pub operations: u64,
    /// Operations started per second, over all clients (spread over the run, so kills land
    /// throughout it).
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Concurrent clients, each with tenants of its own.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Tenants (orgs).
    #[arg(long, default_value_t = 40)]
    pub orgs: usize,
    /// Mean seconds between faults.
    #[arg(long, default_value_t = 4.0)]
    pub fault_every: f64,
    /// How long to wait for quiet after the workload.
    #[arg(long, default_value_t = 300)]
    pub quiet_seconds: u64,
    /// Seed of the workload and the kills (random when not given; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the processes' output goes.
    #[arg(long, default_value = "target/chaos")]
    pub log_dir: PathBuf,
}

const CLIENT_PSK: &str = "keel-chaos-client";
const GROUP: &str = "hccm-sources";

/// Counts of what the chaos did.
#[derive(Debug, Default)]
struct Chaos {
    kills: Vec<(Part, Duration)>,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.orgs < args.clients || args.rate <= 0.0 {
        bail!("--clients and --rate must be above 0, and --orgs at least --clients");
    }
    let seed = args
        .seed
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    std::fs::create_dir_all(&args.log_dir)
        .with_context(|| format!("creating {}", args.log_dir.display()))?;
    let scratch = ScratchDatabase::create(&args.database_url, "keel_chaos").await?;
    let settings = Settings {
        database_url: scratch.url.clone(),
        kafka_brokers: args.kafka_brokers.clone(),
        encryption_key: keel_crypto::SecretBox::generate_key(),
        client_psk: CLIENT_PSK.to_owned(),
        listener_psk: format!("keel-chaos-listener-{seed}"),
        sources_port: free_port()?,
        listener_port: free_port()?,
        log_dir: std::fs::canonicalize(&args.log_dir)?,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let sources_url = format!("http://127.0.0.1:{}", settings.sources_port);
    let listener_url = format!("http://127.0.0.1:{}", settings.listener_port);
    let mut services = [Service::new(Part::SourcesApi), Service::new(Part::Listener)];
    // sources-api first: it migrates the database the listener then extends.
    services[0].start(&settings)?;
    wait_healthy(
        &http,
        &format!("{sources_url}/health"),
        Duration::from_secs(120),
    )
    .await?;
    services[1].start(&settings)?;
    wait_healthy(
        &http,
        &format!("{listener_url}/health"),
        Duration::from_secs(120),
    )
    .await?;
    let victims: Vec<Part> = args
        .faults
        .iter()
        .copied()
        .filter(|p| *p != Part::Broker || args.broker_pid_file.is_some())
        .collect();
    let mut broker = args.broker_pid_file.clone().map(|pid_file| Broker {
        pid_file,
        address: args.kafka_brokers.clone(),
        kills: 0,
    });
    #[expect(clippy::print_stdout)]
    {
        println!(
            "chaos: seed {seed}, {} clients over {} tenants, at most {} operations in {} s, a fault every ~{} s ({}), logs in {}",
            args.clients,
            args.orgs,
            args.operations,
            args.seconds,
            args.fault_every,
            victims
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
            settings.log_dir.display()
        );
    }

    let api = Api {
        http: http.clone(),
        base: format!("{sources_url}/api/sources/v3.1"),
        psk: CLIENT_PSK.to_owned(),
    };
    let kafka = KafkaSettings::plain(args.kafka_brokers.clone());
    let stop = CancellationToken::new();
    let budget = Arc::new(AtomicU64::new(args.operations));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        let tenants = (c..args.orgs)
            .step_by(args.clients)
            .map(|o| Tenant::new(format!("{}", 7_100_000 + o)))
            .collect();
        let rng = SmallRng::seed_from_u64(seed.wrapping_add(c as u64 + 1));
        // Each client starts one operation per `every` (or later, when one takes longer).
        let every = Duration::from_secs_f64(args.clients as f64 / args.rate);
        clients.spawn(workload::client(
            api.clone(),
            tenants,
            rng,
            every,
            budget.clone(),
            stop.clone(),
        ));
    }

    // The chaos, until the clients are done.
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut chaos = Chaos::default();
    let workload_end = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(workload_end);
    let mut next_kill = Instant::now() + jitter(&mut rng, args.fault_every);
    let mut results = Vec::new();
    loop {
        tokio::select! {
            () = &mut workload_end, if !stop.is_cancelled() => stop.cancel(),
            _ = tokio::signal::ctrl_c() => {
                for s in &mut services {
                    s.kill().await?;
                }
                bail!("interrupted; the scratch database keel_chaos is kept");
            }
            done = clients.join_next() => match done {
                Some(done) => results.push(done??),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                for s in &mut services {
                    s.revive_if_exited(&settings)?;
                }
                if !victims.is_empty() && Instant::now() >= next_kill {
                    let victim = kill_one(&mut rng, &victims, &mut services, broker.as_mut(), &kafka).await?;
                    chaos.kills.push((victim, started.elapsed()));
                    // Down for a moment, then up again (the broker's loop restarts it).
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
                    for s in &mut services {
                        if !s.is_running() {
                            s.start(&settings)?;
                        }
                    }
                    next_kill = Instant::now() + jitter(&mut rng, args.fault_every);
                }
            }
        }
    }
    let workload_time = started.elapsed();
    let mut tenants = Vec::new();
    let mut tally = Tally::default();
    for (t, c) in results {
        tenants.extend(t);
        tally.add(c);
    }

    // Everything up again, then quiet.
    for s in &mut services {
        s.revive_if_exited(&settings)?;
    }
    if let Some(b) = &broker {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !b.is_up().await {
            anyhow::ensure!(Instant::now() < deadline, "the broker did not come back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let db = keel_db::connect(&scratch.url, "cost", 4).await?;
    let quiet_started = Instant::now();
    let quiet =
        report::wait_quiet(&db, &kafka, GROUP, Duration::from_secs(args.quiet_seconds)).await?;
    let quiet_time = quiet_started.elapsed();

    // The proof.
    let (mut problems, statuses) = report::check_api(&api, &tenants).await?;
    let (provider_problems, providers) = report::check_providers(&db, &tenants).await?;
    problems.extend(provider_problems);
    problems.extend(
        tally
            .server_errors
            .iter()
            .map(|e| format!("server error: {e}")),
    );
    problems.extend(tally.rejected.iter().map(|e| format!("rejected: {e}")));
    if !quiet.reached {
        problems.push(format!("no quiet within {} s", args.quiet_seconds));
    }
    let backlog = report::backlog(&db).await?;
    let stream = report::stream_position(&kafka, GROUP).await?;
    if backlog.parked_operations > 0 {
        problems.push(format!("{} parked operations", backlog.parked_operations));
    }
    if backlog.dead_letters > 0 {
        problems.push(format!("{} dead letters", backlog.dead_letters));
    }
    let live: usize = tenants.iter().map(|t| t.live.len()).sum();
    let deleted: usize = tenants.iter().map(|t| t.deleted.len()).sum();
    let kills = |p: Part| chaos.kills.iter().filter(|(k, _)| *k == p).count();
    #[expect(clippy::print_stdout)]
    {
        println!(
            "workload      {} operations acknowledged in {:.1} s ({}), {} ambiguous and retried until definite ({} transport errors)",
            tally.total_acknowledged(),
            workload_time.as_secs_f64(),
            tally
                .acknowledged
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            tally.ambiguous,
            tally.transport_errors,
        );
        println!(
            "faults        SIGKILL of sources-api {}, listener {}, broker {}; rebalances {}; unexpected exits: sources-api {}, listener {}",
            kills(Part::SourcesApi),
            kills(Part::Listener),
            kills(Part::Broker),
            kills(Part::Rebalance),
            services[0].unexpected_exits,
            services[1].unexpected_exits,
        );
        println!(
            "quiet         after {:.1} s{}; {} rebalances forced where consumption stood still (tansu's stale assignments)",
            quiet_time.as_secs_f64(),
            if quiet.reached { "" } else { " (not reached)" },
            quiet.forced_rebalances
        );
        println!(
            "outbox        {} rows, {} unpublished",
            backlog.outbox_rows, backlog.unpublished
        );
        println!(
            "event stream  {} published to Kafka (at least once: {} more than rows to send on the topic), {} consumed (committed by {GROUP})",
            stream.published,
            stream.published - event_rows(&db).await?,
            stream.consumed
        );
        println!(
            "providers     {live} expected (live sources; {deleted} deleted), {providers} present"
        );
        println!(
            "statuses      {}",
            statuses
                .iter()
                .map(|(s, n)| format!("{} {n}", if s.is_empty() { "(none)" } else { s }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "dead letters  {}; parked operations {}; operations pending {}",
            backlog.dead_letters, backlog.parked_operations, backlog.pending_operations
        );
    }
    for s in &mut services {
        s.kill().await?;
    }
    db.close().await;
    if !problems.is_empty() {
        #[expect(clippy::print_stdout)]
        for p in problems.iter().take(50) {
            println!("PROBLEM  {p}");
        }
        bail!(
            "{} problems; the scratch database keel_chaos and the logs are kept",
            problems.len()
        );
    }
    #[expect(clippy::print_stdout)]
    {
        println!("held: nothing acknowledged was lost; every provider is there exactly once");
    }
    scratch.remove()
}

/// Brings one fault, chosen at random among `victims`.
async fn kill_one(
    rng: &mut SmallRng,
    victims: &[Part],
    services: &mut [Service; 2],
    broker: Option<&mut Broker>,
    kafka: &KafkaSettings,
) -> anyhow::Result<Part> {
    let victim = victims[rng.random_range(0..victims.len())];
    match (victim, broker) {
        (Part::Broker, Some(b)) => b.kill().await?,
        (Part::Rebalance, _) => {
            // In the background: the workload and the other faults go on meanwhile.
            let kafka = kafka.clone();
            tokio::spawn(async move {
                if let Err(e) = member::join_and_leave(&kafka, GROUP, Duration::from_secs(3)).await
                {
                    tracing::warn!(error = %e, "the rebalance member failed");
                }
            });
        }
        (part, _) => {
            let s = services
                .iter_mut()
                .find(|s| s.part() == part)
                .context("a service of the spine")?;
            s.kill().await?;
        }
    }
    tracing::info!(fault = victim.name(), "fault");
    Ok(victim)
}

/// A pause of `mean` seconds ± half.
fn jitter(rng: &mut SmallRng, mean: f64) -> Duration {
    Duration::from_secs_f64(mean * rng.random_range(0.5..1.5))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn event_rows(db: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM sources.outbox WHERE topic = $1")
            .bind(keel_domain::sources_events::EVENT_STREAM_TOPIC)
            .fetch_one(db)
            .await?,
    )
}
