//! A ready-to-run controller: the storage opened, the generators registered, the whitelist
//! read, the artifact server bound.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use keel_service::{Running, Service, Shutdown, http::HttpServer, ops};
use object_store::{ObjectStore, aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory};

use crate::{
    config::{Backend, Config},
    controller::{self, Context},
    domain::whitelist::Whitelist,
    generator::{Factory, http::HttpGenerator},
    hooks::Runner,
    server,
    storage::Storage,
};

pub struct App {
    server: HttpServer,
    ctx: Arc<Context>,
    /// The whitelist's file and the bytes it was read from.
    whitelist: Option<(std::path::PathBuf, Option<Vec<u8>>)>,
    concurrency: u16,
}

fn store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match config.storage_backend {
        Backend::Memory => Arc::new(InMemory::new()),
        Backend::Filesystem => {
            std::fs::create_dir_all(&config.storage_path)
                .with_context(|| format!("creating {}", config.storage_path.display()))?;
            Arc::new(LocalFileSystem::new_with_prefix(&config.storage_path)?)
        }
        Backend::S3 => {
            let bucket = config
                .s3_bucket
                .as_deref()
                .context("STORAGE_BACKEND=s3 needs S3_BUCKET")?;
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&config.aws_region);
            if let (Some(id), Some(secret)) =
                (&config.aws_access_key_id, &config.aws_secret_access_key)
            {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            if let Some(endpoint) = &config.s3_endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            Arc::new(builder.build()?)
        }
    })
}

impl App {
    /// Builds the controller; `client` is the cluster's (`None`: from the configuration).
    pub async fn build(config: &Config, client: Option<kube::Client>) -> anyhow::Result<Self> {
        keel_service::tls::install_crypto_provider();
        let client = match client {
            Some(c) => c,
            None => {
                let kube_config = match &config.kubernetes_api_url {
                    Some(url) => kube::Config::new(url.parse().context("KUBERNETES_API_URL is not a URL")?),
                    None => kube::Config::infer().await.context("no Kubernetes configuration: set KUBERNETES_API_URL or KUBECONFIG, or run in a pod")?,
                };
                kube::Client::try_from(kube_config)?
            }
        };
        let (whitelist, read) = match &config.hook_whitelist_path {
            Some(path) => {
                let read =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let parsed = Whitelist::parse(&String::from_utf8_lossy(&read))
                    .with_context(|| format!("the hook whitelist {}", path.display()))?;
                (parsed, Some(read))
            }
            None => (Whitelist::default(), None),
        };
        let mut factory = Factory::default();
        factory.register(
            "http",
            Arc::new(HttpGenerator::new(
                config.http_timeout,
                config.http_max_body_bytes,
                &config.http_user_agent,
            )?),
        );
        let storage = Storage::new(store(config)?);
        let probe = client.clone();
        let readiness = ops::Readiness::default().with_check("kubernetes", move || {
            let probe = probe.clone();
            async move {
                probe
                    .apiserver_version()
                    .await
                    .map(|v| v.git_version)
                    .map_err(|e| e.to_string())
            }
        });
        let router = server::router(storage.clone()).merge(ops::router(readiness));
        let bound = SocketAddr::new(config.artifact_server_host, config.artifact_server_port);
        let server =
            HttpServer::bind(bound, router, &keel_service::http::HttpOptions::default()).await?;
        storage.serve_from(&config.storage_adv_addr.clone().map_or_else(
            || format!("http://{}", server.local_addr()),
            |a| {
                if a.contains("://") {
                    a
                } else {
                    format!("http://{a}")
                }
            },
        ));
        let mut runner = Runner::new(whitelist, config.hook_path.clone());
        if let Some(endpoint) = &config.hook_executor_endpoint {
            // Hooks may run as long as their timeouts say; the sidecar enforces them.
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?;
            runner = runner.through_sidecar(endpoint, client);
        }
        Ok(Self {
            server,
            ctx: Arc::new(Context::new(
                client,
                factory,
                runner,
                storage,
                config.artifact_retention_records,
            )),
            whitelist: config.hook_whitelist_path.clone().map(|p| (p, read)),
            concurrency: config.reconcile_concurrency.max(1),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The artifacts' storage (what tests inspect).
    pub fn storage(&self) -> Storage {
        self.ctx.storage.clone()
    }

    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let reload = self
            .whitelist
            .map(|(path, read)| self.ctx.runner.watch(path, read, Duration::from_secs(2)));
        let controller = controller::run(self.ctx.clone(), self.concurrency, shutdown.clone());
        let served = self.server.serve(&shutdown);
        let (_, served) = tokio::join!(controller, served);
        if let Some(r) = reload {
            r.abort();
        }
        served
    }
}

impl Service for App {
    fn name(&self) -> &'static str {
        "externalsource-controller"
    }

    fn local_addr(&self) -> SocketAddr {
        App::local_addr(self)
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
        Box::pin(App::run(*self, shutdown))
    }
}
