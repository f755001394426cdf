//! The caller's tenant, from its identity headers, for handlers: [`Tenant`] to read (never
//! created by a read), [`Writer`] to write (pre-shared key checked before the tenant is
//! created, so a refused write changes nothing).

use axum::extract::FromRequestParts;
use http::request::Parts;
use keel_sources_http::{Tenancy, WriteAccess};

use crate::{
    error::Error,
    state::AppState,
    store::{Tenant, tenants},
};

/// A tenant allowed to write.
#[derive(Debug, Clone)]
pub struct Writer(pub Tenant);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Tenancy(identity) = Tenancy::from_request_parts(parts, state).await?;
        tenants::lookup(&state.db, &state.tenants, identity).await
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let WriteAccess(identity) = WriteAccess::from_request_parts(parts, state).await?;
        tenants::get_or_create(&state.db, &state.tenants, identity)
            .await
            .map(Self)
    }
}
