//! An org's tenant, made once: the first operation of a new org makes it (one at a time per
//! org, at most [`super::tenants_at_once`] orgs at a time); the org's other operations wait for
//! that one, briefly, instead of each taking a turn and a connection to wait inside the
//! database.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{OpError, Worker, fetch::Fetched, save::Outcome};
use crate::{
    domain::{OpKind, Problem, SyncState},
    store::{
        Claim, SourceRow,
        tenants::{self, TenantError},
    },
};

/// How long an operation waits for its org's tenant, being made by another operation, before
/// it gives way (postponed by as much).
pub(super) const TENANT_WAIT: Duration = Duration::from_millis(200);

/// One org's tenant as this process knows it: its customer id once made; locked by the one
/// operation making it.
type Slot = Arc<tokio::sync::Mutex<Option<i64>>>;

/// The tenants of the orgs this process has seen (tenants are never removed).
#[derive(Default)]
pub struct Tenants(std::sync::Mutex<HashMap<String, Slot>>);

impl Tenants {
    fn slot(&self, org_id: &str) -> Slot {
        let mut slots = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(org_id.to_owned()).or_default().clone()
    }

    fn existing(&self, org_id: &str) -> Option<Slot> {
        let slots = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(org_id).cloned()
    }
}

/// What an operation that builds a provider learns of its org's tenant.
pub(super) enum Tenant {
    /// Made: the org's customer id.
    Ready(i64),
    /// The source cannot have a tenant as it is.
    Invalid(Problem),
    /// Another operation is still making it: this one gives way.
    Busy,
}

impl Worker {
    /// Whether the operation would build the first provider of an org whose tenant is
    /// unknown while every turn to make one is taken: it gives its worker to operations that
    /// can run now instead of waiting ([`Worker::tenant_turns`]). One whose org's tenant is
    /// being made goes on: it reads the source meanwhile, then waits for the tenant.
    pub(super) fn waits_for_a_tenant(&self, claim: &Claim, row: &SourceRow) -> bool {
        if claim.kind == OpKind::Delete.as_str() || row.koku_uuid.is_some() {
            return false;
        }
        let unknown = match self.tenants.existing(&row.org_id) {
            None => true,
            Some(slot) => slot.try_lock().is_ok_and(|made| made.is_none()),
        };
        unknown && self.tenant_turns.available_permits() == 0
    }

    /// The org's customer, once its tenant exists: made and committed on its own first, so a
    /// provider transaction never waits for a schema clone's locks. While a tenant is made
    /// the source shows `creating`.
    pub(super) async fn tenant(
        &self,
        row: &SourceRow,
        fetched: &Fetched,
    ) -> Result<Tenant, OpError> {
        let slot = self.tenants.slot(&row.org_id);
        // Shown only for a source without a provider: a sync row with one holds what the
        // provider was built from, and the fetched settings there before the provider has
        // them would make the next attempt find nothing to change.
        let creating = || async {
            match row.koku_uuid {
                None => {
                    self.save(row, fetched, Outcome::state(SyncState::Creating))
                        .await
                }
                Some(_) => Ok(()),
            }
        };
        let (mut made, shown) = match slot.try_lock() {
            Ok(made) => (made, false),
            Err(_) => {
                creating().await?;
                match tokio::time::timeout(TENANT_WAIT, slot.lock()).await {
                    Ok(made) => (made, true),
                    Err(_) => return Ok(Tenant::Busy),
                }
            }
        };
        if let Some(id) = *made {
            return Ok(Tenant::Ready(id));
        }
        // This operation makes it (the one that was making it failed, if any).
        if !shown {
            creating().await?;
        }
        let _turn = self.tenant_turns.acquire().await;
        match tenants::ensure(&self.db, &row.org_id, row.account_id.as_deref()).await {
            Ok(id) => {
                *made = Some(id);
                Ok(Tenant::Ready(id))
            }
            Err(TenantError::Problem(problem)) => Ok(Tenant::Invalid(problem)),
            Err(TenantError::Database(e)) => Err(e.into()),
        }
    }
}
