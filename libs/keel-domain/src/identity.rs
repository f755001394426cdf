use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

/// The decoded `x-rh-identity` header: base64 of `{"identity": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XRhIdentity {
    pub identity: Identity,
}

/// The fields of an identity that Keel reads. Unknown fields are ignored, as the platform adds
/// new ones freely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Internal>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Internal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the x-rh-identity header is not valid base64")]
    NotBase64,
    #[error("the x-rh-identity header is not a valid identity document: {0}")]
    NotJson(String),
    #[error("the ebs account number and the org id are missing")]
    MissingTenancy,
}

impl XRhIdentity {
    pub fn decode(header: &str) -> Result<Self, IdentityError> {
        let bytes = STANDARD
            .decode(header.trim())
            .map_err(|_| IdentityError::NotBase64)?;
        serde_json::from_slice(&bytes).map_err(|e| IdentityError::NotJson(e.to_string()))
    }

    /// The identity sources-api-go generates when a caller sends only the tenancy headers, so
    /// that downstream consumers always receive an `x-rh-identity`.
    pub fn generated(account_number: Option<&str>, org_id: Option<&str>) -> Self {
        Self {
            identity: Identity {
                account_number: account_number.map(str::to_owned),
                org_id: org_id.map(str::to_owned),
                kind: Some("System".to_owned()),
                internal: org_id.map(|org| Internal {
                    org_id: Some(org.to_owned()),
                }),
                ..Identity::default()
            },
        }
    }

    pub fn encode(&self) -> String {
        // Serializing plain strings and options cannot fail.
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Who is calling, as read from the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdentity {
    /// The `x-rh-identity` header as sent, or the generated one; forwarded on events and calls.
    pub header: String,
    pub account_number: Option<String>,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub identity: Identity,
}

/// The raw headers that carry identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityHeaders<'a> {
    pub x_rh_identity: Option<&'a str>,
    pub account_number: Option<&'a str>,
    pub org_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl RequestIdentity {
    /// Reads identity the way sources-api-go's `ParseHeaders` does: the identity document wins
    /// where it has a value, the `x-rh-sources-*` headers fill the gaps, and an identity is
    /// generated when none was sent.
    pub fn from_headers(headers: IdentityHeaders<'_>) -> Result<Self, IdentityError> {
        let sent = non_empty(headers.x_rh_identity);
        let decoded = match &sent {
            Some(raw) => Some(XRhIdentity::decode(raw)?),
            None => None,
        };
        let identity = decoded.map(|d| d.identity).unwrap_or_default();
        let account_number =
            non_empty(identity.account_number.as_deref()).or(non_empty(headers.account_number));
        let org_id = non_empty(identity.org_id.as_deref()).or(non_empty(headers.org_id));
        let user_id = non_empty(identity.user.as_ref().and_then(|u| u.user_id.as_deref()))
            .or(non_empty(headers.user_id));
        let header = sent.unwrap_or_else(|| {
            XRhIdentity::generated(account_number.as_deref(), org_id.as_deref()).encode()
        });
        Ok(Self {
            header,
            account_number,
            org_id,
            user_id,
            identity,
        })
    }

    /// Tenancy needs an org id or an account number.
    pub fn require_tenancy(self) -> Result<Self, IdentityError> {
        if self.account_number.is_none() && self.org_id.is_none() {
            return Err(IdentityError::MissingTenancy);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        STANDARD.encode(json)
    }

    #[test]
    fn identity_document_wins_and_headers_fill_gaps() {
        let raw = encode(r#"{"identity":{"org_id":"o1","user":{"user_id":"u1"},"extra":1}}"#);
        let id = RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: Some(&raw),
            account_number: Some("a1"),
            org_id: Some("other"),
            user_id: None,
        })
        .unwrap();
        assert_eq!(id.org_id.as_deref(), Some("o1"));
        assert_eq!(id.account_number.as_deref(), Some("a1"));
        assert_eq!(id.user_id.as_deref(), Some("u1"));
        assert_eq!(id.header, raw, "the header sent is forwarded unchanged");
    }

    #[test]
    fn generates_an_identity_from_tenancy_headers() {
        let id = RequestIdentity::from_headers(IdentityHeaders {
            account_number: Some("12345"),
            org_id: Some("67890"),
            ..Default::default()
        })
        .unwrap();
        let decoded = XRhIdentity::decode(&id.header).unwrap();
        assert_eq!(decoded.identity.account_number.as_deref(), Some("12345"));
        assert_eq!(decoded.identity.org_id.as_deref(), Some("67890"));
        assert_eq!(decoded.identity.kind.as_deref(), Some("System"));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let bad_b64 = RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: Some("%%%"),
            ..Default::default()
        });
        assert_eq!(bad_b64, Err(IdentityError::NotBase64));
        let not_json = encode("not json");
        let bad_json = RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: Some(&not_json),
            ..Default::default()
        });
        assert!(matches!(bad_json, Err(IdentityError::NotJson(_))));
    }

    #[test]
    fn tenancy_requires_org_or_account() {
        let empty = RequestIdentity::from_headers(IdentityHeaders::default()).unwrap();
        assert_eq!(empty.require_tenancy(), Err(IdentityError::MissingTenancy));
        let blank = RequestIdentity::from_headers(IdentityHeaders {
            org_id: Some("  "),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(blank.require_tenancy(), Err(IdentityError::MissingTenancy));
    }
}
