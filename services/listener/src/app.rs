use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::Router;
use keel_crypto::SecretBox;
use keel_db::Owner;
use keel_events::{ConsumerConfig, Transport};
use keel_service::{Running, Service, Shutdown, http::Listeners, ops, periodic, retry};
use keel_sources_http::SourcesErrors;
use sqlx::{PgPool, migrate::Migrator};
use tokio::sync::Notify;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    api::{self, ApiDoc, PREFIX},
    config::{Config, CredentialKey},
    consumer::SourcesHandler,
    sources_client::SourcesClient,
    state::AppState,
    store,
    store::tenants::TEMPLATE_SCHEMA,
    worker::{RetryPolicy, Tenants, Worker, tenants_at_once},
};

/// The `cost` schema's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/listener");
/// One tenant schema's migrations: the template's, and every `org<org_id>`'s.
pub static TENANT_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/tenant");

/// The listener owns the `cost` schema.
pub const OWNER: Owner = Owner::new("cost", &MIGRATOR);

/// The template tenants are cloned from.
pub const TEMPLATE: Owner = Owner::new(TEMPLATE_SCHEMA, &TENANT_MIGRATOR);

/// The outbox the embedded transport reads (sources-api's, in the same database).
pub const OUTBOX: keel_events::Outbox = keel_events::Outbox::new("sources", "sources.outbox");

const DOCS_PATH: &str = "/api/cost-management/v1/docs";

fn split_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::router())
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new(PREFIX)]);
    (router, doc)
}

/// The OpenAPI document, as checked in at `openapi/listener.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    split_api().1
}

fn http_options(config: &Config) -> keel_service::http::HttpOptions {
    let mut options = config.common.http.clone();
    options.keep_trailing_slash = vec![format!("{DOCS_PATH}/")];
    options
}

/// The HTTP surface: the read API, its OpenAPI document and docs UI, and the operational
/// routes, with the kit's layers in the Sources error format.
pub fn router(state: AppState, readiness: ops::Readiness, config: &Config) -> Router {
    let (api, doc) = split_api();
    let api = api.merge(keel_service::openapi::document("/openapi.json", &doc));
    let app = Router::new()
        .nest(PREFIX, api)
        .merge(keel_service::openapi::docs(
            DOCS_PATH,
            &format!("{PREFIX}/openapi.json"),
        ))
        .merge(ops::router(readiness))
        .with_state(state);
    keel_service::http::apply(app, SourcesErrors, &http_options(config))
}

/// Creates the database if needed and migrates the `cost` schema, the event library's
/// schema, the tenant template and every existing tenant.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    let url = &config.common.database_url;
    keel_db::ensure_database(url).await?;
    keel_db::migrate(url, OWNER).await?;
    keel_db::migrate(url, keel_events::OWNER).await?;
    keel_db::migrate(url, TEMPLATE).await?;
    let db = keel_db::connect_limited(
        url,
        OWNER.schema,
        config.common.database_max_connections,
        config.common.session_limits,
    )
    .await?;
    let tenants = store::tenants::schemas(&db).await?;
    for schema in &tenants {
        keel_db::migrate_schema(url, schema, &TENANT_MIGRATOR).await?;
    }
    if !tenants.is_empty() {
        tracing::info!(schemas = tenants.len(), "tenant and spare schemas migrated");
    }
    Ok(db)
}

