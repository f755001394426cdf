use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use keel_db::Owner;
use keel_service::{Running, Service, Shutdown, http::Listeners, ops, periodic};
use keel_sources_http::SourcesErrors;
use sqlx::{PgPool, migrate::Migrator};
use tokio::sync::Notify;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    api::{self, ApiDoc},
    config::{Config, PayloadStore},
    objects::Objects,
    poller,
    state::AppState,
    store,
    worker::Worker,
};

/// The `ingestion` schema's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/ingestion");

/// The ingestion service owns the `ingestion` schema; the tenant tables it writes are the
/// tenant migrations' (applied by the listener to the template and every tenant).
pub const OWNER: Owner = Owner::new("ingestion", &MIGRATOR);

fn split_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::upload::router())
        .merge(api::providers::router())
        .split_for_parts()
}

/// The OpenAPI document, as checked in at `openapi/ingestion.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    split_api().1
}

fn http_options(config: &Config) -> keel_service::http::HttpOptions {
    let mut options = config.common.http.clone();
    // A payload up to the limit, with room for the multipart framing around it.
    options.body_limit = config.max_upload + 64 * 1024;
    options.request_timeout = options.request_timeout.max(Duration::from_secs(120));
    options
}

/// The HTTP surface: the upload endpoint, the read API, the OpenAPI document and the
/// operational routes, with the kit's layers in the Sources error format.
pub fn router(state: AppState, readiness: ops::Readiness, config: &Config) -> Router {
    let (api, doc) = split_api();
    let app = api
        .merge(keel_service::openapi::document(
            &format!("{}/ingestion/openapi.json", api::PREFIX),
            &doc,
        ))
        .merge(ops::router(readiness))
        .with_state(state);
    keel_service::http::apply(app, SourcesErrors, &http_options(config))
}

/// A ready-to-run ingestion service: database prepared, port bound.
pub struct App {
    listeners: Listeners,
    db: PgPool,
    config: Config,
    objects: Objects,
    wake: Arc<Notify>,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let url = &config.common.database_url;
        keel_db::ensure_database(url).await?;
        keel_db::migrate(url, OWNER).await?;
        let db = keel_db::connect_limited(
            url,
            OWNER.schema,
            config.common.database_max_connections,
            config.common.session_limits,
        )
        .await?;
        let objects = Objects::new(config.s3.clone(), &config.payloads)?;
        let wake = Arc::new(Notify::new());
        let state = AppState {
            db: db.clone(),
            objects: objects.clone(),
            max_upload: config.max_upload,
            wake: wake.clone(),
        };
        let payloads = match &config.payloads {
            PayloadStore::Bucket(b) => format!("bucket {b}"),
            PayloadStore::Directory(d) => format!("directory {}", d.display()),
            PayloadStore::Memory => "memory".to_owned(),
        };
        let readiness = ops::Readiness::default()
            .with_postgres(db.clone())
            .with_check("tenant_tables", {
                let db = db.clone();
                move || {
                    let db = db.clone();
                    async move {
                        let ready = store::tenant::template_migrated(&db).await.map_err(|e| e.to_string())?;
                        ready
                            .then(|| "tenant tables migrated".to_owned())
                            .ok_or_else(|| "the tenant tables are not migrated yet (the listener migrates them)".to_owned())
                    }
                }
            })
            .with_check("payload_store", move || {
                let payloads = payloads.clone();
                async move { Ok(payloads) }
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
            objects,
            wake,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.api_addr()
    }

    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.listeners.ops_addr()
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Serves the upload endpoint and read API, runs the workers, the new-provider listener,
    /// the sweep and the periodic poll until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(
            address = %self.local_addr(),
            upload = %format!("http://{}{}", self.local_addr(), api::upload::UPLOAD_PATH),
            "ingestion listening"
        );
        let mut tasks = tokio::task::JoinSet::<anyhow::Result<()>>::new();
        let worker = Arc::new(Worker {
            db: self.db.clone(),
            objects: self.objects.clone(),
            rules: self.config.rules,
            lease: self.config.lease,
            max_attempts: self.config.max_attempts,
            retry_base: self.config.retry_base,
            wake: self.wake.clone(),
        });
        tasks.spawn({
            let stop = shutdown.token().clone();
            let workers = self.config.workers;
            async move {
                worker.run(workers, stop).await;
                Ok(())
            }
        });
        tasks.spawn({
            let (db, wake, stop) = (self.db.clone(), self.wake.clone(), shutdown.clone());
            async move {
                while !stop.token().is_cancelled() {
                    if let Err(e) =
                        poller::listen(db.clone(), wake.clone(), stop.token().clone()).await
                    {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "provider notifications lost; reconnecting"
                        );
                        tokio::select! {
                            () = stop.triggered() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
                Ok(())
            }
        });
        tasks.spawn({
            let (db, wake, stop) = (self.db.clone(), self.wake.clone(), shutdown.clone());
            async move {
                periodic::every(
                    "ingestion_sweep",
                    self.config.sweep_interval,
                    stop,
                    move || {
                        let (db, wake) = (db.clone(), wake.clone());
                        async move { poller::sweep(&db, &wake).await }
                    },
                )
                .await;
                Ok(())
            }
        });
        if let Some(interval) = self.config.report_check_interval {
            let (db, wake, stop, rules) = (
                self.db.clone(),
                self.wake.clone(),
                shutdown.clone(),
                self.config.rules,
            );
            tasks.spawn(async move {
                periodic::every("report_check_poll", interval, stop, move || {
                    let (db, wake) = (db.clone(), wake.clone());
                    async move { poller::poll(&db, &rules, &wake).await }
                })
                .await;
                Ok(())
            });
        }
        let db = self.db.clone();
        tasks.spawn({
            let stop = shutdown.clone();
            async move {
                periodic::every(
                    "ingestion_gauges",
                    Duration::from_secs(5),
                    stop,
                    move || {
                        let db = db.clone();
                        async move {
                            metrics::gauge!("ingestion_queue_depth")
                                .set(store::queue::depth(&db).await? as f64);
                            Ok(())
                        }
                    },
                )
                .await;
                Ok(())
            }
        });
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
        "ingestion"
    }

    fn local_addr(&self) -> SocketAddr {
        App::local_addr(self)
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
        Box::pin(App::run(*self, shutdown))
    }
}
