//! The seed's routes: `/health`, `/readiness`, `/v1/provision`, `/v1/deprovision`,
//! `/v1/resources` (GET and POST), `/v1/status`; and Keel's `/v1/signing-key`,
//! `/v1/secrets/{name}` (credentials, once) and `/v1/dead-letters`. Every `/v1` route needs a
//! bearer token and counts against its client's rate limit. Routes and the OpenAPI document
//! (`/openapi.json`, checked in at `openapi/broker.json`) come from the same annotations.

mod letters;
pub mod limit;
mod provision;
mod reads;
mod secrets;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::Digest as _;
use sqlx::PgPool;
use tokio::sync::Notify;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain,
    drivers::Drivers,
    error::{Error, ErrorBody, Result},
    signing::SigningKey,
    store::deployments,
};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub drivers: Drivers,
    pub secrets: Arc<keel_crypto::SecretBox>,
    pub key: Arc<SigningKey>,
    /// SHA-256 of each accepted bearer token.
    pub tokens: Arc<Vec<[u8; 32]>>,
    pub limiter: Arc<limit::Limiter>,
    pub rate_limit_per_minute: u32,
    /// Wakes the workers: an operation is owed.
    pub wake: Arc<Notify>,
    /// Wakes the callback delivery: a callback is queued.
    pub deliver: Arc<Notify>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keel broker",
        description = "The KIDP deployment broker's API: provisions databases, caches and queues, reports drift, and sends each phase change to a signed callback."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The `/v1` routes (authenticated, rate limited) and the probes, with their document.
fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(provision::provision))
        .routes(routes!(provision::deprovision))
        .routes(routes!(reads::resources_get, reads::resources_post))
        .routes(routes!(reads::status))
        .routes(routes!(reads::signing_key))
        .routes(routes!(secrets::read_secret))
        .routes(routes!(secrets::rotate))
        .routes(routes!(letters::list))
        .routes(routes!(letters::resend));
    let probes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(readiness));
    (v1, probes)
}

/// The OpenAPI document, as checked in at `openapi/broker.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (v1, probes) = routes();
    probes.merge(v1).into_openapi()
}

pub fn router(state: AppState) -> Router {
    let (v1, probes) = routes();
    let v1 = v1
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::limit,
        ));
    let (app, doc) = probes.merge(v1).split_for_parts();
    app.merge(keel_service::openapi::document("/openapi.json", &doc))
        .layer(axum::middleware::from_fn(timed))
        .with_state(state)
}

/// `broker_http_request_duration_seconds{endpoint,method}`, the name KIDP's docs give (beside
/// the request metrics every Keel service records).
async fn timed(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!("broker_http_request_duration_seconds", "endpoint" => endpoint, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The operations port (9090): the seed's `/health` and `/readiness` bodies there too, so a
/// probe pointed at either port reads the same.
pub fn probes(state: AppState) -> Router {
    Router::new()
        .route("/health", axum::routing::get(health))
        .route("/readiness", axum::routing::get(readiness))
        .with_state(state)
}

/// The seed's health body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "healthy")]
    status: &'static str,
    version: &'static str,
    /// RFC 3339.
    time: String,
}

/// Alive: answers without touching anything.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "healthy",
        version: VERSION,
        time: domain::callback::rfc3339(chrono::Utc::now()),
    })
}

/// The seed's readiness body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
    /// `ok`, or what does not answer.
    reason: String,
    version: &'static str,
}

/// Ready when the broker's database and every configured target answer.
#[utoipa::path(
    get,
    path = "/readiness",
    tag = "probes",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Something does not answer", body = Readiness),
    )
)]
async fn readiness(State(s): State<AppState>) -> Response {
    let mut reason = match deployments::ping(&s.db).await {
        Ok(_) => None,
        Err(e) => Some(format!("database not accessible: {e}")),
    };
    if reason.is_none()
        && let Err(e) = s.drivers.check_all().await
    {
        reason = Some(e);
    }
    let ready = reason.is_none();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        reason: reason.unwrap_or_else(|| "ok".into()),
        version: VERSION,
    };
    (code, Json(body)).into_response()
}

/// Who made a request: the token's fingerprint, for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
}

async fn authorize(
    State(s): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response> {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Error::Unauthorized("a bearer token is required".into()))?;
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    // Comparing digests: equal-length values, so the time taken says nothing of the token.
    if !s
        .tokens
        .iter()
        .any(|t| bool::from(subtle::ConstantTimeEq::ct_eq(&t[..], &hash[..])))
    {
        return Err(Error::Unauthorized(
            "the bearer token is not accepted".into(),
        ));
    }
    let token: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    request.extensions_mut().insert(Caller { token });
    Ok(next.run(request).await)
}

/// Decodes a JSON body, answering `invalid_request` for what is not JSON of the right shape,
/// and `validation_failed` for a string holding a NUL (PostgreSQL stores none).
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let invalid = |e: serde_json::Error| Error::InvalidRequest(format!("invalid JSON body: {e}"));
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if let Some(path) = nul_in(&value, String::new()) {
        return Err(Error::Validation(format!(
            "{path} must not contain a NUL character"
        )));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// Where in `value` a string (or key) holds a NUL, as a dotted path.
fn nul_in(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join("<key>"))
            } else {
                nul_in(v, join(k))
            }
        }),
        _ => None,
    }
}

/// An optional text input, refused when it holds a NUL (PostgreSQL stores none).
fn text<'a>(field: &str, v: Option<&'a str>) -> Result<Option<&'a str>> {
    match v {
        Some(s) if s.contains('\0') => Err(Error::Validation(format!(
            "{field} must not contain a NUL character"
        ))),
        other => Ok(other),
    }
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str> {
    text(field, v.as_deref())?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::Validation(format!("{field} is required")))
}

fn check_url(url: &str) -> Result<()> {
    let ok = reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "callbackUrl {url:?} is not an http(s) URL"
        )))
    }
}
