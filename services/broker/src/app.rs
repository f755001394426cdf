use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use keel_db::Owner;
use keel_service::{Running, Service, Shutdown, http::Listeners, ops};
use sha2::Digest as _;
use sqlx::{PgPool, migrate::Migrator};
use tokio::sync::Notify;

use crate::{
    api::{self, AppState},
    config::Config,
    domain::spec::Engine,
    drivers::{
        Drivers,
        kafka::KafkaTopics,
        kubernetes::{self, KubernetesDatabases},
        mysql::SharedMysql,
        nats::NatsStreams,
        postgres::SharedPostgres,
        rabbitmq::SharedRabbitMq,
        redis::SharedRedis,
    },
    error::BrokerErrors,
    notify::Delivery,
    signing::SigningKey,
    worker::Worker,
};

/// The `broker` schema's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/broker");

pub const OWNER: Owner = Owner::new("broker", &MIGRATOR);

/// A ready-to-run broker: database migrated, key read, port bound.
pub struct App {
    listeners: Listeners,
    db: PgPool,
    config: Config,
    state: AppState,
}

/// The signing key from the configuration (value or file); without one the broker cannot
/// sign, so it does not start.
fn signing_key(config: &Config) -> anyhow::Result<SigningKey> {
    if let Some(key) = &config.signing_key {
        return SigningKey::parse(key.expose()).context("BROKER_PRIVATE_KEY");
    }
    if let Some(path) = &config.signing_key_path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read BROKER_PRIVATE_KEY_PATH {}", path.display()))?;
        return SigningKey::parse(&text).context("BROKER_PRIVATE_KEY_PATH");
    }
    anyhow::bail!(
        "no callback signing key: set BROKER_PRIVATE_KEY or BROKER_PRIVATE_KEY_PATH (`keel up` generates one)"
    )
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_key(config, signing_key(config)?).await
    }

    /// As [`App::build`], with the signing key given (tests, `keel up`).
    pub async fn build_with_key(config: &Config, key: SigningKey) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !config.tokens.is_empty(),
            "no bearer token: set BROKER_TOKENS (`keel up` generates one)"
        );
        let secrets = keel_crypto::SecretBox::from_base64(
            config
                .common
                .encryption_key
                .as_ref()
                .map(keel_service::config::Secret::expose)
                .context("ENCRYPTION_KEY is required: it seals the credentials the broker makes")?,
        )?;
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
        let connections = u32::try_from(config.workers)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let drivers = Drivers::new(
            config
                .postgres
                .as_ref()
                .map(|t| SharedPostgres::new(t, connections))
                .transpose()?,
            config
                .mysql
                .as_ref()
                .map(|t| SharedMysql::new(t, connections))
                .transpose()?,
            config.redis.as_ref().map(SharedRedis::new).transpose()?,
            config
                .kafka
                .as_ref()
                .map(|k| KafkaTopics::new(k, config.kafka_replication))
                .transpose()?,
            config.nats.as_ref().map(NatsStreams::new).transpose()?,
            config
                .rabbitmq
                .as_ref()
                .map(|t| SharedRabbitMq::new(t, config.rabbitmq_amqp_port))
                .transpose()?,
        );
        let drivers = match &config.kubernetes {
            Some(k) => {
                // Boxed: inferring a cluster configuration is a large future, rarely run.
                let (cluster, engines) = Box::pin(kubernetes_target(k)).await?;
                drivers.with_kubernetes(cluster, engines)
            }
            None => drivers,
        };
        let state = AppState {
            db: db.clone(),
            drivers,
            secrets: Arc::new(secrets),
            key: Arc::new(key),
            tokens: Arc::new(
                config
                    .tokens
                    .iter()
                    .map(|t| sha2::Sha256::digest(t.expose().as_bytes()).into())
                    .collect(),
            ),
            limiter: api::limit::limiter(config.rate_limit_per_minute),
            rate_limit_per_minute: config.rate_limit_per_minute,
            wake: Arc::new(Notify::new()),
            deliver: Arc::new(Notify::new()),
        };
        let options = config.common.http.clone();
        let readiness = ops::Readiness::default().with_postgres(db.clone());
        let ops = api::probes(state.clone()).merge(ops::probes_and_metrics(readiness.clone()));
        let ops = keel_service::http::apply(ops, BrokerErrors, &options);
        // The API port serves the metrics too, as every Keel service's does (under `keel up`
        // there is no other port).
        let app = api::router(state.clone()).merge(ops::probes_and_metrics(readiness));
        let app = keel_service::http::apply(app, BrokerErrors, &options);
        let listeners = Listeners::bind(config.listen, app, ops, &options).await?;
        Ok(Self {
            listeners,
            db,
            config: config.clone(),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.api_addr()
    }

    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.listeners.ops_addr()
    }

    /// Serves the API, runs the workers and the callback delivery until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr(), "broker listening");
        let worker = Arc::new(Worker {
            db: self.db.clone(),
            drivers: self.state.drivers.clone(),
            secrets: self.state.secrets.clone(),
            lease: self.config.lease,
            per_namespace: self.config.namespace_concurrency,
            max_attempts: 5,
            ready_timeout: self.config.ready_timeout,
            wake: self.state.wake.clone(),
            deliver: self.state.deliver.clone(),
        });
        let delivery = Arc::new(Delivery {
            db: self.db.clone(),
            wake: self.state.deliver.clone(),
            http: reqwest::Client::builder().build()?,
            key: self.state.key.clone(),
            broker_name: self.config.name.clone(),
            attempts: self.config.callback_attempts,
            backoff: self.config.callback_backoff,
            timeout: self.config.callback_timeout,
        });
        let mut tasks = tokio::task::JoinSet::new();
        if self.config.workers > 0 {
            tasks.spawn(worker.clone().run(self.config.workers, shutdown.clone()));
            tasks.spawn(worker.watch_drift(self.config.observe_interval, shutdown.clone()));
            tasks.spawn(delivery.run(8, shutdown.clone()));
        }
        tasks.spawn(forget_quiet_clients(
            self.state.limiter.clone(),
            shutdown.clone(),
        ));
        let served = self.listeners.serve(&shutdown).await;
        shutdown.trigger();
        while tasks.join_next().await.is_some() {}
        self.db.close().await;
        served
    }
}

