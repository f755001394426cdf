//! The listener's read API under `/api/cost-management/v1`, Koku-compatible where Koku has the
//! route, scoped to the caller's org (from `x-rh-identity` or `x-rh-sources-org-id`).

pub mod providers;
pub mod source_status;
pub mod sources;

use keel_sources_http::{HttpError, Tenancy};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::{error::Error, state::AppState};

pub const PREFIX: &str = "/api/cost-management/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keel listener",
        description = "Sources turned into cost-management providers: their sync state and providers, and Koku's source-status endpoint."
    ),
    components(schemas(keel_sources_http::ErrorDocument, keel_sources_http::ErrorObject))
)]
pub struct ApiDoc;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(source_status::router())
        .merge(sources::router())
        .merge(providers::router())
}

/// The org a request is scoped to (with `SCHEMA_SUFFIX`, as stored).
pub fn org_of(tenancy: &Tenancy, suffix: &str) -> Result<String, Error> {
    let org = tenancy
        .0
        .org_id
        .clone()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::Http(HttpError::unauthorized("the identity names no org_id")))?;
    Ok(if org.ends_with(suffix) {
        org
    } else {
        format!("{org}{suffix}")
    })
}

/// `limit` and `offset`, as Koku's pagination takes them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (default 10, at most 1000).
    limit: Option<String>,
    /// Items skipped.
    offset: Option<String>,
}

impl PageParams {
    pub fn parse(&self) -> Result<(i64, i64), Error> {
        let number = |raw: &Option<String>, name: &str, default: i64| -> Result<i64, Error> {
            match raw.as_deref() {
                None | Some("") => Ok(default),
                Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Error::bad_request(format!("{name} must be a non-negative integer"))
                }),
            }
        };
        let limit = number(&self.limit, "limit", 10)?.clamp(1, 1000);
        Ok((limit, number(&self.offset, "offset", 0)?))
    }
}

/// Koku's list envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub meta: Meta,
    pub links: Links,
    pub data: Vec<T>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    pub first: String,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub last: String,
}

impl<T> Page<T> {
    pub fn new(path: &str, data: Vec<T>, count: i64, limit: i64, offset: i64) -> Self {
        let link = |o: i64| format!("{PREFIX}{path}?limit={limit}&offset={o}");
        let last = if count == 0 {
            0
        } else {
            (count - 1) / limit * limit
        };
        Self {
            meta: Meta { count },
            links: Links {
                first: link(0),
                next: (offset + limit < count).then(|| link(offset + limit)),
                previous: (offset > 0).then(|| link((offset - limit).max(0))),
                last: link(last),
            },
            data,
        }
    }
}
