//! The custom resources: `ExternalSource` (`source.flux.oddkin.co/v1alpha1`, this controller's,
//! as the seed's schema) and Flux's `ExternalArtifact` (`source.toolkit.fluxcd.io/v1`,
//! mirrored for writing; Flux ships its CRD).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "source.flux.oddkin.co";
pub const API_VERSION: &str = "source.flux.oddkin.co/v1alpha1";

/// Fetches external HTTP data on an interval and publishes it as a Flux ExternalArtifact.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "source.flux.oddkin.co",
    version = "v1alpha1",
    kind = "ExternalSource",
    namespaced,
    status = "ExternalSourceStatus",
    shortname = "exs",
    category = "fluxcd-sources",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSourceSpec {
    /// How often the source is fetched (`5m`, `1h30m`); at least 1m.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "duration(self) >= duration('1m')", "message": "interval must be at least 1m"}]))]
    pub interval: String,
    /// Stops fetching while true; the last artifact stays published.
    #[serde(default)]
    pub suspend: bool,
    /// Where the data lies inside the artifact (a relative path without `..`).
    #[serde(default = "default_destination")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "!self.startsWith('/') && !self.split('/').exists(p, p == '..')", "message": "destinationPath must be relative and stay inside the artifact"}]))]
    pub destination_path: String,
    /// Attempts shared by the request and every hook before the source stalls.
    #[serde(default = "default_max_retries")]
    #[schemars(range(min = 0, max = 100))]
    pub max_retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    pub generator: GeneratorSpec,
}

fn default_destination() -> String {
    "data".to_owned()
}

fn default_max_retries() -> u32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    /// Run before the request; their output is discarded, a failure stops the fetch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_request: Vec<HookSpec>,
    /// Run on the response, each one's output the next one's input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_request: Vec<HookSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookSpec {
    pub name: String,
    /// A command the whitelist allows (a name, not a path).
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub timeout: String,
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<HookEnv>,
}

fn default_timeout() -> String {
    "30s".to_owned()
}

/// What a failing hook does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetryPolicy {
    /// Go on with the data the hook was given.
    Ignore,
    /// Try again while the source's maxRetries allow.
    Retry,
    /// Fail the reconciliation.
    #[default]
    Fail,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct HookEnv {
    pub name: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct GeneratorSpec {
    /// The generator that makes the data (registered by name).
    #[serde(rename = "type")]
    pub kind: GeneratorType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpGeneratorSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorType {
    Http,
}

impl GeneratorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGeneratorSpec {
    #[schemars(url)]
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// A Secret whose every key is sent as a request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<LocalObjectReference>,
    /// A Secret holding PEM certificates to trust (key `ca.crt` unless named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeyReference>,
    /// Skips certificate verification: for tests only (Flux advises against it).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_method() -> String {
    "GET".to_owned()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSourceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "lastHandledETag")]
    pub last_handled_etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Flux's `meta.Artifact`: what a consumer downloads and verifies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// `sha256:<hex>` of the tar.gz bytes.
    pub digest: String,
    /// Relative path in storage: `externalsource/<namespace>/<name>/<file>`.
    pub path: String,
    pub url: String,
    /// `latest@sha256:<hex of the data>`.
    pub revision: String,
    /// RFC 3339.
    pub last_update_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Flux's ExternalArtifact, written by this controller for each source.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "ExternalArtifact",
    namespaced,
    status = "ExternalArtifactStatus",
    shortname = "ea"
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalArtifactSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceReference>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ExternalArtifactStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,
}

/// Conditions as a list keyed by type, as Kubernetes' own are.
fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "properties": {
                "lastTransitionTime": {"format": "date-time", "type": "string"},
                "message": {"type": "string"},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "reason": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "type": {"type": "string"},
            },
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
        },
    })
}

/// The ExternalSource CRD as YAML (what `crdgen` prints and `deploy/crds/` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt as _;
    serde_norway::to_string(&ExternalSource::crd()).expect("the CRD serializes")
}
