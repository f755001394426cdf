use keel_sources_http::{ErrorDocument, ErrorObject};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, Server,
        security::{ApiKey, ApiKeyValue, SecurityScheme},
    },
};

/// The version prefix whose document is checked in at `openapi/sources-api.json`.
pub const CANONICAL_PREFIX: &str = "/api/sources/v3.1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sources API",
        version = "3.1.0",
        description = "Platform Sources: the sources, applications and credentials that \
            applications such as cost management read data from. Wire-compatible with \
            sources-api-go. Reads need an `x-rh-identity` header (or the \
            `x-rh-sources-org-id` / `x-rh-sources-account-number` headers); writes also \
            need a pre-shared key in `x-rh-sources-psk`."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorDocument, ErrorObject)),
    tags(
        (name = "sources", description = "Sources and their sub-collections"),
        (name = "source_types", description = "The kinds of source"),
        (name = "application_types", description = "Applications sources can be attached to"),
        (name = "app_meta_data", description = "Metadata published by application types"),
        (name = "applications", description = "Applications attached to sources"),
        (name = "authentications", description = "Credentials; passwords are write-only"),
        (name = "endpoints", description = "Where a source's service is reached"),
        (name = "application_authentications", description = "Links between applications and authentications"),
        (name = "bulk_create", description = "Sources with their children in one transaction"),
        (name = "rhc_connections", description = "Red Hat Connector connections shared by sources"),
        (name = "secrets", description = "Tenant credentials not tied to a source; passwords are write-only"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            "identity",
            header(
                "x-rh-identity",
                "base64 of {\"identity\":{\"org_id\":…,\"account_number\":…}}",
            ),
        );
        components.add_security_scheme(
            "psk",
            header(
                "x-rh-sources-psk",
                "a pre-shared key listed in SOURCES_PSKS",
            ),
        );
        doc.security = Some(vec![openapi::security::SecurityRequirement::new(
            "identity",
            Vec::<String>::new(),
        )]);
    }
}

/// The document served under `prefix`: the same paths, with the prefix as the server URL.
pub fn for_prefix(base: &openapi::OpenApi, prefix: &str) -> openapi::OpenApi {
    let mut doc = base.clone();
    doc.servers = Some(vec![Server::new(prefix)]);
    doc
}

/// Completes the generated document: operation ids unique across the API (`<tag>_<handler>`,
/// as OpenAPI requires and client generators rely on) and a description on every response
/// (required too), so handlers only declare the bodies.
pub fn finish_document(doc: &mut openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if let (Some(tag), Some(id)) = (
                operation.tags.as_ref().and_then(|t| t.first()),
                operation.operation_id.as_mut(),
            ) && !id.starts_with(tag.as_str())
            {
                *id = format!("{tag}_{id}");
            }
            for (status, response) in &mut operation.responses.responses {
                if let openapi::RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = match status.as_str() {
                        "200" => "OK",
                        "201" => "Created",
                        "202" => "Accepted",
                        "204" => "No content",
                        "400" => "Bad request: the error document says why",
                        "401" => "No tenancy, or a write without a valid pre-shared key",
                        "404" => "Not found in the caller's tenant",
                        _ => "See the error document",
                    }
                    .to_owned();
                }
            }
        }
    }
}
