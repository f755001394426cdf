//! What an authentication request must name, with sources-api-go's messages and order
//! (`ValidateAuthenticationCreationRequest`); rendered after `bad request: `.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    limits::{self, Field},
    parse_flexible_id,
};

/// The credential fields of an authentication or a secret, as sent; `None` keeps the stored
/// value on an edit. Requests take them flattened (the request refuses unknown fields).
#[derive(Clone, Default, Deserialize, ToSchema)]
pub struct Credentials {
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    /// Stored encrypted; never returned but by the internal API.
    pub password: Option<String>,
    pub extra: Option<Value>,
}

/// The password never prints: logs and panics show it redacted.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("authtype", &self.authtype)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("extra", &self.extra)
            .finish()
    }
}

impl Credentials {
    pub fn limits(&self) -> Vec<Field<'_>> {
        vec![
            Field::Text("name", self.name.as_deref(), limits::SHORT),
            Field::Text("authtype", self.authtype.as_deref(), limits::SHORT),
            Field::Text("username", self.username.as_deref(), limits::LONG),
            Field::Text("password", self.password.as_deref(), limits::SECRET),
            Field::Json("extra", self.extra.as_ref(), limits::DOCUMENT),
        ]
    }
}

/// The resource an authentication is created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationTarget {
    /// `Source`, `Endpoint`, `Application` or `Authentication`.
    pub resource_type: &'static str,
    pub resource_id: i64,
}

/// Checks the fields of a create request that do not need the database.
pub fn validate_create(
    resource_type: Option<&str>,
    resource_id: Option<&Value>,
    authtype: Option<&str>,
    username: Option<&str>,
) -> Result<AuthenticationTarget, String> {
    let resource_type = resource_type.unwrap_or_default();
    if resource_type.is_empty() {
        return Err("resource_type is required".to_owned());
    }
    let raw_id = resource_id
        .filter(|v| !v.is_null())
        .ok_or("resource_id is required")?;
    let resource_id =
        parse_flexible_id(raw_id).ok_or("resource_id must be a valid integer or string")?;
    let resource_type = match resource_type.to_ascii_lowercase().as_str() {
        "source" => "Source",
        "endpoint" => "Endpoint",
        "application" => "Application",
        "authentication" => "Authentication",
        _ => {
            return Err(
                "invalid resource_type - must be one of [Source|Endpoint|Application|Authentication]"
                    .to_owned(),
            );
        }
    };
    if authtype == Some("lighthouse_subscription_id") {
        let problem = match username.map(str::trim) {
            None => Some("username is required for Azure Source Types"),
            Some("") => Some("username must not be blank or empty for Azure Source Types"),
            Some(u) if uuid::Uuid::parse_str(u).is_err() => {
                Some("the username must be a valid UUID for Azure Source Types")
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(format!("subscription ID is invalid: {problem}"));
        }
    }
    Ok(AuthenticationTarget {
        resource_type,
        resource_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials = Credentials {
            username: Some("bot".into()),
            password: Some("hunter2".into()),
            ..Credentials::default()
        };
        let printed = format!("{credentials:?}");
        assert!(
            printed.contains("bot") && printed.contains("<redacted>"),
            "{printed}"
        );
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn messages_in_sources_api_go_order() {
        assert_eq!(
            validate_create(None, None, None, None).unwrap_err(),
            "resource_type is required"
        );
        assert_eq!(
            validate_create(Some("Source"), None, None, None).unwrap_err(),
            "resource_id is required"
        );
        assert_eq!(
            validate_create(Some("Source"), Some(&json!("x")), None, None).unwrap_err(),
            "resource_id must be a valid integer or string"
        );
        assert!(
            validate_create(Some("Cluster"), Some(&json!(1)), None, None)
                .unwrap_err()
                .starts_with("invalid resource_type")
        );
        assert_eq!(
            validate_create(
                Some("application"),
                Some(&json!("7")),
                Some("lighthouse_subscription_id"),
                Some("not-a-uuid")
            )
            .unwrap_err(),
            "subscription ID is invalid: the username must be a valid UUID for Azure Source Types"
        );
        assert_eq!(
            validate_create(Some("application"), Some(&json!("7")), None, None),
            Ok(AuthenticationTarget {
                resource_type: "Application",
                resource_id: 7
            })
        );
    }
}
