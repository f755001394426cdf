//! Group commit of `POST /sources`: creates that arrive together share one statement and one
//! commit (one WAL flush, one executor start) instead of one each. A request is answered only
//! once its batch has committed, so what is acknowledged is as durable as before, and each
//! source's `Source.create` event is still in the source's own transaction. A create the batch
//! could not insert (its name taken, its type unknown) or a batch that failed as a whole runs
//! alone, through the same statement as an unbatched create, for its exact answer.
//!
//! One batch is in flight at a time; the creates arriving meanwhile make the next one. The
//! statement and its commit are one round trip, so a second committer could not overlap one
//! batch's flush with the next one's work: it only split the waiting creates into batches
//! half as large (measured: 4 creates a batch instead of 8, and fewer creates a second).

use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::{
    domain::source::NewSource,
    error::{Error, Result},
    store::{
        Tenant,
        source_batches::{self, Draft},
        sources::{self, SourceRow},
    },
};

/// Where create requests wait for their batch.
#[derive(Debug, Clone)]
pub struct Creates {
    queue: mpsc::Sender<Pending>,
}

#[derive(Debug)]
struct Pending {
    draft: Draft,
    answer: oneshot::Sender<Result<SourceRow>>,
}

impl Creates {
    /// Starts the committer; it ends when the last `Creates` is dropped. `max_batch` 1
    /// commits every create on its own.
    pub fn start(db: PgPool, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (queue, waiting) = mpsc::channel(max_batch * 2);
        tokio::spawn(
            commit_loop(db, waiting, max_batch).instrument(tracing::info_span!("source_creates")),
        );
        Self { queue }
    }

    /// Inserts the source and its event; answers once they are committed.
    pub async fn create(&self, tenant: Tenant, source: NewSource) -> Result<SourceRow> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            draft: Draft { tenant, source },
            answer,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("the source committers have stopped")))?;
        answered
            .await
            .map_err(|_| Error::Internal(anyhow::anyhow!("a source committer stopped")))?
    }
}

async fn commit_loop(db: PgPool, mut waiting: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut conn = Held { db, conn: None };
    let mut batch = Vec::with_capacity(max_batch);
    while waiting.recv_many(&mut batch, max_batch).await > 0 {
        commit(&mut conn, std::mem::take(&mut batch)).await;
        if waiting.is_empty() {
            conn.release();
        }
    }
}

/// The committer's connection, kept while creates keep arriving: a pooled connection costs a
/// round trip each time it goes back to the pool (sqlx checks it then), as much as the batch's
/// own statement. Given back when no create waits, so a small pool is not held up.
struct Held {
    db: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl Held {
    async fn get(&mut self) -> Result<&mut PgConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.db.acquire().await?);
        }
        Ok(self.conn.as_deref_mut().expect("just acquired"))
    }

    /// Back to the pool, which checks it before anyone else has it.
    fn release(&mut self) {
        self.conn = None;
    }

    /// Keeps the connection after a refusal the database answered; anything else may have
    /// broken it.
    fn after<T>(&mut self, result: &Result<T>) {
        if let Err(Error::Database(_) | Error::Internal(_)) = result {
            self.release();
        }
    }
}

