//! The workers: claim queued operations, fetch what sources-api holds for the source, decide
//! (`domain::state::plan`) and carry the decision out: build, update or remove the provider,
//! and report the availability status when it changed. HTTP calls happen here, never on the
//! consuming task; a failing source only delays itself.

mod error;
mod fetch;

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use keel_crypto::SecretBox;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{Notify, RwLock};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use self::{error::OpError, fetch::Fetched};
use crate::{
    domain::{Plan, Problem, ProviderType, Reread, StatusBody, SyncState, Synced, Truth},
    secrets,
    sources_client::{Caller, SourcesClient},
    store::{
        self, Claim, SourceRow,
        providers::{self as provider, BuildError, ProviderSpec},
        tenants::{self, TenantError},
    },
};

/// Retry policy of the work queue.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// Failures that will not heal before an operation is parked.
    pub max_attempts: i32,
    /// How long a claim lasts before another worker may take the operation over.
    pub lease: Duration,
}

impl RetryPolicy {
    /// Exponential: base, 2·base, 4·base, … up to `max`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max)
    }
}

/// Everything a worker needs.
pub struct Worker {
    pub db: PgPool,
    pub client: SourcesClient,
    pub secrets: SecretBox,
    pub cost_type_id: i64,
    pub retry: RetryPolicy,
    /// Woken when the consumer queues an operation.
    pub wake: Arc<Notify>,
    /// Source type names by id (they never change).
    pub type_names: RwLock<HashMap<i64, Option<String>>>,
}

impl Worker {
    /// Runs `concurrency` workers until `shutdown`.
    pub async fn run(self: Arc<Self>, concurrency: usize, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..concurrency {
            let worker = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(
                async move { worker.work(stop).await }.instrument(tracing::info_span!("worker", n)),
            );
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn work(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let claimed = match store::claim(&self.db, 1, self.retry.lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim operations");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                self.idle(&shutdown).await;
                continue;
            }
            for claim in claimed {
                self.execute(&claim, &shutdown).await;
            }
        }
    }

    /// Waits for a wake-up from the consumer, the next due operation, or at most a second.
    async fn idle(&self, shutdown: &CancellationToken) {
        let wake = self.wake.notified();
        let mut wait = Duration::from_secs(1);
        if let Ok(Some(due)) = store::next_due(&self.db).await {
            let until = (due - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(5)));
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = wake => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn execute(&self, claim: &Claim, shutdown: &CancellationToken) {
        let span = tracing::info_span!("operation", source_id = claim.source_id, kind = %claim.kind, attempt = claim.attempts);
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            outcome = self.reconcile(claim).instrument(span.clone()) => outcome,
            // Shutdown gives the claim back untouched; the operation runs again later.
            _ = shutdown.cancelled() => {
                if let Ok(mut conn) = self.db.acquire().await {
                    let _ = store::release(&mut conn, claim.source_id).await;
                }
                return;
            }
        };
        let _enter = span.enter();
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("listener_operation_seconds", "operation" => claim.kind.clone())
            .record(seconds);
        tracing::debug!(
            elapsed_ms = seconds * 1000.0,
            ok = outcome.is_ok(),
            "operation ran"
        );
        match outcome {
            Ok(result) => {
                metrics::counter!("provider_operations_total", "operation" => claim.kind.clone(), "result" => result)
                    .increment(1);
            }
            Err(e) => {
                let error = e.to_string();
                let backoff = self.retry.backoff(claim.attempts);
                let lasting = !e.heals();
                let parked = store::fail(
                    &self.db,
                    claim,
                    &error,
                    backoff,
                    lasting,
                    self.retry.max_attempts,
                )
                .await
                .unwrap_or(false);
                let result = if parked { "parked" } else { "retry" };
                metrics::counter!("provider_operations_total", "operation" => claim.kind.clone(), "result" => result)
                    .increment(1);
                if parked {
                    tracing::error!(%error, attempts = claim.attempts, "operation parked after its last attempt");
                } else {
                    tracing::warn!(%error, lasting, retry_in_ms = backoff.as_millis() as u64, "operation failed; will retry");
                }
            }
        }
    }

    /// One operation: returns what was done, for the metrics.
    async fn reconcile(&self, claim: &Claim) -> Result<&'static str, OpError> {
        let Some(row) = store::source(&self.db, claim.source_id).await? else {
            self.complete(claim).await?;
            return Ok("gone");
        };
        let caller = caller(&row);
        let synced = self.synced(&row)?;
        let fetched = match (Reread::parse(&claim.reread), &synced) {
            (Reread::Application, Some(synced)) => {
                self.fetch_application(caller, &row, synced).await?
            }
            _ => self.fetch(caller, &row).await?,
        };
        let plan = crate::domain::state::plan(&fetched.truth, synced.as_ref());
        tracing::debug!(?plan, "planned");
        match plan {
            Plan::Delete => self.delete(claim, &row).await,
            Plan::Wait => {
                self.save(&row, &fetched, SyncState::Details).await?;
                self.complete(claim).await?;
                Ok("waiting")
            }
            Plan::Fail(problem) => {
                self.fail_settings(claim, &row, &fetched, &problem).await?;
                Ok("invalid")
            }
            Plan::Create => self.build(claim, &row, &fetched, false).await,
            Plan::Update => self.build(claim, &row, &fetched, true).await,
            // Only planned for a source with a provider that matches it.
            Plan::Keep => {
                self.save(&row, &fetched, SyncState::Linked).await?;
                self.report(
                    caller,
                    &row,
                    fetched.application_id,
                    StatusBody::available(),
                )
                .await?;
                self.complete(claim).await?;
                Ok("unchanged")
            }
        }
    }

