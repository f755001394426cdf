use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    middleware::{self, Next},
    response::Response,
};
use http::{StatusCode, header::CONTENT_TYPE};
use tower_http::{
    catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer, timeout::TimeoutLayer,
};

use super::{ErrorFormat, HttpOptions, observe};

/// Status of a request that ran past the deadline, before it is rendered.
const TIMED_OUT: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Adds to `router`, outermost first: the request span and metrics, the error-format rewrite,
/// the body limit, the timeout and panic catching; and unknown routes and methods answered by
/// `format`. Panics, timeouts and oversized bodies are answered in `format` too, so a service
/// never shows another service's error document.
pub fn apply<F: ErrorFormat>(router: Router, format: F, options: &HttpOptions) -> Router {
    let (not_found, not_allowed, panicked, rewrite) =
        (format.clone(), format.clone(), format.clone(), format);
    router
        .fallback(move || {
            let format = not_found.clone();
            async move { format.not_found() }
        })
        .method_not_allowed_fallback(move || {
            let format = not_allowed.clone();
            async move { format.method_not_allowed() }
        })
        .layer(CatchPanicLayer::custom(
            move |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a handler panicked");
                panicked.error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            },
        ))
        .layer(TimeoutLayer::with_status_code(
            TIMED_OUT,
            options.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(RequestBodyLimitLayer::new(options.body_limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let format = rewrite.clone();
            async move { in_service_format(&format, next.run(req).await) }
        }))
        .layer(middleware::from_fn(observe::observe))
}

/// The layers' own answers carry no JSON: an empty 503 from the timeout, a text/plain 413 from
/// the body limit (or from an extractor that hit it). Those become the service's document;
/// anything a handler rendered passes untouched.
fn in_service_format<F: ErrorFormat>(format: &F, response: Response) -> Response {
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if plain => {
            format.error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        TIMED_OUT if plain && response.headers().get(CONTENT_TYPE).is_none() => {
            tracing::warn!("request timed out");
            format.error(TIMED_OUT, "request timed out")
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Json, body::Body, routing::post};
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Clone)]
    struct Doc;

    impl ErrorFormat for Doc {
        fn error(&self, status: StatusCode, message: &str) -> Response {
            use axum::response::IntoResponse as _;
            (
                status,
                Json(json!({ "problem": message, "code": status.as_u16() })),
            )
                .into_response()
        }
    }

    fn app() -> Router {
        let router = Router::new()
            .route("/echo", post(|body: axum::body::Bytes| async move { body }))
            .route(
                "/panic",
                post(|| async {
                    if true {
                        panic!("boom");
                    }
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        apply(
            router,
            Doc,
            &HttpOptions {
                request_timeout: Duration::from_millis(100),
                body_limit: 16,
                ..HttpOptions::default()
            },
        )
    }

    async fn call(path: &str, body: Body) -> (StatusCode, Value) {
        let response = app()
            .oneshot(
                Request::post(path)
                    .header("content-type", "application/octet-stream")
                    .body(body)
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn panics_timeouts_and_large_bodies_answer_in_the_service_format() {
        let (status, body) = call("/panic", Body::empty()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["problem"], "Internal Server Error");

        let (status, body) = call("/slow", Body::empty()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["problem"], "request timed out");

        let (status, body) = call("/echo", Body::from(vec![b'x'; 17])).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["problem"], "request body too large");

        // A body without a length (chunked) is cut by the extractor instead.
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(vec![b'x'; 17])]);
        let (status, body) = call("/echo", Body::from_stream(stream)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], 413);

        let (status, _) = call("/echo", Body::from("short")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_use_the_format() {
        let (status, body) = call("/nowhere", Body::empty()).await;
        assert_eq!(
            (status, body["problem"].as_str()),
            (StatusCode::NOT_FOUND, Some("Not Found"))
        );
        let response = app()
            .oneshot(Request::get("/echo").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
