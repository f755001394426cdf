use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::{HeaderMap, request::Parts};
use keel_domain::identity::{IdentityError, IdentityHeaders, RequestIdentity};
use subtle::ConstantTimeEq as _;

use crate::error::HttpError;

pub const X_RH_IDENTITY: &str = "x-rh-identity";
pub const ACCOUNT_NUMBER: &str = "x-rh-sources-account-number";
pub const ORG_ID: &str = "x-rh-sources-org-id";
pub const USER_ID: &str = "x-rh-sources-user-id";
pub const PSK: &str = "x-rh-sources-psk";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn identity_error(e: IdentityError) -> HttpError {
    match e {
        IdentityError::MissingTenancy => HttpError::unauthorized(e.to_string()),
        // sources-api-go answers 500 here; a malformed header is the caller's fault.
        _ => HttpError::unauthorized(format!("Unauthorized Action: {e}")),
    }
}

fn read_identity(headers: &HeaderMap) -> Result<RequestIdentity, HttpError> {
    RequestIdentity::from_headers(IdentityHeaders {
        x_rh_identity: header(headers, X_RH_IDENTITY),
        account_number: header(headers, ACCOUNT_NUMBER),
        org_id: header(headers, ORG_ID),
        user_id: header(headers, USER_ID),
    })
    .map_err(identity_error)
}

/// The caller's identity, whether or not it names a tenant.
#[derive(Debug, Clone)]
pub struct Identified(pub RequestIdentity);

impl<S: Send + Sync> FromRequestParts<S> for Identified {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        read_identity(&parts.headers).map(Self)
    }
}

/// The caller's identity, which names an org id or an account number (else 401).
#[derive(Debug, Clone)]
pub struct Tenancy(pub RequestIdentity);

impl<S: Send + Sync> FromRequestParts<S> for Tenancy {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        read_identity(&parts.headers)?
            .require_tenancy()
            .map(Self)
            .map_err(identity_error)
    }
}

/// Who may write: pre-shared keys from `SOURCES_PSKS`, or everyone with `BYPASS_RBAC=true`;
/// and who may read the internal API (plaintext credentials, every tenant's sources): a listed
/// key, whatever `BYPASS_RBAC` says, unless the internal API was opened explicitly.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    psks: Arc<[String]>,
    bypass_rbac: bool,
    internal_open: bool,
}

impl AuthPolicy {
    pub fn new(psks: impl IntoIterator<Item = String>, bypass_rbac: bool) -> Self {
        Self {
            psks: psks
                .into_iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            bypass_rbac,
            internal_open: false,
        }
    }

    /// Opens the internal API to callers without a key (development only).
    pub fn with_internal_open(mut self, open: bool) -> Self {
        self.internal_open = open;
        self
    }

    /// sources-api-go's `PermissionCheck`: bypass, else the PSK must match, else RBAC. Keel has
    /// no RBAC service, so a request without a PSK is refused as RBAC would refuse it.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        if self.bypass_rbac {
            return Ok(());
        }
        self.check_psk(headers)
    }

    /// The internal API: a listed key, unless opened explicitly; `BYPASS_RBAC` does not open it
    /// (sources-api-go's does, handing any caller every tenant's plaintext credentials).
    pub fn check_internal(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        if self.internal_open {
            return Ok(());
        }
        self.check_psk(headers)
    }

    fn check_psk(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        match header(headers, PSK) {
            Some(psk) if self.accepts(psk) => Ok(()),
            Some(_) => Err(HttpError::unauthorized(
                "Unauthorized Action: Incorrect PSK",
            )),
            None => Err(HttpError::unauthorized(
                "Unauthorized Action: Missing RBAC permissions",
            )),
        }
    }

    /// Compares with every key in constant time, so the time taken says nothing of how much
    /// of a key a guess got right.
    fn accepts(&self, psk: &str) -> bool {
        self.psks
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.as_bytes().ct_eq(psk.as_bytes())
            })
            .into()
    }
}

/// A tenant-scoped caller allowed to write.
#[derive(Debug, Clone)]
pub struct WriteAccess(pub RequestIdentity);

impl<S> FromRequestParts<S> for WriteAccess
where
    S: Send + Sync,
    AuthPolicy: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Tenancy(identity) = Tenancy::from_request_parts(parts, state).await?;
        AuthPolicy::from_ref(state).check(&parts.headers)?;
        Ok(Self(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn psk_rules() {
        let policy = AuthPolicy::new(["a".to_owned(), " b ".to_owned()], false);
        assert!(policy.check(&headers(&[(PSK, "a")])).is_ok());
        assert!(policy.check(&headers(&[(PSK, "b")])).is_ok());
        assert_eq!(
            policy.check(&headers(&[(PSK, "c")])).unwrap_err().detail,
            "Unauthorized Action: Incorrect PSK"
        );
        assert_eq!(
            policy.check(&headers(&[])).unwrap_err().detail,
            "Unauthorized Action: Missing RBAC permissions"
        );
        assert!(AuthPolicy::new([], true).check(&headers(&[])).is_ok());
    }

    #[test]
    fn an_empty_psk_list_accepts_no_psk() {
        let policy = AuthPolicy::new(["".to_owned()], false);
        assert!(policy.check(&headers(&[(PSK, "")])).is_err());
    }
}
