//! Callbacks: the document for a deployment's phase change, queued in the transaction that
//! makes the change, and the loop that delivers them signed, in order per deployment, with
//! exponential backoff and jitter, and keeps what never got through as dead letters.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tracing::Instrument as _;

use keel_service::{Shutdown, retry::BackoffBuilder as _};
use sqlx::{PgConnection, PgPool};

use crate::{
    domain::{
        callback::{self, Callback},
        cost,
        phase::Phase,
    },
    signing::SigningKey,
    store::{callbacks, deployments::Deployment},
};

/// Queues the callback of `d` entering its current phase.
pub async fn queue(
    conn: &mut PgConnection,
    d: &Deployment,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let phase = d.phase();
    let spec = &d.spec.0;
    let ready = phase == Phase::Ready;
    let body = Callback {
        deployment_id: d.id.clone(),
        resource_type: d.resource_type.clone(),
        resource_name: d.resource_name.clone(),
        namespace: d.namespace.clone(),
        status: callback::status(phase),
        phase,
        message: d.message.clone(),
        error: error.map(str::to_owned),
        time: callback::rfc3339(chrono::Utc::now()),
        endpoint: d.endpoint.clone().filter(|_| ready),
        port: d.port.and_then(|p| u16::try_from(p).ok()).filter(|_| ready),
        connection_secret: d.connection_secret.clone().filter(|_| ready),
        additional_metadata: Some(serde_json::json!({
            "engine": spec.engine.as_str(),
            "version": d.actual.as_ref().and_then(|a| a.0.get("version")).and_then(|v| v.as_str()).unwrap_or(&spec.version),
        })),
        estimated_monthly_cost: Some(cost::monthly(spec)),
    };
    let text = serde_json::to_string(&body).expect("a callback serializes");
    callbacks::enqueue(conn, &d.id, &d.callback_url, &text).await
}

/// How callbacks are delivered.
pub struct Delivery {
    pub db: PgPool,
    /// Notified when a callback is queued; without it the queue is looked at every 100 ms.
    pub wake: Arc<Notify>,
    pub http: reqwest::Client,
    pub key: Arc<SigningKey>,
    pub broker_name: String,
    pub attempts: i32,
    pub backoff: Duration,
    pub timeout: Duration,
}

const USER_AGENT: &str = concat!("KIDP-Broker/", env!("CARGO_PKG_VERSION"), " (keel)");

impl Delivery {
    /// Delivers until `shutdown`, `parallel` callbacks at a time.
    pub async fn run(self: Arc<Self>, parallel: usize, shutdown: Shutdown) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < parallel {
                match callbacks::claim(&self.db, self.timeout * 2).await {
                    Ok(Some(c)) => {
                        let me = self.clone();
                        let span = tracing::info_span!("callback", id = c.id, deployment = %c.deployment_id, attempt = c.attempts);
                        running.spawn(async move { me.deliver(c).await }.instrument(span));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim a callback");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.triggered() => break,
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    async fn deliver(&self, c: callbacks::Callback) {
        let timestamp = callback::rfc3339(chrono::Utc::now());
        let signature = self.key.sign(&timestamp, c.body.as_bytes());
        let sent = self
            .http
            .post(&c.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("user-agent", USER_AGENT)
            .header("x-kidp-broker-name", &self.broker_name)
            .header("x-kidp-timestamp", &timestamp)
            .header("x-kidp-signature", signature)
            .header("x-kidp-public-key", self.key.public_base64())
            .body(c.body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the receiver answered {}", r.status())),
            Err(e) => Some(format!("cannot reach the receiver: {e}")),
        };
        let outcome = match failure {
            None => {
                metrics::counter!("broker_callbacks_total", "outcome" => "delivered").increment(1);
                callbacks::delivered(&self.db, c.id).await
            }
            Some(error) if c.attempts >= self.attempts => {
                tracing::warn!(error, "callback undeliverable; kept as a dead letter");
                metrics::counter!("broker_callbacks_total", "outcome" => "dead").increment(1);
                callbacks::dead(&self.db, c.id, &error).await
            }
            Some(error) => {
                let delay = self.delay(c.attempts);
                tracing::info!(error, ?delay, "callback failed; retrying");
                metrics::counter!("broker_callbacks_total", "outcome" => "retried").increment(1);
                callbacks::retry_later(&self.db, c.id, delay, &error).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot record a callback's outcome; its lease will expire");
        }
    }

    /// The wait after the `attempt`th failure: the base doubling, with jitter.
    fn delay(&self, attempt: i32) -> Duration {
        let mut delays =
            keel_service::retry::backoff(self.backoff, Duration::from_secs(300)).build();
        delays
            .nth(usize::try_from(attempt.max(1) - 1).unwrap_or(0))
            .unwrap_or(Duration::from_secs(300))
    }
}
