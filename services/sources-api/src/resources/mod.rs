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

use keel_db::{Listing, Scope, Table};
use keel_sources_http::{Collection, ListParams};
use sqlx::{FromRow, postgres::PgRow};
use utoipa_axum::router::OpenApiRouter;

use crate::{error::Result, state::AppState};

/// One page of `table` within `scopes`, each row turned into its wire type: every list route
/// of every resource goes through here.
pub(crate) async fn collection<Row, Out>(
    state: &AppState,
    table: &'static Table,
    select: &'static str,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Out>>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    Out: From<Row>,
{
    let page = Listing {
        table,
        select,
        scopes,
        query: &params.query,
    }
    .fetch::<Row>(&state.db)
    .await?;
    let data = page.rows.into_iter().map(Out::from).collect();
    Ok(Collection::new(data, page.count, params))
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
