//! Endpoint fields as sources-api-go checks them.

use std::sync::LazyLock;

use keel_domain::AvailabilityStatus;
use regex::Regex;
use serde::Deserialize;
use utoipa::ToSchema;

use super::limits::{self, Field};

/// Where and how an endpoint is reached, as sent on create and edit (checked by the store,
/// which needs the source's other endpoints); `None` keeps the stored value on an edit.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EndpointSettings {
    pub default: Option<bool>,
    pub receptor_node: Option<String>,
    pub role: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub verify_ssl: Option<bool>,
    pub certificate_authority: Option<String>,
}

impl EndpointSettings {
    /// The caps of the settings; the host has its own check ([`validate_host`]).
    pub fn limits(&self) -> Vec<Field<'_>> {
        vec![
            Field::Text(
                "receptor_node",
                self.receptor_node.as_deref(),
                limits::SHORT,
            ),
            Field::Text("role", self.role.as_deref(), limits::SHORT),
            Field::Text("scheme", self.scheme.as_deref(), limits::SHORT),
            Field::Text("path", self.path.as_deref(), limits::LONG),
            Field::Text(
                "certificate_authority",
                self.certificate_authority.as_deref(),
                limits::DOCUMENT,
            ),
        ]
    }
}

static FQDN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z\d](?:[a-zA-Z\d-]*[a-zA-Z\d])?\.)+[a-zA-Z](?:[a-zA-Z\d-]*[a-zA-Z])?$")
        .expect("valid host pattern")
});
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z][a-zA-Z\d+\-.]*$").expect("valid scheme pattern"));

const MAX_HOST: usize = 255;
const MAX_LABEL: usize = 63;

pub fn validate_host(host: &str) -> Result<(), String> {
    if host.chars().count() > MAX_HOST {
        return Err(format!(
            "the provided host is longer than {MAX_HOST} characters"
        ));
    }
    if !FQDN.is_match(host) {
        return Err("the provided host is invalid".to_owned());
    }
    // sources-api-go measures the whole host here (a bug); Keel measures each label.
    if let Some(label) = host.split('.').find(|l| l.chars().count() > MAX_LABEL) {
        return Err(format!(
            "the label '{label}' is greater than {MAX_LABEL} characters"
        ));
    }
    Ok(())
}

/// A valid scheme, else `https`.
pub fn scheme_or_default(scheme: Option<String>) -> String {
    scheme
        .filter(|s| SCHEME.is_match(s))
        .unwrap_or_else(|| "https".to_owned())
}

/// Endpoints accept only these two statuses, or none.
pub fn endpoint_status(raw: &str) -> Result<AvailabilityStatus, String> {
    match raw.parse() {
        Ok(s @ (AvailabilityStatus::Available | AvailabilityStatus::Unavailable)) => Ok(s),
        _ => Err("invalid availability status".to_owned()),
    }
}

/// A port as sent: none or not positive means 443 on create (kept on edit), above 65535 is
/// refused.
pub fn port(raw: Option<i64>, on_create: bool) -> Result<Option<i32>, &'static str> {
    match raw {
        Some(p) if p > 65535 => Err("invalid port number"),
        Some(p) if p <= 0 => Ok(Some(443)),
        None if on_create => Ok(Some(443)),
        None => Ok(None),
        Some(p) => Ok(Some(p as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_like_sources_api_go() {
        assert!(validate_host("api.cluster.example.com").is_ok());
        assert_eq!(
            validate_host("not a host").unwrap_err(),
            "the provided host is invalid"
        );
        assert_eq!(
            validate_host("localhost").unwrap_err(),
            "the provided host is invalid"
        );
        let long = format!("{}.com", "a".repeat(300));
        assert_eq!(
            validate_host(&long).unwrap_err(),
            "the provided host is longer than 255 characters"
        );
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(
            validate_host(&long_label)
                .unwrap_err()
                .starts_with("the label 'aaaa")
        );
    }

    #[test]
    fn schemes_default_to_https() {
        assert_eq!(scheme_or_default(None), "https");
        assert_eq!(scheme_or_default(Some("1bad".into())), "https");
        assert_eq!(scheme_or_default(Some("http".into())), "http");
    }

    #[test]
    fn ports() {
        assert_eq!(port(None, true), Ok(Some(443)));
        assert_eq!(port(None, false), Ok(None));
        assert_eq!(port(Some(-1), false), Ok(Some(443)));
        assert_eq!(port(Some(8443), true), Ok(Some(8443)));
        assert!(port(Some(70000), true).is_err());
    }
}
