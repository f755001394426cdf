use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use http::HeaderValue;
use tracing::{Instrument as _, field::Empty};

tokio::task_local! {
    /// The id the caller sent for this request (`x-rh-insights-request-id`, or
    /// `x-rh-edge-request-id`), if any.
    static SENT_REQUEST_ID: Option<String>;
}

/// The request id the caller sent for the request being handled: some error documents echo
/// it (sources-api-go puts it in 500 bodies).
pub fn current_request_id() -> Option<String> {
    SENT_REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

/// The id of a request (the caller's, or a new UUID), as a request extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn sent_request_id(req: &Request) -> Option<String> {
    [
        "x-rh-insights-request-id",
        "x-rh-edge-request-id",
        "x-request-id",
    ]
    .iter()
    .find_map(|h| req.headers().get(*h))
    .and_then(|v| v.to_str().ok())
    .map(str::to_owned)
}

/// A span per request with a request id, the `X-Request-Duration-Ms` header, and
/// `http_requests_total` / `http_request_duration_seconds` by method, route and status.
pub(super) async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let sent = sent_request_id(&req);
    let request_id = sent
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    req.extensions_mut().insert(RequestId(request_id.clone()));
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
    let mut response = SENT_REQUEST_ID
        .scope(sent, next.run(req))
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
