//! The sync rows (`cost.api_sources`) and the durable work queue (`cost.operations`).

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use crate::domain::{Object, OpKind, Reread, SourceEvent, SyncState, state};

/// A followed source, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    pub source_id: i64,
    pub source_uuid: Option<Uuid>,
    pub name: Option<String>,
    pub auth_header: String,
    pub account_id: Option<String>,
    pub org_id: String,
    pub source_type: String,
    pub authentication: Json<Value>,
    pub billing_source: Json<Value>,
    pub koku_uuid: Option<String>,
    pub application_id: Option<i64>,
    pub paused: bool,
    pub status: Json<Value>,
    pub state: String,
    pub state_reason: Option<String>,
    pub created_timestamp: DateTime<Utc>,
    pub linked_timestamp: Option<DateTime<Utc>>,
}

impl SourceRow {
    pub fn state(&self) -> SyncState {
        SyncState::parse(&self.state).unwrap_or(SyncState::New)
    }

    /// The stored (sealed) credentials.
    pub fn credentials(&self) -> Object {
        self.authentication.0["credentials"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    pub fn data_source(&self) -> Object {
        self.billing_source.0["data_source"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }
}

const SOURCE_COLUMNS: &str = "source_id, source_uuid, name, auth_header, account_id, org_id, source_type, \
     authentication, billing_source, koku_uuid, application_id, paused, status, state, state_reason, \
     created_timestamp, linked_timestamp";

pub async fn source(db: &PgPool, source_id: i64) -> Result<Option<SourceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM api_sources WHERE source_id = $1"
    )))
    .bind(source_id)
    .fetch_optional(db)
    .await
}

/// Locks the row for the rest of the transaction.
pub async fn source_for_update(
    conn: &mut PgConnection,
    source_id: i64,
) -> Result<Option<SourceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM api_sources WHERE source_id = $1 FOR UPDATE"
    )))
    .bind(source_id)
    .fetch_optional(conn)
    .await
}

/// What the consumer did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Queued(OpKind),
    /// An event about a source the listener does not follow.
    UnknownSource,
}

