use std::{future::Future, pin::Pin, sync::Arc, time::Instant};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request},
    http::{HeaderValue, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracing::{Instrument as _, field::Empty};

use crate::error::REQUEST_ID;

/// One readiness check: resolves to `Ok(detail)` (e.g. `"ok"`, or figures worth showing) or
/// `Err(reason)` when the dependency is not usable.
pub type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

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
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), check()).await;
            let status = match outcome {
                Ok(Ok(detail)) => detail,
                Ok(Err(reason)) => {
                    ready = false;
                    reason
                }
                Err(_) => {
                    ready = false;
                    "timed out after 3s".to_owned()
                }
            };
            checks.insert((*name).to_owned(), status.into());
        }
        let code = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let status = if ready { "ready" } else { "not ready" };
        (code, Json(json!({ "status": status, "checks": checks }))).into_response()
    }
}

/// `/health` (200 `OK` as text, like sources-api-go), `/readiness` and `/metrics`.
pub fn ops_router<S: Clone + Send + Sync + 'static>(
    readiness: Readiness,
    metrics: PrometheusHandle,
) -> Router<S> {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route(
            "/readiness",
            get(move || {
                let readiness = readiness.clone();
                async move { readiness.report().await }
            }),
        )
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

fn message(status: StatusCode, text: &'static str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// Unknown routes answer like echo's default handler.
pub async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

pub async fn method_not_allowed() -> Response {
    message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn request_id_header(req: &Request) -> Option<String> {
    ["x-rh-insights-request-id", "x-rh-edge-request-id"]
        .iter()
        .find_map(|h| req.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A span per request with a request id, the `X-Request-Duration-Ms` header sources-api-go
/// sends, and request metrics.
async fn observe(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let sent_id = request_id_header(&req);
    let request_id = sent_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = matched
        .as_ref()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        %method,
        route = %route,
        path = %req.uri().path(),
        request_id = %request_id,
        status = Empty,
        tenant_id = Empty,
    );
    let mut response = REQUEST_ID
        .scope(sent_id, next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.record("status", status);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(elapsed_ms = elapsed.as_millis() as u64, "request failed");
        } else {
            tracing::info!(elapsed_ms = elapsed.as_millis() as u64, "request completed");
        }
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&elapsed.as_millis().to_string()) {
        response
            .headers_mut()
            .insert("x-request-duration-ms", value);
    }
    response
}

/// Adds the request middleware and the echo-style 404/405 answers to a service's router.
pub fn instrument(router: Router) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(observe))
}

/// Strips one trailing slash before routing, as echo's `RemoveTrailingSlash` does, except under
/// the prefixes in `keep` (the interactive docs need theirs).
fn trim_trailing_slash(mut req: Request, keep: &[&str]) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') && !keep.iter().any(|k| path.starts_with(k)) {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    keep_trailing_slash: &'static [&'static str],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router.map_request(move |req| trim_trailing_slash(req, keep_trailing_slash));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        trim_trailing_slash(req, &["/docs/"]).uri().to_string()
    }

    #[test]
    fn trailing_slashes_are_trimmed_except_under_kept_prefixes() {
        assert_eq!(
            trimmed("/api/sources/v3.1/sources/"),
            "/api/sources/v3.1/sources"
        );
        assert_eq!(trimmed("/a/?x=1"), "/a?x=1");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("/docs/"), "/docs/");
    }
}
