//! One module per resource; each owns its routes, wire types and SQL.

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

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

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
