//! Provider types, the shapes of their credentials and data sources, when a source's settings
//! are complete (Koku's "screens") and what makes them invalid.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::status::{AWS_ROLE_ARN_MESSAGE, Problem, missing_fields_message, too_long_message};

pub type Object = Map<String, Value>;

/// A cost-management provider type, spelled as Koku stores it (`api_sources.source_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderType {
    Aws,
    AwsLocal,
    Azure,
    AzureLocal,
    Gcp,
    GcpLocal,
    Ocp,
}

/// The cloud a type belongs to: `-local` types behave exactly like their cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Aws,
    Azure,
    Gcp,
    Ocp,
}

const ALL: [ProviderType; 7] = [
    ProviderType::Aws,
    ProviderType::AwsLocal,
    ProviderType::Azure,
    ProviderType::AzureLocal,
    ProviderType::Gcp,
    ProviderType::GcpLocal,
    ProviderType::Ocp,
];

impl ProviderType {
    /// Koku's `SOURCE_PROVIDER_MAP`: the sources-api source type name to the provider type.
    pub fn from_source_type_name(name: &str) -> Option<Self> {
        Some(match name {
            "amazon" => Self::Aws,
            "amazon-local" => Self::AwsLocal,
            "azure" => Self::Azure,
            "azure-local" => Self::AzureLocal,
            "google" => Self::Gcp,
            "google-local" => Self::GcpLocal,
            "openshift" => Self::Ocp,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "AWS",
            Self::AwsLocal => "AWS-local",
            Self::Azure => "Azure",
            Self::AzureLocal => "Azure-local",
            Self::Gcp => "GCP",
            Self::GcpLocal => "GCP-local",
            Self::Ocp => "OCP",
        }
    }

    /// The stored spelling back to the type.
    pub fn parse(stored: &str) -> Option<Self> {
        ALL.into_iter().find(|t| t.as_str() == stored)
    }

    pub fn family(self) -> Family {
        match self {
            Self::Aws | Self::AwsLocal => Family::Aws,
            Self::Azure | Self::AzureLocal => Family::Azure,
            Self::Gcp | Self::GcpLocal => Family::Gcp,
            Self::Ocp => Family::Ocp,
        }
    }

    /// The authentication type whose record carries the credentials; OCP has none (its
    /// cluster id is the source's `source_ref`).
    pub fn authtype(self) -> Option<&'static str> {
        match self.family() {
            Family::Aws => Some("arn"),
            Family::Azure => Some("tenant_id_client_id_client_secret"),
            Family::Gcp => Some("project_id_service_account_json"),
            Family::Ocp => None,
        }
    }

    /// Application `extra` keys a data source must have.
    pub fn required_data_source(self) -> &'static [&'static str] {
        match self.family() {
            Family::Aws => &["bucket"],
            Family::Azure => &["resource_group", "storage_account"],
            Family::Gcp | Family::Ocp => &[],
        }
    }

    /// Application `extra` keys copied into the data source when present.
    pub fn optional_data_source(self) -> &'static [&'static str] {
        match self.family() {
            // report_prefix and report_name: where the CUR is in the bucket (ingestion finds
            // it by listing the bucket when they are absent).
            Family::Aws => &[
                "storage_only",
                "bucket_region",
                "metered",
                "report_prefix",
                "report_name",
            ],
            Family::Azure => &["scope", "export_name", "storage_only", "metered"],
            Family::Gcp => &["dataset", "bucket", "storage_only"],
            Family::Ocp => &[],
        }
    }
}

/// Authentication types whose events concern cost management (Koku's filter).
pub const COST_AUTHTYPES: [&str; 4] = [
    "token",
    "arn",
    "tenant_id_client_id_client_secret",
    "project_id_service_account_json",
];

/// What sources-api holds for a source, as read over REST: the parts credentials are built
/// from.
#[derive(Clone, Default, PartialEq)]
pub struct CredentialParts {
    /// `authentications[authtype].username`.
    pub username: Option<String>,
    /// The authentication's password, from the internal API.
    pub password: Option<String>,
    /// `authentications[authtype].extra`.
    pub auth_extra: Object,
    /// The cost-management application's `extra`.
    pub app_extra: Object,
    /// The source's `source_ref` (OCP cluster id).
    pub source_ref: Option<String>,
}

/// The password never prints: logs and panics show it redacted.
impl std::fmt::Debug for CredentialParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialParts")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth_extra", &self.auth_extra)
            .field("app_extra", &self.app_extra)
            .field("source_ref", &self.source_ref)
            .finish()
    }
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.trim().is_empty())
}

fn text_at<'a>(object: &'a Object, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut at = object;
    for key in parents {
        at = at.get(*key)?.as_object()?;
    }
    non_empty(at.get(*last)?.as_str())
}

