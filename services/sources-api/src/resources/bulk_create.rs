//! `POST /bulk_create`: sources, their applications, endpoints and authentications in one
//! transaction, linked by name. Everything is created or nothing is.

use axum::{Json, extract::State, http::StatusCode};
use keel_domain::{AvailabilityStatus, sources_events::Resource};
use keel_sources_http::{ErrorDocument, StrictJson};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{authentications::new_authentication, endpoints, sources::new_source};
use crate::{
    domain::{authentication::Credentials, endpoint::EndpointSettings, limits, parse_flexible_id},
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Event, Write,
        applications::{self, ApplicationRow, NewApplication},
        authentications,
        catalogue::{self, TypeNames},
        endpoints::EndpointRow,
        sources::{self, SourceRow},
    },
    wire::{
        applications::{Application, ApplicationCreateRequest},
        authentications::{Authentication, AuthenticationCreateRequest},
        endpoints::{Endpoint, EndpointCreateRequest},
        sources::{Source, SourceCreateRequest},
    },
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCreateRequest {
    #[serde(default)]
    pub sources: Vec<BulkSource>,
    #[serde(default)]
    pub applications: Vec<BulkApplication>,
    #[serde(default)]
    pub endpoints: Vec<BulkEndpoint>,
    #[serde(default)]
    pub authentications: Vec<BulkAuthentication>,
}

// Each item is its create request with the names that link it, as sources-api-go embeds
// them. (serde's `flatten` keeps `deny_unknown_fields` one level deep only, so an item never
// flattens a type that flattens another.)

/// A source; its type by `source_type_id` or `source_type_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSource {
    #[serde(flatten)]
    pub source: SourceCreateRequest,
    pub source_type_name: Option<String>,
}

/// An application of the source named `source_name`; its type by id or by (part of) its name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkApplication {
    #[serde(flatten)]
    pub application: ApplicationCreateRequest,
    pub application_type_name: Option<String>,
    pub source_name: Option<String>,
}

/// An endpoint of the source named `source_name` (or of the source `source_id`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEndpoint {
    #[serde(flatten)]
    pub settings: EndpointSettings,
    pub availability_status: Option<String>,
    #[schema(value_type = Option<String>)]
    pub source_id: Option<Value>,
    pub source_name: Option<String>,
}

/// An authentication. `resource_name` names its resource: an existing resource's id, or for
/// `application` an application type name, for `endpoint` part of the host, for `source`
/// anything (the first source of the request).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkAuthentication {
    #[serde(flatten)]
    pub credentials: Credentials,
    pub availability_status_error: Option<String>,
    pub resource_type: Option<String>,
    #[schema(value_type = Option<String>)]
    pub resource_id: Option<Value>,
    pub resource_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkCreateResponse {
    pub sources: Vec<Source>,
    pub applications: Vec<Application>,
    pub endpoints: Vec<Endpoint>,
    pub authentications: Vec<Authentication>,
}

/// Most resources one bulk create takes (all four lists together): the whole request is one
/// transaction, and a long one holds back every later event on the cluster.
pub const MAX_RESOURCES: usize = 1000;

/// Application types sources-api-go marks available on creation.
const FORCED_AVAILABLE: [(&str, &str); 2] = [
    ("amazon", "/insights/platform/image-builder"),
    ("google", "/insights/platform/cloud-meter"),
];

struct Created {
    source: SourceRow,
    type_name: String,
}

fn source_type(types: &TypeNames, s: &BulkSource) -> Result<(i64, String)> {
    if let Some(raw) = s.source.source_type_id.as_ref().filter(|v| !v.is_null()) {
        let id = parse_flexible_id(raw)
            .ok_or_else(|| Error::validation("the source type id is not valid"))?;
        return types
            .source_type_name(id)
            .map(|n| (id, n.to_owned()))
            .ok_or_else(|| Error::validation("source type id not found"));
    }
    let Some(name) = s.source_type_name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(Error::bad_request(
            "no source type present, need either [source_type_name] or [source_type_id]",
        ));
    };
    types
        .source_type_id(name)
        .map(|id| (id, name.to_owned()))
        .ok_or_else(|| {
            Error::bad_request(format_args!("invalid source_type_name for lookup: {name}"))
        })
}

async fn application_type(
    w: &mut Write<'_>,
    types: &TypeNames,
    a: &BulkApplication,
) -> Result<(i64, String)> {
    let missing = || {
        Error::bad_request(
            "no application type present, need either [application_type_name] or [application_type_id]",
        )
    };
    if let Some(raw) = a
        .application
        .application_type_id
        .as_ref()
        .filter(|v| !v.is_null())
    {
        let id = parse_flexible_id(raw).ok_or_else(missing)?;
        return types
            .application_type_name(id)
            .map(|n| (id, n.to_owned()))
            .ok_or_else(|| Error::bad_request(format_args!("invalid application type id {id}")));
    }
    let name = a
        .application_type_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(missing)?;
    types.application_type_like(w, name).await?.ok_or_else(|| {
        Error::bad_request(format_args!(
            "failed to lookup application_type_name {name}"
        ))
    })
}