/// Commits one batch and answers each of its requests. Without a connection (the pool timed
/// out, the database is down) the rest of the batch is answered with that error at once:
/// trying its creates one by one would make each wait out the pool's timeout again.
async fn commit(conn: &mut Held, batch: Vec<Pending>) {
    metrics::histogram!("sources_create_batch_size").record(batch.len() as f64);
    let mut unconnected: Option<Error> = conn.get().await.err();
    let rows = match (&unconnected, batch.len()) {
        (Some(_), _) | (None, 1) => vec![None; batch.len()],
        (None, _) => {
            let drafts: Vec<&Draft> = batch.iter().map(|p| &p.draft).collect();
            let inserted =
                async { source_batches::insert_many_announced(conn.get().await?, &drafts).await }
                    .await;
            conn.after(&inserted);
            inserted.unwrap_or_else(|e| {
                tracing::warn!(error = %e, creates = batch.len(), "a batch of creates failed; each runs alone");
                vec![None; batch.len()]
            })
        }
    };
    for (pending, row) in batch.into_iter().zip(rows) {
        let answer = match row {
            Some(row) => Ok(row),
            None => {
                if unconnected.is_none() {
                    unconnected = conn.get().await.err();
                }
                match &unconnected {
                    Some(e) => Err(same(e)),
                    None => alone(conn, &pending.draft).await,
                }
            }
        };
        // The client may have gone; its source is committed either way.
        let _ = pending.answer.send(answer);
    }
    if let Some(e) = unconnected {
        tracing::warn!(error = %e, "creates answered without a database connection");
    }
}

/// The error each create of a batch gets when no connection could be had (errors do not clone).
fn same(e: &Error) -> Error {
    match e {
        Error::Database(sqlx::Error::PoolTimedOut) => Error::Database(sqlx::Error::PoolTimedOut),
        Error::Database(sqlx::Error::PoolClosed) => Error::Database(sqlx::Error::PoolClosed),
        e => Error::Internal(anyhow::anyhow!("no database connection: {e}")),
    }
}

async fn alone(conn: &mut Held, draft: &Draft) -> Result<SourceRow> {
    let inserted =
        async { sources::insert_announced(conn.get().await?, &draft.tenant, &draft.source).await }
            .await;
    conn.after(&inserted);
    inserted
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keel_domain::AvailabilityStatus;
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::domain::source::AppCreationWorkflow;

    fn source(n: usize) -> NewSource {
        NewSource {
            name: format!("source {n}"),
            version: None,
            imported: None,
            source_ref: None,
            app_creation_workflow: AppCreationWorkflow::ManualConfiguration,
            availability_status: AvailabilityStatus::InProgress,
            source_type_id: 1,
        }
    }

    /// A batch that cannot get a connection is answered at once with the pool's error. Its
    /// creates were tried one by one before, each waiting out the pool's timeout again; the
    /// connection is given back as soon as the first answer arrives, so a create still trying
    /// after that would get it and fail otherwise (the database has no sources table).
    #[tokio::test]
    async fn a_batch_without_a_connection_is_answered_whole_with_the_pools_error() {
        let url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run the tests through scripts/test, which starts PostgreSQL",
        );
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(100))
            .connect_lazy(&url)
            .unwrap();
        // Opening the connection may outlast the short timeout on a loaded machine: it is
        // asked for again until it is had.
        let mut held = None;
        for _ in 0..100 {
            match pool.acquire().await {
                Ok(conn) => {
                    held = Some(conn);
                    break;
                }
                Err(sqlx::Error::PoolTimedOut) => continue,
                Err(e) => panic!("cannot connect to DATABASE_URL: {e}"),
            }
        }
        let held = held.expect("a connection within 100 attempts");
        let creates = Creates::start(pool.clone(), 16);
        let tenant = Tenant::for_tests(None, Some("org"), "identity");
        // On this single-threaded runtime all eight are queued before the committer runs: one
        // batch.
        let mut answers = tokio::task::JoinSet::new();
        for n in 0..8 {
            let (creates, tenant) = (creates.clone(), tenant.clone());
            answers.spawn(async move { creates.create(tenant, source(n)).await });
        }
        let first = answers.join_next().await.unwrap().unwrap();
        drop(held);
        let mut all = vec![first];
        while let Some(answer) = answers.join_next().await {
            all.push(answer.unwrap());
        }
        assert_eq!(all.len(), 8);
        for answer in all {
            assert!(
                matches!(answer, Err(Error::Database(sqlx::Error::PoolTimedOut))),
                "{answer:?}"
            );
        }
    }
}
