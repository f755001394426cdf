//! sources-api and a listener on the bench's scratch database, in this process.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, bail};
use keel_service::{KafkaSettings, Shutdown, config::Secret};

use super::ListenerBench;
use crate::{bench::wait_until, stack::StackConfig};

pub(super) const PSK: &str = "keel-bench-listener";

/// sources-api and a listener on the scratch database.
pub(super) struct Services {
    pub(super) sources_url: String,
    listener_config: listener::Config,
    stop: Shutdown,
    sources: tokio::task::JoinHandle<anyhow::Result<()>>,
    listener: Option<(
        String,
        Shutdown,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    pub(super) http: reqwest::Client,
    /// The listener's workers.
    pub(super) workers: usize,
}

impl Services {
    pub(super) async fn start(b: &ListenerBench, url: &str) -> anyhow::Result<Self> {
        // Before anything runs, so every service's spans are seen.
        keel_telemetry::statements::start_counting();
        let key = Secret::new(keel_crypto::SecretBox::generate_key());
        let kafka = b.kafka_brokers.clone().map(KafkaSettings::plain);
        let mut sources = sources_api::Config::for_database(url);
        sources.psks = vec![PSK.to_owned()];
        sources.common.encryption_key = Some(key.clone());
        sources.common.kafka = kafka.clone();
        sources.common.database_max_connections = 20;
        let mut config = listener::Config::for_database(url, "");
        config.common.encryption_key = Some(key.clone());
        config.credential_key = Some(listener::CredentialKey::Key(key));
        config.common.kafka = kafka;
        config.workers = b.workers;
        config.spare_tenants = b.spare_tenants;
        // Workers hold a connection only for a statement, never across an HTTP call.
        config.common.database_max_connections = (config.workers as u32 / 2 + 8).max(20);
        // Every run gets a group of its own: a Kafka group keeps its offsets across runs.
        config.consumer_group = format!("hccm-sources-bench-{}", uuid::Uuid::new_v4().simple());
        // Built together for the wiring; the listener is stopped and built again later.
        let stack = StackConfig {
            sources: Some(sources),
            listener: Some(config),
            ingestion: None,
            broker: None,
        }
        .build()
        .await?;
        let sources_url = format!(
            "http://{}",
            stack.sources_addr().context("sources-api built")?
        );
        let listener_config = stack
            .listener_config
            .clone()
            .context("listener configured")?;
        let first_listener = stack.listener.context("listener built")?;
        let app = stack.sources.context("sources-api built")?;
        let stop = Shutdown::default();
        let task = tokio::spawn(app.run(stop.clone()));
        let workers = listener_config.workers;
        let mut services = Self {
            workers,
            sources_url,
            listener_config,
            stop,
            sources: task,
            listener: None,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(b.concurrency * 2)
                .build()?,
        };
        services.start_listener(Some(first_listener)).await?;
        Ok(services)
    }

    /// Runs `built`, or a listener built again from the wired configuration.
    pub(super) async fn start_listener(
        &mut self,
        built: Option<listener::App>,
    ) -> anyhow::Result<()> {
        let app = match built {
            Some(app) => app,
            None => Box::pin(listener::App::build(&self.listener_config)).await?,
        };
        let base = format!("http://{}", app.local_addr());
        let stop = self.stop.child();
        let task = tokio::spawn(app.run(stop.clone()));
        let readiness = format!("{base}/readiness");
        let http = self.http.clone();
        let ready = wait_until(Duration::from_secs(60), || {
            let (http, readiness) = (http.clone(), readiness.clone());
            async move {
                Ok(http
                    .get(readiness)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()))
            }
        })
        .await?;
        if !ready {
            bail!("the listener did not become ready within a minute");
        }
        self.listener = Some((base, stop, task));
        Ok(())
    }

    pub(super) async fn stop_listener(&mut self) -> anyhow::Result<()> {
        if let Some((_, stop, task)) = self.listener.take() {
            stop.trigger();
            task.await??;
        }
        Ok(())
    }

    /// `listener_events_total` summed over types and outcomes. Both services share this
    /// process's metrics recorder, so sources-api's /metrics serves it too, also while the
    /// listener is stopped.
    pub(super) async fn events_consumed(&self) -> anyhow::Result<f64> {
        let counted = self.counted("listener_events_total", &[]).await?;
        Ok(counted.values().sum())
    }

    /// `http_requests_total` by method and route (every service of this process counts into
    /// it), without the bench's own calls (creates, readiness, metrics).
    pub(super) async fn http_calls(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut calls = self
            .counted("http_requests_total", &["method", "route"])
            .await?;
        calls.retain(|call, _| {
            let route = call.split_once(' ').map_or("", |(_, route)| route);
            !(route.ends_with("/bulk_create") || route == "/readiness" || route == "/metrics")
        });
        Ok(calls)
    }

    /// The listener's operations by kind and result (`provider_operations_total`): how many
    /// ran more than once, as a postponed one does.
    pub(super) async fn operations(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        self.counted("provider_operations_total", &["operation", "result"])
            .await
    }

    /// A counter's values by the given labels (joined by a space), summed over the others.
    async fn counted(
        &self,
        metric: &str,
        labels: &[&str],
    ) -> anyhow::Result<BTreeMap<String, f64>> {
        let text = self.metrics().await?;
        let mut counted = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.strip_prefix(metric).is_some_and(|l| l.starts_with('{')))
        {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                line[start..].split('"').next()
            };
            let key: Option<Vec<&str>> = labels.iter().map(|name| label(name)).collect();
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let (Some(key), Some(value)) = (key, value) {
                *counted.entry(key.join(" ")).or_default() += value;
            }
        }
        Ok(counted)
    }

    /// This process's metrics (sources-api's `/metrics` renders the process's one recorder).
    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.sources_url))
            .send()
            .await?
            .text()
            .await?)
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_listener().await?;
        self.stop.trigger();
        self.sources.await?
    }
}
