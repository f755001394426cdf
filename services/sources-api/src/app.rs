use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use axum::{Router, http::header, routing::get};
use keel_crypto::SecretBox;
use keel_db::Owner;
use keel_events::{ConsumerConfig, Relay, Transport, relay::RelayStatus};
use keel_http::{AuthPolicy, ops};
use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::{
    availability,
    config::Config,
    openapi::{self, ApiDoc, CANONICAL_PREFIX},
    resources, seed,
    state::AppState,
    stream,
};

/// The `sources` schema's migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sources");

/// sources-api owns the `sources` schema.
pub const OWNER: Owner = Owner {
    schema: "sources",
    migrator: &MIGRATOR,
};

/// Every prefix the API is served under, with identical handlers (as sources-api-go does).
pub const PREFIXES: [&str; 7] = [
    "/api/sources/v1.0",
    "/api/sources/v2.0",
    "/api/sources/v3.0",
    "/api/sources/v3.1",
    "/api/sources/v1",
    "/api/sources/v2",
    "/api/sources/v3",
];

const DOCS_PATH: &str = "/api/sources/v3.1/docs";

/// The OpenAPI document of the canonical prefix, as checked in at `openapi/sources-api.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = split_api();
    openapi::for_prefix(&doc, CANONICAL_PREFIX)
}

fn split_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = api().split_for_parts();
    openapi::finish_document(&mut doc);
    (router, doc)
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(resources::router())
}

/// The whole HTTP surface: the API under every prefix, its OpenAPI documents, the docs UI and
/// the operational routes.
pub fn router(state: AppState, readiness: ops::Readiness) -> Router {
    let (api, doc) = split_api();
    let mut app = Router::new();
    for prefix in PREFIXES {
        // Serialized once; every request for it is a copy of the bytes.
        let body: Arc<str> = openapi::for_prefix(&doc, prefix)
            .to_pretty_json()
            .unwrap_or_default()
            .into();
        let served = api.clone().route(
            "/openapi.json",
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                }
            }),
        );
        app = app.nest(prefix, served);
    }
    let internal = resources::internal::router();
    for prefix in resources::internal::PREFIXES {
        app = app.nest(prefix, internal.clone());
    }
    let app = app
        .merge(
            SwaggerUi::new(DOCS_PATH).config(SwaggerConfig::new([format!(
                "{CANONICAL_PREFIX}/openapi.json"
            )])),
        )
        .merge(ops::ops_router(readiness, keel_telemetry::prometheus()))
        .with_state(state);
    ops::instrument(app)
}

/// Creates the database if needed, migrates the `sources` schema and applies the seeds.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    keel_db::ensure_database(&config.database_url).await?;
    keel_db::migrate(&config.database_url, OWNER).await?;
    keel_db::migrate(&config.database_url, keel_events::OWNER).await?;
    let db = keel_db::connect(
        &config.database_url,
        OWNER.schema,
        config.database_max_connections,
    )
    .await?;
    let seeds = seed::Seeds::parse(seed::SEEDS_YAML)?.skipping(
        &config.source_type_skip_list,
        &config.application_type_skip_list,
    );
    seed::apply(&db, &seeds).await.context("applying seeds")?;
    Ok(db)
}