/// Records events (in their order) in one transaction: each followed source's state moves
/// on ([`state::on_event`]) and one operation per source is queued or merged into the queued
/// one. `Application.create` and `Authentication.create` start following a source; other
/// events for sources not followed are ignored. Answers one [`Recorded`] per event.
pub async fn record_events(
    db: &PgPool,
    events: &[(SourceEvent, i64)],
) -> Result<Vec<Recorded>, sqlx::Error> {
    struct Followed {
        state: SyncState,
        has_provider: bool,
        /// Not in the table yet: (identity, account, org, offset) of the event that adds it.
        new: Option<(String, Option<String>, String, i64)>,
        /// The identity of the latest creating event, replayed on REST calls.
        identity: Option<String>,
        op: Option<OpKind>,
        reread: Option<Reread>,
    }
    let mut tx = db.begin().await?;
    let mut ids: Vec<i64> = events.iter().map(|(e, _)| e.source_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Locked in id order, so two writers of the same rows cannot deadlock.
    let current: Vec<(i64, String, bool)> = sqlx::query_as(
        "SELECT source_id, state, koku_uuid IS NOT NULL FROM api_sources \
         WHERE source_id = ANY($1) ORDER BY source_id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut followed: HashMap<i64, Followed> = current
        .into_iter()
        .map(|(id, state, has_provider)| {
            let state = SyncState::parse(&state).unwrap_or(SyncState::New);
            (
                id,
                Followed {
                    state,
                    has_provider,
                    new: None,
                    identity: None,
                    op: None,
                    reread: None,
                },
            )
        })
        .collect();
    let mut recorded = Vec::with_capacity(events.len());
    for (event, offset) in events {
        let creates = event.kind.creates_row();
        let entry = match followed.entry(event.source_id) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) if creates => v.insert(Followed {
                state: SyncState::New,
                has_provider: false,
                new: Some((
                    event.identity.clone(),
                    event.account_id.clone(),
                    event.org_id.clone(),
                    *offset,
                )),
                identity: None,
                op: None,
                reread: None,
            }),
            Entry::Vacant(_) => {
                recorded.push(Recorded::UnknownSource);
                continue;
            }
        };
        if creates {
            entry.identity = Some(event.identity.clone());
        }
        let (next, op) = state::on_event(entry.state, entry.has_provider, event.kind);
        let reread = Reread::for_event(event.kind, entry.has_provider);
        entry.state = next;
        entry.op = Some(entry.op.map_or(op, |queued| OpKind::merge(queued, op)));
        entry.reread = Some(entry.reread.map_or(reread, |r| Reread::merge(r, reread)));
        recorded.push(Recorded::Queued(op));
    }

    let mut new = NewRows::default();
    let mut changed = Changes::default();
    // In id order, as the rows were locked.
    for id in &ids {
        let Some(f) = followed.get(id) else { continue };
        let Some(op) = f.op else { continue };
        if let Some((identity, account, org, offset)) = &f.new {
            new.ids.push(*id);
            new.identities.push(identity.clone());
            new.accounts.push(account.clone());
            new.orgs.push(org.clone());
            new.offsets.push(*offset);
        }
        changed.ids.push(*id);
        changed.states.push(f.state.as_str());
        changed.identities.push(f.identity.clone());
        changed.ops.push(op.as_str());
        changed
            .rereads
            .push(f.reread.unwrap_or(Reread::All).as_str());
    }
    if !new.ids.is_empty() {
        sqlx::query(
            "INSERT INTO api_sources (source_id, auth_header, \"offset\", account_id, org_id) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[]) \
             ON CONFLICT (source_id) DO NOTHING",
        )
        .bind(&new.ids)
        .bind(&new.identities)
        .bind(&new.offsets)
        .bind(&new.accounts)
        .bind(&new.orgs)
        .execute(&mut *tx)
        .await?;
    }
    if !changed.ids.is_empty() {
        sqlx::query(
            "UPDATE api_sources s SET state = c.state, auth_header = coalesce(c.identity, s.auth_header), \
               updated_timestamp = now() \
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS c(source_id, state, identity) \
             WHERE s.source_id = c.source_id",
        )
        .bind(&changed.ids)
        .bind(&changed.states)
        .bind(&changed.identities)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO operations (source_id, kind, reread) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) {ENQUEUE_CONFLICT}"
        )))
        .bind(&changed.ids)
        .bind(&changed.ops)
        .bind(&changed.rereads)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

#[derive(Default)]
struct NewRows {
    ids: Vec<i64>,
    identities: Vec<String>,
    accounts: Vec<Option<String>>,
    orgs: Vec<String>,
    offsets: Vec<i64>,
}

#[derive(Default)]
struct Changes {
    ids: Vec<i64>,
    states: Vec<&'static str>,
    identities: Vec<Option<String>>,
    ops: Vec<&'static str>,
    rereads: Vec<&'static str>,
}

/// A queued operation absorbs a newer trigger: a delete wins, a create stays a create
/// ([`OpKind::merge`]), it re-reads what either needs ([`Reread::merge`]); the generation
/// moves on so a run in progress repeats.
const ENQUEUE_CONFLICT: &str = "ON CONFLICT (source_id) DO UPDATE SET \
       kind = CASE WHEN operations.kind = 'delete' OR excluded.kind = 'delete' THEN 'delete' \
                   WHEN operations.kind = 'create' THEN 'create' ELSE excluded.kind END, \
       reread = CASE WHEN operations.reread = 'application' AND excluded.reread = 'application' \
                     THEN 'application' ELSE 'all' END, \
       generation = operations.generation + 1, attempts = 0, run_at = now(), \
       parked_at = NULL, updated_at = now()";

