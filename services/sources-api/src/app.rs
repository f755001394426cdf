use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::Router;
use keel_crypto::SecretBox;
use keel_db::Owner;
use keel_events::{Transport, relay::RelayStatus};
use keel_service::{Running, Service, Shutdown, http::Listeners, ops};
use keel_sources_http::{AuthPolicy, SourcesErrors};
use sqlx::{PgPool, migrate::Migrator};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    config::Config,
    creates::Creates,
    openapi::{self, ApiDoc, CANONICAL_PREFIX},
    relaying, resources, seed,
    state::{AppState, Shared},
};

/// The `sources` schema's migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sources");

/// sources-api owns the `sources` schema.
pub const OWNER: Owner = Owner::new("sources", &MIGRATOR);

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
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(resources::router())
        .split_for_parts();
    openapi::finish_document(&mut doc);
    (router, doc)
}

fn http_options(config: &Config) -> keel_service::http::HttpOptions {
    let mut options = config.common.http.clone();
    options.keep_trailing_slash = vec![format!("{DOCS_PATH}/")];
    options
}

/// The whole HTTP surface: the API under every prefix, its OpenAPI documents, the docs UI, the
/// internal API and the operational routes, with the kit's layers in the Sources format.
pub fn router(state: AppState, readiness: ops::Readiness, config: &Config) -> Router {
    let (api, doc) = split_api();
    let mut app = Router::new();
    for prefix in PREFIXES {
        let document =
            keel_service::openapi::document("/openapi.json", &openapi::for_prefix(&doc, prefix));
        app = app.nest(prefix, api.clone().merge(document));
    }
    let internal = resources::internal::router();
    for prefix in resources::internal::PREFIXES {
        app = app.nest(prefix, internal.clone());
    }
    let app = app
        .merge(keel_service::openapi::docs(
            DOCS_PATH,
            &format!("{CANONICAL_PREFIX}/openapi.json"),
        ))
        .merge(ops::router(readiness))
        .with_state(state);
    keel_service::http::apply(app, SourcesErrors, &http_options(config))
}

/// Creates the database if needed, migrates the `sources` schema (with keel-events' outbox in
/// it) and the event library's own, and applies the seeds.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    let url = &config.common.database_url;
    keel_db::ensure_database(url).await?;
    keel_db::migrate(url, OWNER).await?;
    keel_db::migrate(url, crate::store::OUTBOX.owner()).await?;
    keel_db::migrate(url, keel_events::OWNER).await?;
    let db = keel_db::connect_limited(
        url,
        OWNER.schema,
        config.common.database_max_connections,
        config.common.session_limits,
    )
    .await?;
    let seeds = seed::Seeds::parse(seed::SEEDS_YAML)?.skipping(
        &config.source_type_skip_list,
        &config.application_type_skip_list,
    );
    seed::apply(&db, &seeds).await.context("applying seeds")?;
    Ok(db)
}

/// A ready-to-run sources-api: database prepared, ports bound.
pub struct App {
    listeners: Listeners,
    db: PgPool,
    state: AppState,
    config: Config,
    relay: Arc<RelayStatus>,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let secrets = SecretBox::from_base64(config.common.encryption_key.as_ref().map(keel_service::config::Secret::expose).context(
            "ENCRYPTION_KEY is not set: authentication passwords need a key (base64 of 16, 24 or 32 bytes)",
        )?)?;
        let db = prepare_database(config).await?;
        let state = AppState::new(Shared {
            db: db.clone(),
            auth: AuthPolicy::new(config.psks.iter().cloned(), config.bypass_rbac)
                .with_internal_open(config.internal_api_open),
            secrets,
            http: config
                .common
                .http_client(std::time::Duration::from_secs(10))?,
            availability_check_urls: Arc::new(config.availability_check_urls.clone()),
            availability_checks: Arc::new(tokio::sync::Semaphore::new(
                config.availability_check_concurrency,
            )),
            tenants: Arc::default(),
            creates: Creates::start(db.clone(), config.create_batch),
        });
        warn_about_writes(config);
        let relay = Arc::new(RelayStatus::default());
        let readiness = ops::Readiness::default()
            .with_postgres(db.clone())
            .with_check("event_stream", {
                let (relay, db, transport) = (relay.clone(), db.clone(), transport(config));
                move || {
                    let (relay, transport, db) = (relay.clone(), transport.clone(), db.clone());
                    async move { relaying::health(&transport, &relay, &db).await }
                }
            });
        let options = http_options(config);
        let ops =
            keel_service::http::apply(ops::router(readiness.clone()), SourcesErrors, &options);
        let listeners = Listeners::bind(
            config.listen,
            router(state.clone(), readiness, config),
            ops,
            &options,
        )
        .await?;
        Ok(Self {
            listeners,
            db,
            state,
            config: config.clone(),
            relay,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.api_addr()
    }

    /// The operations port (/metrics, /livez, /readyz), when one is configured.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.listeners.ops_addr()
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Serves HTTP, relays the outbox (Kafka) and consumes status messages until `shutdown`;
    /// then finishes in-flight requests and messages.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let transport = transport(&self.config);
        tracing::info!(address = %self.local_addr(), transport = transport.name(), "sources-api listening");
        let mut tasks = tokio::task::JoinSet::new();
        relaying::spawn(
            &mut tasks,
            &self.config,
            &transport,
            &self.db,
            &self.relay,
            &self.state,
            &shutdown,
        )?;
        let served = self.listeners.serve(&shutdown).await;
        shutdown.trigger();
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::error!(error = ?e, "background task failed");
            }
        }
        self.db.close().await;
        served
    }
}

impl Service for App {
    fn name(&self) -> &'static str {
        "sources-api"
    }

    fn local_addr(&self) -> SocketAddr {
        App::local_addr(self)
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
        Box::pin(App::run(*self, shutdown))
    }
}

fn transport(config: &Config) -> Transport {
    Transport::from_settings(config.common.kafka.clone())
}

/// Without a PSK and without BYPASS_RBAC every write is refused; say so at start rather than
/// on the first 401.
fn warn_about_writes(config: &Config) {
    if config.internal_api_open {
        tracing::warn!(
            "SOURCES_INTERNAL_API_OPEN=true: anyone reaching this port reads every tenant's credentials"
        );
    }
    if config.bypass_rbac {
        tracing::warn!("BYPASS_RBAC=true: writes need no pre-shared key");
    } else if config.psks.iter().all(|p| p.trim().is_empty()) {
        tracing::warn!(
            "no pre-shared key configured (SOURCES_PSKS) and BYPASS_RBAC is off: every write will be refused with 401"
        );
    }
}
