use axum::extract::FromRequestParts;
use http::request::Parts;
use keel_domain::RequestIdentity;
use keel_sources_http::{Tenancy, WriteAccess};
use sqlx::PgPool;

use crate::{error::Error, state::AppState};

/// The caller's tenant, created on first use as sources-api-go does: an unknown tenant sees
/// empty lists, not an error.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub external_tenant: Option<String>,
    pub org_id: Option<String>,
    pub identity: RequestIdentity,
}

/// A tenant allowed to write (PSK checked before the tenant is created, so a refused write
/// changes nothing).
#[derive(Debug, Clone)]
pub struct Writer(pub Tenant);

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: i64,
    external_tenant: Option<String>,
    org_id: Option<String>,
}

async fn find(db: &PgPool, identity: &RequestIdentity) -> Result<Option<TenantRow>, sqlx::Error> {
    match (&identity.org_id, &identity.account_number) {
        (Some(org), _) => {
            sqlx::query_as("SELECT id, external_tenant, org_id FROM tenants WHERE org_id = $1")
                .bind(org)
                .fetch_optional(db)
                .await
        }
        (None, Some(account)) => {
            sqlx::query_as(
                "SELECT id, external_tenant, org_id FROM tenants WHERE external_tenant = $1 \
                 ORDER BY id LIMIT 1",
            )
            .bind(account)
            .fetch_optional(db)
            .await
        }
        (None, None) => Ok(None),
    }
}

/// Tenants never change once created, so each process remembers the ones it has seen: most
/// requests then need no tenant query at all. Bounded; cleared when full.
#[derive(Debug, Default)]
pub struct TenantCache {
    rows: std::sync::RwLock<std::collections::HashMap<TenantKey, TenantRow>>,
}

/// (org id, account number): the org id alone when there is one.
type TenantKey = (Option<String>, Option<String>);

const TENANT_CACHE_CAPACITY: usize = 100_000;

impl TenantCache {
    fn key(identity: &RequestIdentity) -> TenantKey {
        // Lookups go by org id when there is one, so the account does not split the key.
        match &identity.org_id {
            Some(org) => (Some(org.clone()), None),
            None => (None, identity.account_number.clone()),
        }
    }

    fn get(&self, identity: &RequestIdentity) -> Option<TenantRow> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        rows.get(&Self::key(identity)).cloned()
    }

    fn put(&self, identity: &RequestIdentity, row: TenantRow) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if rows.len() >= TENANT_CACHE_CAPACITY {
            rows.clear();
        }
        rows.insert(Self::key(identity), row);
    }
}

/// Finds the identity's tenant by org id, else by account number, creating it when missing.
pub async fn get_or_create(
    db: &PgPool,
    cache: &TenantCache,
    identity: RequestIdentity,
) -> Result<Tenant, Error> {
    if let Some(row) = cache.get(&identity) {
        return Ok(tenant(row, identity));
    }
    let row = match find(db, &identity).await? {
        Some(row) => row,
        None => {
            let inserted: Option<TenantRow> = sqlx::query_as(
                "INSERT INTO tenants (external_tenant, org_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING RETURNING id, external_tenant, org_id",
            )
            .bind(&identity.account_number)
            .bind(&identity.org_id)
            .fetch_optional(db)
            .await?;
            match inserted {
                Some(row) => row,
                // A concurrent request created it first.
                None => find(db, &identity)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("tenant vanished after a conflicting insert"))?,
            }
        }
    };
    cache.put(&identity, row.clone());
    Ok(tenant(row, identity))
}

fn tenant(row: TenantRow, identity: RequestIdentity) -> Tenant {
    tracing::Span::current().record("tenant_id", row.id);
    Tenant {
        id: row.id,
        external_tenant: row.external_tenant,
        org_id: row.org_id,
        identity,
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Tenancy(identity) = Tenancy::from_request_parts(parts, state).await?;
        get_or_create(&state.db, &state.tenants, identity).await
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let WriteAccess(identity) = WriteAccess::from_request_parts(parts, state).await?;
        get_or_create(&state.db, &state.tenants, identity)
            .await
            .map(Self)
    }
}