/// Queues an operation for a source, merging with one already queued; a new trigger gives
/// the operation fresh attempts and makes it due now (a running one keeps its lease).
pub async fn enqueue(
    conn: &mut PgConnection,
    source_id: i64,
    kind: OpKind,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO operations (source_id, kind) VALUES ($1, $2) {ENQUEUE_CONFLICT}"
    )))
    .bind(source_id)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a re-check of a source whatever its state (`POST /source-status/`).
pub async fn enqueue_check(db: &PgPool, source_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let row = source_for_update(&mut tx, source_id).await?;
    if let Some(row) = row {
        let kind = match (row.state(), row.koku_uuid.is_some()) {
            (SyncState::PendingDelete, _) => OpKind::Delete,
            (_, true) => OpKind::Update,
            (_, false) => OpKind::Create,
        };
        enqueue(&mut tx, source_id, kind).await?;
    }
    tx.commit().await
}

/// A claimed operation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    pub source_id: i64,
    pub kind: String,
    pub generation: i64,
    pub attempts: i32,
    pub enqueued_at: DateTime<Utc>,
    /// `all` or `application` ([`Reread`]).
    pub reread: String,
}

/// Claims up to `limit` due operations for `lease`; others skip them.
pub async fn claim(db: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Claim>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE operations o SET leased_until = now() + make_interval(secs => $2), \
           attempts = o.attempts + 1, updated_at = now() \
         WHERE o.source_id IN ( \
           SELECT source_id FROM operations \
           WHERE parked_at IS NULL AND run_at <= now() \
             AND (leased_until IS NULL OR leased_until < now()) \
           ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING o.source_id, o.kind, o.generation, o.attempts, o.enqueued_at, o.reread",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
}

/// The operation succeeded: removed, unless a newer trigger arrived while it ran (then it
/// runs again).
pub async fn complete(conn: &mut PgConnection, claim: &Claim) -> Result<(), sqlx::Error> {
    let removed = sqlx::query("DELETE FROM operations WHERE source_id = $1 AND generation = $2")
        .bind(claim.source_id)
        .bind(claim.generation)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if removed == 0 {
        release(conn, claim.source_id).await?;
    }
    Ok(())
}

/// Gives up a claim without counting it (shutdown).
pub async fn release(conn: &mut PgConnection, source_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operations SET leased_until = NULL, updated_at = now() WHERE source_id = $1",
    )
    .bind(source_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The operation failed: retried after `backoff`, or parked with its reason after the last
/// attempt. A newer trigger that arrived meanwhile keeps it due now with fresh attempts.
pub async fn fail(
    db: &PgPool,
    claim: &Claim,
    error: &str,
    backoff: Duration,
    max_attempts: i32,
) -> Result<bool, sqlx::Error> {
    let parked: Option<bool> = sqlx::query_scalar(
        "UPDATE operations SET leased_until = NULL, last_error = $3, updated_at = now(), \
           run_at = CASE WHEN generation = $2 THEN now() + make_interval(secs => $4) ELSE run_at END, \
           parked_at = CASE WHEN generation = $2 AND attempts >= $5 THEN now() ELSE NULL END \
         WHERE source_id = $1 RETURNING parked_at IS NOT NULL",
    )
    .bind(claim.source_id)
    .bind(claim.generation)
    .bind(error)
    .bind(backoff.as_secs_f64())
    .bind(max_attempts)
    .fetch_optional(db)
    .await?;
    Ok(parked.unwrap_or(false))
}

/// Operations waiting or running, and parked ones.
pub async fn queue_depth(db: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL) \
         FROM operations",
    )
    .fetch_one(db)
    .await
}

/// The next time an operation is due, for the worker's sleep.
pub async fn next_due(db: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(greatest(run_at, coalesce(leased_until, run_at))) FROM operations WHERE parked_at IS NULL",
    )
    .fetch_one(db)
    .await
}