/// Builds the credentials Koku stores for the type (`authentication.credentials`). Values
/// sources-api does not have yet are left out, so the settings stay incomplete.
pub fn credentials(ty: ProviderType, parts: &CredentialParts) -> Object {
    let mut c = Object::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(v) = non_empty(value) {
            c.insert(key.to_owned(), Value::String(v.to_owned()));
        }
    };
    match ty.family() {
        Family::Aws => {
            // The role ARN is the username, or the password when the username is empty.
            put(
                "role_arn",
                non_empty(parts.username.as_deref()).or(parts.password.as_deref()),
            );
            if c.contains_key("role_arn") {
                let external_id = text_at(&parts.auth_extra, &["external_id"])
                    .map_or(Value::Null, |s| Value::String(s.to_owned()));
                c.insert("external_id".to_owned(), external_id);
            }
        }
        Family::Azure => {
            put("client_id", parts.username.as_deref());
            put("client_secret", parts.password.as_deref());
            put(
                "subscription_id",
                text_at(&parts.app_extra, &["subscription_id"]),
            );
            put(
                "tenant_id",
                text_at(&parts.auth_extra, &["azure", "tenant_id"]),
            );
        }
        Family::Gcp => put("project_id", parts.username.as_deref()),
        Family::Ocp => put("cluster_id", parts.source_ref.as_deref()),
    }
    c
}

/// The data source from the application's `extra`: `None` until every required key is there
/// (OCP has none: its billing source stays `{}`). GCP's is `None` while `extra` holds none of
/// its keys, as Koku does not save an empty one.
pub fn data_source(ty: ProviderType, app_extra: &Object) -> Option<Object> {
    if ty.family() == Family::Ocp {
        return Some(Object::new());
    }
    let mut ds = Object::new();
    for key in ty.required_data_source() {
        match app_extra.get(*key) {
            Some(v) if !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()) => {
                ds.insert((*key).to_owned(), v.clone());
            }
            _ => return None,
        }
    }
    for key in ty.optional_data_source() {
        if let Some(v) = app_extra.get(*key).filter(|v| !v.is_null()) {
            ds.insert((*key).to_owned(), v.clone());
        }
    }
    (!ds.is_empty()).then_some(ds)
}

const AZURE_CREDENTIALS: [&str; 4] = ["client_id", "client_secret", "subscription_id", "tenant_id"];

/// Koku's readiness screens: whether the settings are complete enough to create a provider.
pub fn settings_ready(
    ty: ProviderType,
    credentials: &Object,
    data_source: Option<&Object>,
) -> bool {
    match ty.family() {
        Family::Aws => {
            credentials.contains_key("role_arn") && data_source.is_some_and(|d| !d.is_empty())
        }
        Family::Ocp => credentials.contains_key("cluster_id"),
        Family::Azure => {
            // Exactly the four keys, and resource group plus storage account.
            credentials.len() == AZURE_CREDENTIALS.len()
                && AZURE_CREDENTIALS
                    .iter()
                    .all(|k| credentials.contains_key(*k))
                && data_source.is_some_and(|d| {
                    d.contains_key("resource_group") && d.contains_key("storage_account")
                })
        }
        Family::Gcp => {
            credentials.contains_key("project_id") && data_source.is_some_and(|d| !d.is_empty())
        }
    }
}

static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$")
        .expect("valid regex")
});

/// Checks complete settings before a provider is built from them, as Koku's provider
/// serializer does (the parts that need no cloud account): required fields, the shape of an
/// AWS role ARN, GCP's report prefix length, OCP's empty data source.
pub fn validate(
    ty: ProviderType,
    credentials: &Object,
    data_source: &Object,
) -> Result<(), Problem> {
    let required: &[&str] = match ty.family() {
        Family::Aws => &["role_arn"],
        Family::Azure => &AZURE_CREDENTIALS,
        Family::Gcp => &["project_id"],
        Family::Ocp => &["cluster_id"],
    };
    if let Some(missing) = required.iter().find(|k| !credentials.contains_key(**k)) {
        return Err(Problem::new(
            format!("authentication.{missing}"),
            missing_fields_message(),
        ));
    }
    match ty.family() {
        Family::Aws => {
            let arn = credentials
                .get("role_arn")
                .and_then(Value::as_str)
                .unwrap_or("");
            if arn.len() > 2048 || !ROLE_ARN.is_match(arn.trim()) {
                return Err(Problem::new(
                    "authentication.role_arn.unreachable",
                    AWS_ROLE_ARN_MESSAGE,
                ));
            }
        }
        Family::Gcp => {
            let too_long = data_source
                .get("report_prefix")
                .and_then(Value::as_str)
                .is_some_and(|p| p.chars().count() > 64);
            if too_long {
                return Err(Problem::new(
                    "billing_source.data_source.report_prefix",
                    too_long_message(64),
                ));
            }
        }
        Family::Ocp if !data_source.is_empty() => {
            return Err(Problem::new("billing_source", missing_fields_message()));
        }
        Family::Azure | Family::Ocp => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
