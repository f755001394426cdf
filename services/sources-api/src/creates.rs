//! Group commit of `POST /sources`: creates that arrive together share one statement and one
//! commit (one WAL flush, one executor start) instead of one each. A request is answered only
//! once its batch has committed, so what is acknowledged is as durable as before, and each
//! source's `Source.create` event is still in the source's own transaction. A create the batch
//! could not insert (its name taken, its type unknown) or a batch that failed as a whole runs
//! alone, through the same statement as an unbatched create, for its exact answer.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
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

/// Batches committed at once: while one waits for its commit, the next one gathers.
const COMMITTERS: usize = 2;

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
    /// Starts the committers; they end when the last `Creates` is dropped. `max_batch` 1
    /// commits every create on its own.
    pub fn start(db: PgPool, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (queue, waiting) = mpsc::channel(max_batch * COMMITTERS);
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..COMMITTERS {
            let span = tracing::info_span!("source_creates", committer = n);
            tokio::spawn(commit_loop(db.clone(), waiting.clone(), max_batch).instrument(span));
        }
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

async fn commit_loop(db: PgPool, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>, max_batch: usize) {
    loop {
        let mut batch = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < max_batch {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        commit(&db, batch).await;
    }
}

/// Commits one batch and answers each of its requests.
async fn commit(db: &PgPool, batch: Vec<Pending>) {
    metrics::histogram!("sources_create_batch_size").record(batch.len() as f64);
    if batch.len() == 1 {
        for pending in batch {
            let answer = alone(db, &pending.draft).await;
            let _ = pending.answer.send(answer);
        }
        return;
    }
    let drafts: Vec<Draft> = batch.iter().map(|p| p.draft.clone()).collect();
    let inserted = async {
        let mut conn = db.acquire().await?;
        source_batches::insert_many_announced(&mut conn, &drafts).await
    }
    .await;
    let rows = match inserted {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, creates = batch.len(), "a batch of creates failed; each runs alone");
            vec![None; batch.len()]
        }
    };
    for (pending, row) in batch.into_iter().zip(rows) {
        let answer = match row {
            Some(row) => Ok(row),
            None => alone(db, &pending.draft).await,
        };
        // The client may have gone; its source is committed either way.
        let _ = pending.answer.send(answer);
    }
}

async fn alone(db: &PgPool, draft: &Draft) -> Result<SourceRow> {
    let mut conn = db.acquire().await?;
    sources::insert_announced(&mut conn, &draft.tenant, &draft.source).await
}
