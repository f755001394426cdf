//! Tenants, found or created from the caller's identity as sources-api-go does: an unknown
//! tenant sees empty lists, not an error.

use keel_crypto::SecretBox;
use keel_domain::RequestIdentity;
use sqlx::PgPool;

use crate::error::Error;

/// The tenant a request or a message acts for. Only [`get_or_create`] makes one, and its id
/// stays inside the store: every tenant-scoped query takes a `&Tenant`.
#[derive(Debug, Clone)]
pub struct Tenant {
    id: i64,
    /// The EBS account number, if the tenant has one.
    pub external_tenant: Option<String>,
    pub org_id: Option<String>,
    pub identity: RequestIdentity,
}

impl Tenant {
    /// For the store's queries only.
    pub(super) fn id(&self) -> i64 {
        self.id
    }

    /// The associated data sealed secrets are bound to: a secret copied to another tenant's
    /// row does not decrypt.
    fn seal_binding(&self) -> [u8; 8] {
        self.id.to_be_bytes()
    }

    /// A password sealed to this tenant with `secrets`.
    pub(super) fn seal(&self, secrets: &SecretBox, password: Option<&str>) -> Option<Vec<u8>> {
        password.map(|p| secrets.seal(p, &self.seal_binding()))
    }

    /// A password sealed to this tenant, opened; one that does not open is an internal error
    /// (another key, or another tenant's row).
    pub(super) fn open(
        &self,
        secrets: &SecretBox,
        sealed: Option<&[u8]>,
    ) -> Result<Option<String>, Error> {
        sealed
            .map(|s| secrets.open(s, &self.seal_binding()))
            .transpose()
            .map_err(Error::Internal)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct TenantRow {
    id: i64,
    external_tenant: Option<String>,
    org_id: Option<String>,
}

const SELECT: &str = "SELECT id, external_tenant, org_id FROM tenants";

/// The identity's tenant as sources-api-go finds it: by org id, else by account number; a
/// legacy tenant found by its account alone gets the identity's org id attached, so its
/// sources are found by org id from then on.
async fn find(db: &PgPool, identity: &RequestIdentity) -> Result<Option<TenantRow>, sqlx::Error> {
    if let Some(org) = &identity.org_id {
        let by_org = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE org_id = $1")))
            .bind(org)
            .fetch_optional(db)
            .await?;
        if by_org.is_some() {
            return Ok(by_org);
        }
    }
    let Some(account) = &identity.account_number else {
        return Ok(None);
    };
    let legacy: Option<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE external_tenant = $1 AND org_id IS NULL ORDER BY id LIMIT 1"
    )))
    .bind(account)
    .fetch_optional(db)
    .await?;
    match (legacy, &identity.org_id) {
        (Some(row), Some(org)) => {
            tracing::warn!(tenant_id = row.id, %account, "tenant found by its account number; org id attached");
            // Another request may attach (or create) the org id first: then that row wins.
            let attached = sqlx::query_as(
                "UPDATE tenants SET org_id = $2 WHERE id = $1 AND org_id IS NULL \
                 RETURNING id, external_tenant, org_id",
            )
            .bind(row.id)
            .bind(org)
            .fetch_optional(db)
            .await;
            match attached {
                Ok(Some(row)) => Ok(Some(row)),
                Ok(None) | Err(sqlx::Error::Database(_)) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE org_id = $1")))
                        .bind(org)
                        .fetch_optional(db)
                        .await
                }
                Err(e) => Err(e),
            }
        }
        (legacy, _) => Ok(legacy),
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

/// The identity's tenant for a read: found (and cached) as for a write, but never created. An
/// identity without a tenant reads as a tenant that has nothing (no row has id 0), so reads
/// leave no tenant rows behind.
pub async fn lookup(
    db: &PgPool,
    cache: &TenantCache,
    identity: RequestIdentity,
) -> Result<Tenant, Error> {
    if let Some(row) = cache.get(&identity) {
        return Ok(tenant(row, identity));
    }
    match find(db, &identity).await? {
        Some(row) => {
            cache.put(&identity, row.clone());
            Ok(tenant(row, identity))
        }
        None => Ok(Tenant {
            id: 0,
            external_tenant: identity.account_number.clone(),
            org_id: identity.org_id.clone(),
            identity,
        }),
    }
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

#[cfg(test)]
impl Tenant {
    /// A tenant without a database, for unit tests of payloads and headers.
    pub(crate) fn for_tests(account: Option<&str>, org: Option<&str>, header: &str) -> Self {
        Self {
            id: 1,
            external_tenant: account.map(str::to_owned),
            org_id: org.map(str::to_owned),
            identity: RequestIdentity {
                header: header.to_owned(),
                account_number: None,
                org_id: None,
                user_id: None,
                identity: Default::default(),
            },
        }
    }
}