    /// What the provider was last built from, when there is one.
    fn synced(&self, row: &SourceRow) -> Result<Option<Synced>, OpError> {
        if row.koku_uuid.is_none() {
            return Ok(None);
        }
        let credentials = secrets::open(&self.secrets, &row.org_id, &row.credentials())
            .context("opening stored credentials")?;
        Ok(Some(Synced {
            name: row.name.clone().unwrap_or_default(),
            credentials,
            data_source: row.data_source(),
            paused: row.paused,
        }))
    }

    /// Stores the fetched settings and the new state in the sync row.
    async fn save(
        &self,
        row: &SourceRow,
        fetched: &Fetched,
        state: SyncState,
    ) -> Result<(), OpError> {
        let mut conn = self.db.acquire().await?;
        save_row(&mut conn, &self.secrets, row, fetched, state, None, None).await?;
        Ok(())
    }

    /// The operation is done (it runs again if a newer trigger arrived meanwhile).
    async fn complete(&self, claim: &Claim) -> Result<(), OpError> {
        let mut conn = self.db.acquire().await?;
        store::complete(&mut conn, claim).await?;
        Ok(())
    }

    async fn fail_settings(
        &self,
        claim: &Claim,
        row: &SourceRow,
        fetched: &Fetched,
        problem: &Problem,
    ) -> Result<(), OpError> {
        let mut tx = self.db.begin().await?;
        save_row(
            &mut tx,
            &self.secrets,
            row,
            fetched,
            SyncState::Failed,
            Some(&problem.message),
            None,
        )
        .await?;
        if let (Some(uuid), Truth::Present(d)) = (provider_uuid(row), &fetched.truth) {
            provider::deactivate(&mut tx, uuid, d.paused).await?;
        }
        tx.commit().await?;
        let caller = caller(row);
        self.report(
            caller,
            row,
            fetched.application_id,
            StatusBody::unavailable(problem),
        )
        .await?;
        self.complete(claim).await?;
        tracing::info!(reason = %problem.message, "source settings are invalid");
        Ok(())
    }