/// A ready-to-run listener: database prepared, ports bound.
pub struct App {
    listeners: Listeners,
    db: PgPool,
    config: Config,
    client: SourcesClient,
    secrets: SecretBox,
    wake: Arc<Notify>,
    /// The cost-management application type id, once sources-api named it.
    cost_type: Arc<OnceLock<i64>>,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let secrets = match &config.credential_key {
            Some(CredentialKey::Key(key)) => SecretBox::from_base64(key.expose())?,
            Some(CredentialKey::DerivedFrom(secret)) => {
                SecretBox::derived_from(secret.expose(), "keel-listener-credentials")?
            }
            None => anyhow::bail!(
                "ENCRYPTION_KEY is not set (nor Koku's DJANGO_SECRET_KEY): stored credentials need a key (base64 of 16, 24 or 32 bytes)"
            ),
        };
        let db = prepare_database(config).await?;
        let client = SourcesClient::new(
            &config.sources_api_url,
            &config.sources_api_prefix,
            &config.sources_internal_api_prefix,
            config.sources_psk.as_ref().map(|p| p.expose().to_owned()),
            config.common.http_client(config.sources_api_timeout)?,
        )?;
        let wake = Arc::new(Notify::new());
        let cost_type = Arc::new(OnceLock::new());
        let state = AppState {
            db: db.clone(),
            schema_suffix: config.schema_suffix.clone(),
            wake: wake.clone(),
        };
        let transport = Transport::from_settings(config.common.kafka.clone());
        let topic = config.topic.clone();
        let readiness = ops::Readiness::default()
            .with_postgres(db.clone())
            .with_check("consumer", {
                let cost_type = cost_type.clone();
                move || {
                    let known = cost_type.get().copied();
                    async move {
                        known
                            .map(|id| format!("consuming (cost-management application type {id})"))
                            .ok_or_else(|| {
                                "not consuming yet: sources-api has not named the cost-management application type"
                                    .to_owned()
                            })
                    }
                }
            })
            .with_check("event_stream", move || {
                let (transport, topic) = (transport.clone(), topic.clone());
                async move {
                    match transport {
                        Transport::Embedded => Ok("embedded log (PostgreSQL)".to_owned()),
                        Transport::Kafka(kafka) => {
                            keel_events::kafka::ping(&kafka, &topic, Duration::from_secs(2))
                                .await
                                .map(|p| format!("kafka: {} has {p} partitions", kafka.topic(&topic)))
                                .map_err(|e| format!("{e:#}"))
                        }
                    }
                }
            })
            .with_check("sources_api", {
                let client = client.clone();
                move || {
                    let client = client.clone();
                    async move {
                        client
                            .ping()
                            .await
                            .map(|()| "ok".to_owned())
                            .map_err(|e| e.to_string())
                    }
                }
            });
        let options = http_options(config);
        let ops =
            keel_service::http::apply(ops::router(readiness.clone()), SourcesErrors, &options);
        let listeners = Listeners::bind(
            config.listen,
            router(state, readiness, config),
            ops,
            &options,
        )
        .await?;
        Ok(Self {
            listeners,
            db,
            config: config.clone(),
            client,
            secrets,
            wake,
            cost_type,
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

    /// Serves the read API at once; consumes events and works the queue once sources-api has
    /// named the cost-management application type; stops everything on `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let transport = Transport::from_settings(self.config.common.kafka.clone());
        tracing::info!(address = %self.local_addr(), transport = transport.name(), "listener listening");
        let mut tasks = tokio::task::JoinSet::new();
        let background = Background {
            db: self.db.clone(),
            config: self.config.clone(),
            client: self.client.clone(),
            secrets: self.secrets.clone(),
            wake: self.wake.clone(),
            cost_type: self.cost_type.clone(),
            transport,
        };
        tasks.spawn(background.run(shutdown.clone()));
        let db = self.db.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            periodic::every("queue_gauges", Duration::from_secs(5), stop, move || {
                report_queue(db.clone())
            })
            .await;
            Ok(())
        });
        if self.config.spare_tenants > 0 {
            let (db, target) = (self.db.clone(), self.config.spare_tenants);
            let stop = shutdown.clone();
            tasks.spawn(async move {
                periodic::every("spare_tenants", Duration::from_secs(1), stop, move || {
                    refill_spares(db.clone(), target)
                })
                .await;
                Ok(())
            });
        }
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

/// The consumer's pool: the embedded log's reader holds one connection for as long as it
/// runs, the batches and the stored positions use the others.
const CONSUMER_CONNECTIONS: u32 = 4;

/// The consumer and the workers.
struct Background {
    db: PgPool,
    config: Config,
    client: SourcesClient,
    secrets: SecretBox,
    wake: Arc<Notify>,
    cost_type: Arc<OnceLock<i64>>,
    transport: Transport,
}

impl Background {
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        // Events are only readable once the cost-management application type id is known;
        // sources-api may start after the listener, so keep asking (Koku does the same).
        let policy = retry::backoff(Duration::from_millis(200), Duration::from_secs(30));
        let Some(cost_type_id) = retry::until_ok(
            "looking up the cost-management application type",
            policy,
            &shutdown,
            || self.client.cost_management_type_id(),
        )
        .await
        else {
            return Ok(());
        };
        tracing::info!(cost_type_id, "cost-management application type found");
        let _ = self.cost_type.set(cost_type_id);
        if let Transport::Kafka(kafka) = &self.transport
            && let Err(e) =
                keel_events::kafka::ensure_topics(kafka, &[self.config.topic.as_str()], 3, 1).await
        {
            tracing::warn!(error = %e, "cannot create the event stream topic; consuming anyway");
        }
        let queue = keel_db::connect_unflushed(
            &self.config.common.database_url,
            OWNER.schema,
            (self.config.workers as u32 / 8).max(2),
            self.config.common.session_limits,
        )
        .await?;
        let worker = Arc::new(Worker {
            db: self.db.clone(),
            queue: queue.clone(),
            client: self.client,
            secrets: self.secrets,
            cost_type_id,
            retry: RetryPolicy {
                base: self.config.retry_base,
                max: self.config.retry_max,
                max_attempts: self.config.max_attempts,
                lease: self.config.lease,
            },
            wake: self.wake.clone(),
            type_names: tokio::sync::RwLock::new(HashMap::new()),
            tenants: Tenants::default(),
            tenant_turns: tokio::sync::Semaphore::new(tenants_at_once(
                self.config.common.database_max_connections,
            )),
        });
        // Owned by this task: if it is dropped, the workers stop with it.
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(worker.run(self.config.workers, shutdown.token().clone()));
        // The consumer's own connections: workers waiting for locks (a tenant being made, a
        // clone holding `api_provider`) never hold up the events behind them.
        let events_db = keel_db::connect_limited(
            &self.config.common.database_url,
            OWNER.schema,
            CONSUMER_CONNECTIONS,
            self.config.common.session_limits,
        )
        .await?;
        let handler = Arc::new(SourcesHandler {
            db: events_db.clone(),
            cost_type_id,
            schema_suffix: self.config.schema_suffix.clone(),
            wake: self.wake,
        });
        let consumed = keel_events::consumer::run(
            self.transport,
            events_db.clone(),
            OUTBOX,
            ConsumerConfig::new(&self.config.consumer_group, &[self.config.topic.as_str()]),
            handler,
            shutdown.token().clone(),
        )
        .await;
        workers.join_all().await;
        queue.close().await;
        events_db.close().await;
        consumed
    }
}

impl Service for App {
    fn name(&self) -> &'static str {
        "listener"
    }

    fn local_addr(&self) -> SocketAddr {
        App::local_addr(self)
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
        Box::pin(App::run(*self, shutdown))
    }
}

/// Queue depth and parked operations as gauges.
async fn report_queue(db: PgPool) -> anyhow::Result<()> {
    let (queued, parked) = store::queue_depth(&db).await?;
    metrics::gauge!("listener_queue_depth").set(queued as f64);
    metrics::gauge!("listener_parked_operations").set(parked as f64);
    Ok(())
}

/// Keeps `target` spare tenant schemas cloned.
async fn refill_spares(db: PgPool, target: usize) -> anyhow::Result<()> {
    let busy = store::queue::has_work(&db).await?;
    let made = store::spares::refill(&db, target, busy).await?;
    if made > 0 {
        tracing::info!(made, "spare tenant schemas cloned");
    }
    Ok(())
}
