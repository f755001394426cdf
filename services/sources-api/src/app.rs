use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::{Router, http::header, routing::get};
use keel_db::Owner;
use keel_http::{AuthPolicy, ops};
use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::{
    availability,
    config::Config,
    crypto::SecretBox,
    openapi::{self, ApiDoc, CANONICAL_PREFIX},
    resources, seed,
    state::AppState,
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
pub fn router(state: AppState) -> Router {
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
    let readiness = ops::Readiness::default().with_postgres(state.db.clone());
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
        Ok(Self {
            listener,
            router: router(state),
            db,
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
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "sources-api listening");
        ops::serve(
            self.listener,
            self.router,
            &["/api/sources/v3.1/docs/"],
            shutdown,
        )
        .await
        .context("serving HTTP")?;
        self.db.close().await;
        Ok(())
    }
}