/// A ready-to-run sources-api: database prepared, port bound.
pub struct App {
    listener: TcpListener,
    router: Router,
    db: PgPool,
    state: AppState,
    config: Config,
    relay: Arc<RelayStatus>,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let secrets = SecretBox::from_base64(config.encryption_key.as_deref().context(
            "ENCRYPTION_KEY is not set: authentication passwords need a key (base64 of 32 bytes)",
        )?)?;
        let mut availability_check_urls = availability::urls_from_env();
        availability_check_urls.extend(config.availability_check_urls.clone());
        let db = prepare_database(config).await?;
        let state = AppState {
            db: db.clone(),
            auth: AuthPolicy::new(config.psks.iter().cloned(), config.bypass_rbac),
            secrets,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .context("building the HTTP client")?,
            availability_check_urls: Arc::new(availability_check_urls),
            tenants: Arc::default(),
        };
        if config.bypass_rbac {
            tracing::warn!("BYPASS_RBAC=true: writes need no pre-shared key");
        }
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let relay = Arc::new(RelayStatus::default());
        let transport = Transport::from_brokers(config.kafka_brokers.as_deref());
        let readiness = ops::Readiness::default()
            .with_postgres(db.clone())
            .with_check("event_stream", {
                let (relay, db) = (relay.clone(), db.clone());
                move || {
                    let (relay, transport, db) = (relay.clone(), transport.clone(), db.clone());
                    async move { relay_health(&transport, &relay, &db).await }
                }
            });
        Ok(Self {
            listener,
            router: router(state.clone(), readiness),
            db,
            state,
            config: config.clone(),
            relay,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    /// Serves HTTP, relays the outbox (Kafka) and consumes status messages until `shutdown`;
    /// then finishes in-flight requests and messages.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let transport = Transport::from_brokers(self.config.kafka_brokers.as_deref());
        tracing::info!(address = %self.local_addr(), transport = transport.name(), "sources-api listening");
        let mut tasks = tokio::task::JoinSet::new();
        if let Transport::Kafka { brokers } = &transport {
            let relay = Relay {
                db: self.db.clone(),
                outbox: stream::OUTBOX,
                producer: keel_events::kafka::producer(brokers)?,
                batch: self.config.outbox_relay_batch,
                status: self.relay.clone(),
            };
            let (brokers, partitions, replication) = (
                brokers.clone(),
                self.config.kafka_topic_partitions,
                self.config.kafka_topic_replication,
            );
            let stop = shutdown.clone();
            tasks.spawn(async move {
                ensure_topics(&brokers, partitions, replication, &stop).await;
                relay.run(stop).await;
                Ok(())
            });
            tasks.spawn(report_relay_lag(self.db.clone(), shutdown.clone()));
        }
        if self.config.outbox_retention_hours > 0 {
            tasks.spawn(prune_outbox(
                self.db.clone(),
                Duration::from_secs(self.config.outbox_retention_hours.saturating_mul(3600)),
                matches!(transport, Transport::Kafka { .. }),
                shutdown.clone(),
            ));
        }
        let handler = Arc::new(stream::StatusHandler {
            state: self.state.clone(),
        });
        let consumer = keel_events::consumer::run(
            transport.clone(),
            self.db.clone(),
            stream::OUTBOX,
            ConsumerConfig::new(&self.config.status_consumer_group, &[stream::STATUS_TOPIC]),
            handler,
            shutdown.clone(),
        );
        tasks.spawn(consumer);
        let served = ops::serve(
            self.listener,
            self.router,
            &["/api/sources/v3.1/docs/"],
            shutdown.clone().cancelled_owned(),
        )
        .await
        .context("serving HTTP");
        shutdown.cancel();
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::error!(error = ?e, "background task failed");
            }
        }
        self.db.close().await;
        served
    }
}

/// Creates the topics Keel publishes to and consumes, retrying until Kafka answers.
async fn ensure_topics(brokers: &str, partitions: i32, replication: i32, stop: &CancellationToken) {
    let topics = [crate::events::EVENT_STREAM_TOPIC, stream::STATUS_TOPIC];
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match keel_events::kafka::ensure_topics(brokers, &topics, partitions, replication).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cannot create topics yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Ready while the relay keeps up: it must have succeeded within the last 30 seconds. The
/// detail shows the lag: rows pending and the age of the oldest.
async fn relay_health(
    transport: &Transport,
    relay: &RelayStatus,
    db: &PgPool,
) -> Result<String, String> {
    if matches!(transport, Transport::Embedded) {
        return Ok("embedded log (PostgreSQL)".to_owned());
    }
    let (pending, oldest) = stream::OUTBOX
        .relay_lag(db)
        .await
        .map_err(|e| format!("cannot measure the relay lag: {e}"))?;
    let lag = format!(
        "{pending} rows pending, oldest {oldest:.1}s, {} published",
        relay.published.load(Ordering::Relaxed)
    );
    // A replica waiting for the relay lock serves the API like any other; its writes wait in
    // the outbox for the replica that relays.
    if relay.standby.load(Ordering::Relaxed) {
        return Ok(format!("kafka: standby, another replica relays; {lag}"));
    }
    let last = relay.last_success.load(Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp();
    let failures = relay.failures.load(Ordering::Relaxed);
    if last == 0 {
        return Err(format!("the outbox relay has not reached Kafka yet; {lag}"));
    }
    if now - last > 30 {
        return Err(format!(
            "the outbox relay has failed for {}s ({failures} attempts); {lag}",
            now - last
        ));
    }
    Ok(format!("kafka: {lag}"))
}

/// Every minute, deletes outbox rows older than `retention` (see [`keel_events::Outbox::prune`]).
async fn prune_outbox(
    db: PgPool,
    retention: Duration,
    keep_unpublished: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match stream::OUTBOX.prune(&db, retention, keep_unpublished).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(rows = n, "outbox rows past retention deleted");
                metrics::counter!("outbox_pruned_rows_total").increment(n);
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
    }
}

/// Publishes the relay's lag as gauges: rows pending and the age of the oldest.
async fn report_relay_lag(db: PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match stream::OUTBOX.relay_lag(&db).await {
            Ok((pending, oldest)) => {
                metrics::gauge!("outbox_relay_pending_rows").set(pending as f64);
                metrics::gauge!("outbox_relay_oldest_seconds").set(oldest);
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure the relay lag"),
        }
    }
}