    /// Creates or updates the provider, then reports `available`.
    async fn build(
        &self,
        claim: &Claim,
        row: &SourceRow,
        fetched: &Fetched,
        update: bool,
    ) -> Result<&'static str, OpError> {
        let Truth::Present(desired) = &fetched.truth else {
            return Err(OpError::Other(anyhow::anyhow!(
                "building a provider for a source that is not present"
            )));
        };
        if !update {
            // Visible while the provider is built; left as is when building fails.
            self.save(row, fetched, SyncState::Creating).await?;
        }
        let uuid = provider_uuid(row)
            .or(row.source_uuid)
            .or(fetched.uid)
            .unwrap_or_else(Uuid::new_v4);
        // The org's tenant is made and committed on its own first: a provider transaction
        // never waits for a schema clone's locks.
        let customer = match tenants::ensure(&self.db, &row.org_id, row.account_id.as_deref()).await
        {
            Ok(id) => id,
            Err(TenantError::Problem(problem)) => {
                self.fail_settings(claim, row, fetched, &problem).await?;
                return Ok("invalid");
            }
            Err(TenantError::Database(e)) => return Err(e.into()),
        };
        let sealed = secrets::seal(&self.secrets, &row.org_id, &desired.credentials);
        let digest = secrets::digest(&row.org_id, &desired.credentials);
        let data_source = desired.data_source.clone().unwrap_or_default();
        let spec = ProviderSpec {
            uuid,
            name: &desired.name,
            ty: desired.ty,
            org_id: &row.org_id,
            customer,
            credentials: &sealed,
            digest: &digest,
            data_source: &data_source,
            paused: desired.paused,
        };
        let mut tx = self.db.begin().await?;
        let built = if update {
            provider::update(&mut tx, &spec).await
        } else {
            provider::create(&mut tx, &spec).await
        };
        let released = match built {
            Ok(released) => released,
            Err(BuildError::Problem(problem)) => {
                tx.rollback().await?;
                self.fail_settings(claim, row, fetched, &problem).await?;
                return Ok(if problem.key == "source.duplicate" {
                    "duplicate"
                } else {
                    "invalid"
                });
            }
            Err(BuildError::Database(e)) => return Err(e.into()),
        };
        let mut fetched = fetched.clone();
        fetched.uid = Some(uuid);
        let first_link = save_row(
            &mut tx,
            &self.secrets,
            row,
            &fetched,
            SyncState::Linked,
            None,
            Some(uuid),
        )
        .await?;
        tx.commit().await?;
        self.remove_orphans(released).await;
        if let Some(created) = first_link {
            let latency = (chrono::Utc::now() - created).to_std().unwrap_or_default();
            metrics::histogram!("source_to_provider_seconds").record(latency.as_secs_f64());
        }
        tracing::info!(provider = %uuid, update, "provider ready");
        self.report(
            caller(row),
            row,
            fetched.application_id,
            StatusBody::available(),
        )
        .await?;
        self.complete(claim).await?;
        Ok(if update { "updated" } else { "created" })
    }

    /// Removes the provider and its tenant row, then the sync row, unless a new trigger
    /// arrived meanwhile (then the source is checked again).
    async fn delete(&self, claim: &Claim, row: &SourceRow) -> Result<&'static str, OpError> {
        let mut tx = self.db.begin().await?;
        let Some(current) = store::source_for_update(&mut tx, row.source_id).await? else {
            return Ok("gone");
        };
        let released = match provider_uuid(&current) {
            Some(uuid) => provider::destroy(&mut tx, uuid, &current.org_id).await?,
            None => None,
        };
        store::sources::remove_unless_triggered(&mut tx, row.source_id, claim.generation).await?;
        tx.commit().await?;
        self.remove_orphans(released).await;
        tracing::info!("source removed");
        Ok("deleted")
    }

    /// Settings rows a committed change left unused go; a failure only leaves a row behind
    /// (the next change of a provider that used it tries again).
    async fn remove_orphans(&self, released: Option<provider::Released>) {
        if let Some(released) = released
            && let Err(e) = provider::remove_orphans(&self.db, released).await
        {
            tracing::warn!(error = %e, "cannot remove unused settings rows");
        }
    }

    /// Sends the status to sources-api when it differs from the last one sent.
    async fn report(
        &self,
        caller: Caller<'_>,
        row: &SourceRow,
        application_id: Option<i64>,
        body: StatusBody,
    ) -> Result<(), OpError> {
        // Only this operation sends the source's status, so the row read at its start is current.
        let last: Option<StatusBody> = serde_json::from_value(row.status.0.clone()).ok();
        if last.as_ref() == Some(&body) {
            return Ok(());
        }
        let Some(app_id) = application_id else {
            return Ok(());
        };
        self.client.set_status(caller, app_id, &body).await?;
        store::sources::set_status(&self.db, row.source_id, &body).await?;
        metrics::counter!("status_reports_total", "status" => body.availability_status.clone())
            .increment(1);
        Ok(())
    }
}

fn caller(row: &SourceRow) -> Caller<'_> {
    Caller {
        identity: &row.auth_header,
        account_id: row.account_id.as_deref(),
        org_id: Some(&row.org_id),
    }
}

fn provider_uuid(row: &SourceRow) -> Option<Uuid> {
    row.koku_uuid
        .as_deref()
        .and_then(|u| Uuid::parse_str(u).ok())
}

/// Writes the fetched details and settings (credentials sealed) and the state; with `link`,
/// also the provider the source is now linked to. Answers the source's creation time when
/// this is its first link (for the source-to-provider latency).
async fn save_row(
    conn: &mut sqlx::PgConnection,
    secrets_box: &SecretBox,
    row: &SourceRow,
    fetched: &Fetched,
    state: SyncState,
    reason: Option<&str>,
    link: Option<Uuid>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    let (name, ty, authentication, billing, paused) = match &fetched.truth {
        Truth::Present(d) => {
            let sealed = secrets::seal(secrets_box, &row.org_id, &d.credentials);
            let authentication = if sealed.is_empty() {
                json!({})
            } else {
                json!({ "credentials": sealed })
            };
            let billing = match (&d.data_source, d.ty) {
                (_, ProviderType::Ocp) | (None, _) => json!({}),
                (Some(ds), _) => json!({ "data_source": ds }),
            };
            (
                Some(d.name.clone()),
                d.ty.as_str().to_owned(),
                authentication,
                billing,
                d.paused,
            )
        }
        _ => (
            row.name.clone(),
            row.source_type.clone(),
            row.authentication.0.clone(),
            row.billing_source.0.clone(),
            row.paused,
        ),
    };
    let saved = store::sources::Saved {
        name,
        source_type: ty,
        authentication,
        billing_source: billing,
        paused,
        source_uuid: fetched.uid,
        application_id: fetched.application_id,
        state,
        reason,
        link,
    };
    store::sources::save(conn, row.source_id, &saved).await
}
