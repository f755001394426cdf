//! The HTTP routes: one module per resource, each with its handlers and router. Handlers
//! parse the request into domain values, call the store, and answer in the wire types; no
//! SQL lives here (a test checks it).

#[macro_use]
mod routes;

pub mod app_meta_data;
pub mod application_authentications;
pub mod application_types;
pub mod applications;
pub mod authentications;
pub mod bulk_create;
pub mod endpoints;
pub mod internal;
pub mod rhc_connections;
pub mod secrets;
pub mod source_types;
pub mod sources;

use keel_db::Page;
use keel_sources_http::{Collection, ListParams};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// A page of rows as the collection envelope of their wire type.
pub(crate) fn collection<Row, Out: From<Row>>(
    page: Page<Row>,
    params: &ListParams,
) -> Collection<Out> {
    let data = page.rows.into_iter().map(Out::from).collect();
    Collection::new(data, page.count, params)
}

/// Every resource route, relative to a version prefix.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(sources::router())
        .merge(source_types::router())
        .merge(application_types::router())
        .merge(app_meta_data::router())
        .merge(applications::router())
        .merge(authentications::router())
        .merge(endpoints::router())
        .merge(application_authentications::router())
        .merge(bulk_create::router())
        .merge(rhc_connections::router())
        .merge(secrets::router())
}
