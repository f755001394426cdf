//! One operation: read the source, decide (`domain::state::plan`), and carry the decision
//! out: build, update or remove the provider, and report the status when it changed.

use anyhow::Context as _;
use uuid::Uuid;

use super::{
    OpError, Worker, caller,
    fetch::Fetched,
    provider_uuid,
    save::{Outcome, save_row, saved},
    tenant::{TENANT_WAIT, Tenant},
};
use crate::{
    domain::{Plan, Problem, Reread, StatusBody, SyncState, Synced, Truth},
    secrets,
    sources_client::Caller,
    store::{
        self, Claim, SourceRow,
        providers::{self as provider, BuildError, ProviderSpec},
    },
};

/// When a source was created, answered by its first link.
type FirstLink = chrono::DateTime<chrono::Utc>;

impl Worker {
    /// One operation: returns what was done, for the metrics.
    pub(super) async fn reconcile(
        &self,
        claim: &Claim,
        row: SourceRow,
    ) -> Result<&'static str, OpError> {
        let synced = self.synced(&row)?;
        let caller = caller(&row);
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
                self.save(&row, &fetched, Outcome::state(SyncState::Details))
                    .await?;
                self.complete(claim, None).await?;
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
                let kept = Outcome {
                    reporting: Some(claim.generation),
                    ..Outcome::state(SyncState::Linked)
                };
                self.save(&row, &fetched, kept).await?;
                self.report_and_complete(
                    claim,
                    &row,
                    fetched.application_id,
                    StatusBody::available(),
                )
                .await?;
                Ok("unchanged")
            }
        }
    }

    /// The org's tenant ([`Worker::tenant`]). The source shows `creating` when it waits for
    /// it longer than a spare takes (a clone, a turn) or gives way; not for a spare's moment,
    /// when a burst of new orgs has the most to do.
    async fn wait_for_tenant(&self, row: &SourceRow, fetched: &Fetched) -> Result<Tenant, OpError> {
        if let Some(id) = self.tenants.known(&row.org_id) {
            return Ok(Tenant::Ready(id));
        }
        let (done, mut made) = tokio::sync::watch::channel(false);
        let tenant = async {
            let tenant = self.tenant(row).await;
            done.send_replace(true);
            tenant
        };
        let shown = async {
            let made = async { made.wait_for(|made| *made).await.is_ok() };
            match tokio::time::timeout(TENANT_WAIT, made).await {
                Ok(_) => Ok(false),
                Err(_) => self.show_creating(row, fetched).await.map(|()| true),
            }
        };
        let (tenant, shown) = tokio::join!(tenant, shown);
        let (tenant, shown) = (tenant?, shown?);
        if matches!(tenant, Tenant::Busy) && !shown {
            self.show_creating(row, fetched).await?;
        }
        Ok(tenant)
    }

    /// Shows `creating` for a source waiting for its tenant, when it is to get its first
    /// provider: a sync row with a provider holds what the provider was built from, and the
    /// fetched settings there before the provider has them would make the next attempt find
    /// nothing to change.
    async fn show_creating(&self, row: &SourceRow, fetched: &Fetched) -> Result<(), OpError> {
        if row.koku_uuid.is_none()
            && crate::domain::state::plan(&fetched.truth, None) == Plan::Create
        {
            self.save(row, fetched, Outcome::state(SyncState::Creating))
                .await?;
        }
        Ok(())
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
        outcome: Outcome<'_>,
    ) -> Result<(), OpError> {
        let mut conn = self.db.acquire().await?;
        save_row(&mut conn, &self.secrets, row, fetched, outcome).await?;
        Ok(())
    }

    /// The operation is done (it runs again if a newer trigger arrived meanwhile); `sent` is
    /// the status it reported, recorded in the same statement.
    async fn complete(&self, claim: &Claim, sent: Option<&StatusBody>) -> Result<(), OpError> {
        let mut conn = self.queue.acquire().await?;
        store::complete(&mut conn, claim, sent).await?;
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
            Outcome {
                reason: Some(&problem.message),
                ..Outcome::state(SyncState::Failed)
            },
        )
        .await?;
        if let (Some(uuid), Truth::Present(d)) = (provider_uuid(row), &fetched.truth) {
            provider::deactivate(&mut tx, uuid, d.paused).await?;
        }
        tx.commit().await?;
        self.report_and_complete(
            claim,
            row,
            fetched.application_id,
            StatusBody::unavailable(problem),
        )
        .await?;
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
        let customer = match self.wait_for_tenant(row, fetched).await? {
            Tenant::Ready(id) => id,
            Tenant::Invalid(problem) => {
                self.fail_settings(claim, row, fetched, &problem).await?;
                return Ok("invalid");
            }
            Tenant::Busy => {
                store::postpone(&self.queue, claim, TENANT_WAIT).await?;
                return Ok("postponed");
            }
        };
        let uuid = provider_uuid(row)
            .or(row.source_uuid)
            .or(fetched.uid)
            .unwrap_or_else(Uuid::new_v4);
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
        let mut linked = fetched.clone();
        linked.uid = Some(uuid);
        // The provider and the source's link to it commit together: a listener killed
        // before the commit leaves neither, and the next attempt builds both.
        let saved = saved(
            &self.secrets,
            row,
            &linked,
            Outcome {
                link: Some(uuid),
                reporting: Some(claim.generation),
                ..Outcome::state(SyncState::Linked)
            },
        );
        let made = match update {
            false => {
                let mut conn = self.db.acquire().await?;
                provider::try_create_linked(&mut conn, &spec, row.source_id, &saved).await?
            }
            true => None,
        };
        let (released, first_link) = match made {
            Some(first_link) => (None, first_link),
            None => match self
                .write_provider(&spec, update, row.source_id, &saved)
                .await
            {
                Ok(written) => written,
                Err(BuildError::Problem(problem)) => {
                    self.fail_settings(claim, row, fetched, &problem).await?;
                    return Ok(if problem.key == "source.duplicate" {
                        "duplicate"
                    } else {
                        "invalid"
                    });
                }
                Err(BuildError::Database(e)) => return Err(e.into()),
            },
        };
        self.remove_orphans(released).await;
        if !update {
            self.announce_created(uuid).await;
        }
        if let Some(created) = first_link {
            let latency = (chrono::Utc::now() - created).to_std().unwrap_or_default();
            metrics::histogram!("source_to_provider_seconds").record(latency.as_secs_f64());
        }
        tracing::info!(provider = %uuid, update, "provider ready");
        self.report_and_complete(claim, row, fetched.application_id, StatusBody::available())
            .await?;
        Ok(if update { "updated" } else { "created" })
    }

    /// Tells the ingestion service, once the provider has committed, that it exists. Not a
    /// trigger inside the provider's transaction: a transaction that notifies takes a lock of
    /// the whole cluster from its commit until the commit is flushed, so every provider
    /// commit waited for the one before. Sent on the queue's connections, whose commits do not
    /// wait for the flush; a lost notification delays the first check to the next sweep.
    async fn announce_created(&self, uuid: Uuid) {
        if let Err(e) = provider::announce_created(&self.queue, uuid).await {
            tracing::warn!(error = %e, provider = %uuid, "cannot announce the new provider; the next sweep finds it");
        }
    }

    /// The provider's rows and the source's link to it, in one transaction that sorts out
    /// what stands in the way of a new provider (an existing one, a duplicate).
    async fn write_provider(
        &self,
        spec: &ProviderSpec<'_>,
        update: bool,
        source_id: i64,
        saved: &store::sources::Saved<'_>,
    ) -> Result<(Option<provider::Released>, Option<FirstLink>), BuildError> {
        let mut tx = self.db.begin().await?;
        let released = match update {
            true => provider::update(&mut tx, spec).await?,
            false => provider::create(&mut tx, spec).await?,
        };
        let first_link = store::sources::save(&mut tx, source_id, saved).await?;
        tx.commit().await?;
        Ok((released, first_link))
    }

    /// Removes the provider and its tenant row, then the sync row, unless a new trigger
    /// arrived meanwhile (then the source is checked again).
    async fn delete(&self, claim: &Claim, row: &SourceRow) -> Result<&'static str, OpError> {
        let mut tx = self.db.begin().await?;
        let Some(current) = store::source_for_update(&mut tx, row.source_id).await? else {
            return Ok("gone");
        };
        // A provider whose link was lost (a listener killed between the provider's commit and
        // the link) has the source's uid as its uuid.
        let released = match provider_uuid(&current).or(current.source_uuid) {
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

    /// Sends the status to sources-api when it differs from the last one sent; answers what
    /// was sent, for [`Self::complete`] to record.
    async fn report(
        &self,
        caller: Caller<'_>,
        row: &SourceRow,
        application_id: Option<i64>,
        body: StatusBody,
    ) -> Result<Option<StatusBody>, OpError> {
        // Only this operation sends the source's status, so the row read at its start is current.
        let last: Option<StatusBody> = serde_json::from_value(row.status.0.clone()).ok();
        if last.as_ref() == Some(&body) {
            return Ok(None);
        }
        let Some(app_id) = application_id else {
            return Ok(None);
        };
        self.client.set_status(caller, app_id, &body).await?;
        metrics::counter!("status_reports_total", "status" => body.availability_status.clone())
            .increment(1);
        Ok(Some(body))
    }

    /// Reports `body` and completes the operation.
    async fn report_and_complete(
        &self,
        claim: &Claim,
        row: &SourceRow,
        application_id: Option<i64>,
        body: StatusBody,
    ) -> Result<(), OpError> {
        let sent = self.report(caller(row), row, application_id, body).await?;
        self.complete(claim, sent.as_ref()).await
    }
}
