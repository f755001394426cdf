//! An org's tenant, made once: the first operation of a new org to build a provider makes it;
//! the org's other operations wait for that one, briefly, instead of each taking a turn and a
//! connection to wait inside the database. New orgs' tenants are taken from spares
//! together, those asked for while one batch is made in the next ([`make_batches`]); one that
//! cannot be (a clone) is made on its own, at most [`super::tenants_at_once`] at a time.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::{OpError, Worker};
use crate::{
    domain::Problem,
    store::{
        SourceRow,
        tenants::{self, Asked, Made, TenantError},
    },
};

/// How long an operation waits for its org's tenant (for the operation making it, or for a
/// turn to clone it) before it gives way (postponed by as much): a tenant taken from a spare
/// is made well within it, a clone may take longer.
pub(super) const TENANT_WAIT: Duration = Duration::from_millis(200);

/// The most new orgs' tenants one statement makes.
const BATCH: usize = 64;

/// One org's tenant as this process knows it: its customer id once made; locked by the one
/// operation making it.
type Slot = Arc<tokio::sync::Mutex<Option<i64>>>;

/// A tenant maker's org, and where its answer goes: nothing when the org was left out of its
/// batch, or the batch failed (the maker then makes it on its own).
struct Request {
    asked: Asked,
    answer: oneshot::Sender<Option<Made>>,
}

/// The tenants of the orgs this process has seen (tenants are never removed).
#[derive(Default)]
pub struct Tenants {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
    /// To the batch task, started with the first new org.
    batches: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Tenants {
    fn slot(&self, org_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(org_id.to_owned()).or_default().clone()
    }

    /// The org's customer id when its tenant is known to be made: the usual case, answered
    /// without waiting.
    pub(super) fn known(&self, org_id: &str) -> Option<i64> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(org_id)?.try_lock().ok().and_then(|made| *made)
    }

    /// The org's tenant, taken from a spare together with the others asked for meanwhile;
    /// `None` when it is to be made on its own.
    async fn batched(&self, db: &PgPool, asked: Asked) -> Option<Made> {
        let batches = self.batches.get_or_init(|| {
            let (requests, received) = mpsc::unbounded_channel();
            tokio::spawn(make_batches(db.clone(), received));
            requests
        });
        let (answer, answered) = oneshot::channel();
        batches.send(Request { asked, answer }).ok()?;
        answered.await.ok().flatten()
    }
}

/// Makes the tenants asked for a batch at a time, until every sender is gone: those asked for
/// while one batch is made go together in the next, so a burst of new orgs costs a few
/// commits, not one each (each also resets every cached plan of the database's sessions).
async fn make_batches(db: PgPool, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(BATCH);
    while requests.recv_many(&mut batch, BATCH).await > 0 {
        let asked: Vec<Asked> = batch.iter().map(|r| r.asked.clone()).collect();
        let span = tracing::info_span!("tenant_batch", orgs = asked.len());
        let mut made = match tenants::make_many(&db, &asked).instrument(span).await {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(error = %e, orgs = asked.len(), "cannot make tenants together; each is made on its own");
                HashMap::new()
            }
        };
        for Request { asked, answer } in batch.drain(..) {
            let _ = answer.send(made.remove(&asked.org_id));
        }
    }
}

/// What an operation that builds a provider learns of its org's tenant.
pub(super) enum Tenant {
    /// Made: the org's customer id.
    Ready(i64),
    /// The source cannot have a tenant as it is.
    Invalid(Problem),
    /// No turn to make it, or another operation still making it: this one gives way.
    Busy,
}

impl Worker {
    /// The org's customer, once its tenant exists: made and committed on its own first, so a
    /// provider transaction never waits for a schema clone's locks.
    pub(super) async fn tenant(&self, row: &SourceRow) -> Result<Tenant, OpError> {
        let slot = self.tenants.slot(&row.org_id);
        // Only the waits give way; once this operation makes the tenant it sees it through.
        let Ok(mut made) = tokio::time::timeout(TENANT_WAIT, slot.lock()).await else {
            return Ok(Tenant::Busy);
        };
        if let Some(id) = *made {
            return Ok(Tenant::Ready(id));
        }
        // This operation makes it (the one that was making it failed, if any).
        let asked = match Asked::new(&row.org_id, row.account_id.as_deref()) {
            Ok(asked) => asked,
            Err(problem) => return Ok(Tenant::Invalid(problem)),
        };
        match self.tenants.batched(&self.db, asked).await {
            Some(Made::Customer(id)) => {
                *made = Some(id);
                return Ok(Tenant::Ready(id));
            }
            Some(Made::Problem(problem)) => return Ok(Tenant::Invalid(problem)),
            None => {}
        }
        let Ok(_turn) = tokio::time::timeout(TENANT_WAIT, self.tenant_turns.acquire()).await else {
            return Ok(Tenant::Busy);
        };
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