/// The resource an authentication names: an existing resource's id (numeric `resource_name`
/// or `resource_id`), else for `source` the first source of the request, for `application`
/// the application whose type name contains `resource_name`, for `endpoint` the endpoint
/// whose host contains it.
fn authentication_resource(
    a: &BulkAuthentication,
    created: &[Created],
    apps: &[(ApplicationRow, String)],
    endpoints: &[EndpointRow],
) -> Result<i64> {
    let unlinked = || {
        Error::bad_request(
            "failed to link up all authentications - check to make sure the names match up",
        )
    };
    let name = a.resource_name.clone().unwrap_or_default();
    if let Some(id) = name
        .parse::<i64>()
        .ok()
        .or(a.resource_id.as_ref().and_then(parse_flexible_id))
    {
        return Ok(id);
    }
    let kind = a
        .resource_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match kind.as_str() {
        "source" => created.first().map(|c| c.source.id).ok_or_else(unlinked),
        "application" => apps
            .iter()
            .find(|(_, type_name)| !name.is_empty() && type_name.contains(name.as_str()))
            .map(|(row, _)| row.id)
            .ok_or_else(unlinked),
        "endpoint" => endpoints
            .iter()
            .find(|e| {
                !name.is_empty()
                    && e.host
                        .as_deref()
                        .unwrap_or_default()
                        .to_lowercase()
                        .contains(&name.to_lowercase())
            })
            .map(|e| e.id)
            .ok_or_else(unlinked),
        _ => Err(unlinked()),
    }
}

/// Bulk create sources with their applications, endpoints and authentications.
#[utoipa::path(post, path = "/bulk_create", tag = "bulk_create", request_body = BulkCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = BulkCreateResponse), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn bulk_create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<BulkCreateRequest>,
) -> Result<(StatusCode, Json<BulkCreateResponse>)> {
    let resources = req.sources.len()
        + req.applications.len()
        + req.endpoints.len()
        + req.authentications.len();
    if resources > MAX_RESOURCES {
        return Err(Error::bad_request(format_args!(
            "bulk create takes at most {MAX_RESOURCES} resources, got {resources}"
        )));
    }
    let mut w = Write::begin(&state.db, &tenant).await?;
    let types = if req.sources.is_empty() && req.applications.is_empty() {
        TypeNames::default()
    } else {
        catalogue::type_names(&mut w).await?
    };

    let mut created: Vec<Created> = Vec::new();
    for mut s in req.sources {
        let (type_id, type_name) = source_type(&types, &s)?;
        s.source.source_type_id = Some(Value::from(type_id));
        let source = new_source(s.source)?;
        let row = sources::insert(&mut w, &source).await?;
        created.push(Created {
            source: row,
            type_name,
        });
    }

    let mut apps: Vec<(ApplicationRow, String)> = Vec::new();
    for a in &req.applications {
        limits::check(&a.application.limits()).map_err(Error::validation)?;
        let (type_id, type_name) = application_type(&mut w, &types, a).await?;
        let Some(parent) = created
            .iter()
            .find(|c| Some(c.source.name.as_str()) == a.source_name.as_deref())
        else {
            return Err(Error::bad_request(
                "failed to link up all applications - check to make sure the names match up",
            ));
        };
        let forced = FORCED_AVAILABLE
            .contains(&(parent.type_name.as_str(), type_name.as_str()))
            .then_some(AvailabilityStatus::Available);
        let new = NewApplication {
            source_id: parent.source.id,
            application_type_id: type_id,
            extra: a.application.extra.clone(),
            availability_status: forced,
        };
        let row = applications::insert(&mut w, new, || {
            Error::bad_request("the application type is not compatible with the source type")
        })
        .await?;
        apps.push((row, type_name));
    }

    let mut endpoint_rows: Vec<EndpointRow> = Vec::new();
    for e in req.endpoints {
        let source_id = match created
            .iter()
            .find(|c| Some(c.source.name.as_str()) == e.source_name.as_deref())
        {
            Some(c) => Some(Value::from(c.source.id)),
            None => e.source_id.clone(),
        };
        let request = EndpointCreateRequest {
            settings: e.settings,
            availability_status: e.availability_status,
            source_id,
        };
        endpoint_rows.push(endpoints::insert(&mut w, request).await?);
    }

    let mut auth_rows = Vec::new();
    let mut links = Vec::new();
    for a in req.authentications {
        let resource_id = authentication_resource(&a, &created, &apps, &endpoint_rows)?;
        let new = new_authentication(AuthenticationCreateRequest {
            credentials: a.credentials,
            availability_status_error: a.availability_status_error,
            resource_type: a.resource_type,
            resource_id: Some(Value::from(resource_id)),
        })?;
        let row = if new.resource_type == "Application" {
            let (row, link) =
                authentications::insert_for_application(&mut w, &state.secrets, new).await?;
            links.push(link);
            row
        } else {
            authentications::insert(&mut w, &state.secrets, new).await?
        };
        auth_rows.push(row);
    }

    // Events in sources-api-go's order: sources, endpoints, applications, links, authentications.
    let t = &tenant;
    w.announce_all(
        created
            .iter()
            .map(|c| Event::new(Resource::Source.create(), c.source.to_event(t)))
            .chain(
                endpoint_rows
                    .iter()
                    .map(|e| Event::new(Resource::Endpoint.create(), e.to_event(t))),
            )
            .chain(
                apps.iter()
                    .map(|(a, _)| Event::new(Resource::Application.create(), a.to_event(t))),
            )
            .chain(
                links.iter().map(|l| {
                    Event::new(Resource::ApplicationAuthentication.create(), l.to_event(t))
                }),
            )
            .chain(
                auth_rows
                    .iter()
                    .map(|a| Event::new(Resource::Authentication.create(), a.to_event(t))),
            )
            .collect::<Vec<_>>(),
    );
    w.commit().await?;

    Ok((
        StatusCode::CREATED,
        Json(BulkCreateResponse {
            sources: created.into_iter().map(|c| c.source.into()).collect(),
            applications: apps.into_iter().map(|(a, _)| a.into()).collect(),
            endpoints: endpoint_rows.into_iter().map(Endpoint::from).collect(),
            authentications: auth_rows.into_iter().map(Authentication::from).collect(),
        }),
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bulk_create))
}
