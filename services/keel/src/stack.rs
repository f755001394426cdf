//! Keel's services composed in one process: `keel up`, the benchmarks and the end-to-end
//! tests all build them here, so the wiring between them is written once.
//!
//! Adding a service: a variant of [`ServiceName`], an `Option` of its configuration in
//! [`StackConfig`], its build (and any wiring to the others) in [`StackConfig::build`], and
//! its app in [`Stack::services`].

use std::net::SocketAddr;

use keel_service::{Service, Shutdown, run_all};

/// The services `keel up` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceName {
    SourcesApi,
    Listener,
    Ingestion,
    Broker,
}

impl ServiceName {
    pub const ALL: [Self; 4] = [
        Self::SourcesApi,
        Self::Listener,
        Self::Ingestion,
        Self::Broker,
    ];
}

/// The configurations of the services to run; `None` leaves a service out.
#[derive(Debug, Clone, Default)]
pub struct StackConfig {
    pub sources: Option<sources_api::Config>,
    pub listener: Option<listener::Config>,
    pub ingestion: Option<ingestion::Config>,
    pub broker: Option<broker::Config>,
}

/// Built services, ports bound, ready to run.
pub struct Stack {
    pub sources: Option<sources_api::App>,
    pub listener: Option<listener::App>,
    pub ingestion: Option<ingestion::App>,
    /// The broker and the first of its bearer tokens (printed by `keel up`).
    pub broker: Option<(broker::App, String)>,
    /// The listener's configuration as wired (to build it again, as the benchmark does).
    pub listener_config: Option<listener::Config>,
}

impl StackConfig {
    /// Builds the chosen services. A listener beside a sources-api calls that sources-api,
    /// with a pre-shared key of its own that sources-api accepts (made for this run unless
    /// the listener's configuration names one).
    pub async fn build(self) -> anyhow::Result<Stack> {
        let Self {
            mut sources,
            mut listener,
            ingestion,
            broker,
        } = self;
        if let (Some(sources), Some(listener)) = (&mut sources, &mut listener) {
            link(sources, listener);
        }
        let sources = match sources {
            // Boxed: building an app is a large future.
            Some(config) => Some(Box::pin(sources_api::App::build(&config)).await?),
            None => None,
        };
        if let (Some(app), Some(listener)) = (&sources, &mut listener) {
            listener.sources_api_url = format!("http://{}", app.local_addr());
        }
        let listener_app = match &listener {
            Some(config) => Some(Box::pin(listener::App::build(config)).await?),
            None => None,
        };
        // After the listener, which migrates the tenant tables ingestion writes.
        let ingestion = match ingestion {
            Some(config) => Some(Box::pin(ingestion::App::build(&config)).await?),
            None => None,
        };
        let broker = match broker {
            Some(config) => {
                let token = config
                    .tokens
                    .first()
                    .map(|t| t.expose().to_owned())
                    .unwrap_or_default();
                Some((Box::pin(broker::App::build(&config)).await?, token))
            }
            None => None,
        };
        Ok(Stack {
            sources,
            listener: listener_app,
            ingestion,
            broker,
            listener_config: listener,
        })
    }
}

/// Lets `listener` write to `sources`: the listener's pre-shared key (one made for this run
/// unless it names one) becomes one sources-api accepts. The listener's URL is set once
/// sources-api is bound.
pub fn link(sources: &mut sources_api::Config, listener: &mut listener::Config) {
    let psk = listener.sources_psk.get_or_insert_with(|| {
        keel_service::config::Secret::new(format!(
            "keel-listener-{}",
            uuid::Uuid::new_v4().simple()
        ))
    });
    sources.psks.push(psk.expose().to_owned());
}

impl Stack {
    pub fn sources_addr(&self) -> Option<SocketAddr> {
        self.sources.as_ref().map(sources_api::App::local_addr)
    }

    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(listener::App::local_addr)
    }

    pub fn ingestion_addr(&self) -> Option<SocketAddr> {
        self.ingestion.as_ref().map(ingestion::App::local_addr)
    }

    pub fn broker_addr(&self) -> Option<(SocketAddr, &str)> {
        self.broker
            .as_ref()
            .map(|(app, token)| (app.local_addr(), token.as_str()))
    }

    /// The built services, to run with [`keel_service::run_all`].
    pub fn services(self) -> Vec<Box<dyn Service>> {
        let mut services: Vec<Box<dyn Service>> = Vec::new();
        if let Some(app) = self.sources {
            services.push(Box::new(app));
        }
        if let Some(app) = self.listener {
            services.push(Box::new(app));
        }
        if let Some(app) = self.ingestion {
            services.push(Box::new(app));
        }
        if let Some((app, _)) = self.broker {
            services.push(Box::new(app));
        }
        services
    }

    /// Runs every service until `shutdown` (or until one of them fails, which stops the rest).
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        run_all(self.services(), shutdown).await
    }
}
