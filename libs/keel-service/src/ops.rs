//! The operational routes every service serves: `/health` and `/livez` (the process answers),
//! `/readiness` and `/readyz` (its dependencies are usable), `/metrics` (Prometheus). The
//! `z` names are the ones Koku's probes use.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

/// One readiness check: resolves to `Ok(detail)` (e.g. `"ok"`, or figures worth showing) or
/// `Err(reason)` when the dependency is not usable.
pub type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The dependencies `/readiness` checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// A `SELECT 1` against the pool.
    pub fn with_postgres(self, pool: sqlx::PgPool) -> Self {
        self.with_check("database", move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| "ok".to_owned())
                    .map_err(|e| e.to_string())
            }
        })
    }

    async fn report(&self) -> Response {
        let mut ready = true;
        let mut checks = serde_json::Map::new();
        for (name, check) in &self.checks {
            let status = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(detail)) => detail,
                Ok(Err(reason)) => {
                    ready = false;
                    reason
                }
                Err(_) => {
                    ready = false;
                    format!("timed out after {}s", CHECK_TIMEOUT.as_secs())
                }
            };
            checks.insert((*name).to_owned(), status.into());
        }
        let (code, status) = if ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        };
        (code, Json(json!({ "status": status, "checks": checks }))).into_response()
    }
}

/// The operational routes, answering from `readiness` and the process's Prometheus recorder.
pub fn router<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> Router<S> {
    let ready = {
        let readiness = readiness.clone();
        move || {
            let readiness = readiness.clone();
            async move { readiness.report().await }
        }
    };
    probes_and_metrics(readiness)
        .route("/health", get(|| async { "OK" }))
        .route("/readiness", get(ready))
}

/// `/livez`, `/readyz` and `/metrics` only: for a service whose `/health` and `/readiness`
/// answer in its original's own format.
pub fn probes_and_metrics<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> Router<S> {
    let metrics = keel_telemetry::prometheus();
    let ready = move || {
        let readiness = readiness.clone();
        async move { readiness.report().await }
    };
    Router::new()
        .route("/livez", get(|| async { "OK" }))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
}