/// Drops the rate limiter's state for addresses quiet for a minute, so it does not grow with
/// every address ever seen.
async fn forget_quiet_clients(limiter: Arc<api::limit::Limiter>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = shutdown.triggered() => break,
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

impl Service for App {
    fn name(&self) -> &'static str {
        "broker"
    }

    fn local_addr(&self) -> SocketAddr {
        App::local_addr(self)
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
        Box::pin(App::run(*self, shutdown))
    }
}

/// The cluster and the engines made on it; an engine it cannot make is a startup error.
async fn kubernetes_target(
    k: &crate::config::KubernetesTarget,
) -> anyhow::Result<(KubernetesDatabases, Vec<Engine>)> {
    let engines = k
        .engines
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            Engine::parse(e)
                .filter(|e| kubernetes::objects::serves(*e))
                .with_context(|| {
                    format!("BROKER_KUBERNETES_ENGINES: {e:?} is not one of postgresql, mysql, redis, mongodb")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client_config = match &k.api_url {
        Some(url) => kube::Config::new(url.parse().context("BROKER_KUBERNETES_API_URL is not a URL")?),
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration: set BROKER_KUBERNETES_API_URL, KUBECONFIG, or run in a pod")?,
    };
    let client = kube::Client::try_from(client_config).context("a Kubernetes client")?;
    let mode = match k.mode {
        crate::config::KubernetesMode::Statefulset => kubernetes::Mode::StatefulSet,
        crate::config::KubernetesMode::Cloudnativepg => kubernetes::Mode::CloudNativePg,
    };
    Ok((
        KubernetesDatabases::new(client, mode, k.storage_class.clone()),
        engines,
    ))
}
