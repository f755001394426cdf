use axum::{Json, extract::State, http::StatusCode};
use keel_domain::sources_events::Resource;
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    domain::{go_value, parse_flexible_id},
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Tenant, Write, application_authentications,
        authentications::{self, AuthenticationFilter},
    },
    wire::{
        application_authentications::{
            ApplicationAuthentication, ApplicationAuthenticationCreateRequest,
        },
        authentications::Authentication,
    },
};

tenant_list! {
    /// List application authentications.
    list: "/application_authentications", "application_authentications",
        ApplicationAuthentication, application_authentications::list
}

tenant_get! {
    /// Get an application authentication.
    get: "/application_authentications/{id}", "application_authentications",
        "Application authentication id", ApplicationAuthentication,
        application_authentications::find
}

/// Link an authentication to an application.
#[utoipa::path(post, path = "/application_authentications", tag = "application_authentications",
    request_body = ApplicationAuthenticationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = ApplicationAuthentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<ApplicationAuthenticationCreateRequest>,
) -> Result<(StatusCode, Json<ApplicationAuthentication>)> {
    let id = |raw: &Option<Value>, name: &str| -> Result<i64> {
        let raw = raw
            .as_ref()
            .filter(|v| !v.is_null())
            .ok_or_else(|| Error::validation(format_args!("missing required parameter {name}")))?;
        parse_flexible_id(raw)
            .ok_or_else(|| Error::validation(format_args!("invalid {name} {}", go_value(raw))))
    };
    let application_id = id(&req.application_id, "application_id")?;
    let authentication_id = id(&req.authentication_id, "authentication_id")?;
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row =
        application_authentications::insert(&mut w, application_id, authentication_id).await?;
    w.announce(
        Resource::ApplicationAuthentication.create(),
        row.to_event(&tenant),
    );
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

tenant_delete! {
    /// Unlink an authentication from an application.
    delete: "/application_authentications/{id}", "application_authentications",
        "Application authentication id", application_authentications::delete
}

/// The authentication an application authentication links to.
#[utoipa::path(get, path = "/application_authentications/{application_authentication_id}/authentications",
    tag = "application_authentications",
    params(("application_authentication_id" = String, Path, description = "Application authentication id"), ListQueryDoc),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    let link = application_authentications::find(&state.db, &tenant, id.get()).await?;
    let filter = AuthenticationFilter::One(link.authentication_id);
    let page = authentications::list(&state.db, &tenant, filter, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
        .routes(routes!(list_authentications))
}
