//! The sync rows (`cost.api_sources`): one per followed source, its state, settings and
//! the provider it is linked to.

use std::collections::{HashMap, hash_map::Entry};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use super::sync_row::SOURCE_COLUMNS;
pub use super::sync_row::SourceRow;
use crate::domain::{OpKind, Reread, SourceEvent, SyncState, echo, state};

pub async fn source(db: &PgPool, source_id: i64) -> Result<Option<SourceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM api_sources WHERE source_id = $1"
    )))
    .bind(source_id)
    .fetch_optional(db)
    .await
}

/// The followed source `source_id` if it belongs to `org` (the read API's scope).
pub async fn source_of_org(
    db: &PgPool,
    org: &str,
    source_id: i64,
) -> Result<Option<SourceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM api_sources WHERE source_id = $1 AND org_id = $2"
    )))
    .bind(source_id)
    .bind(org)
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
    /// An application event whose settings are those the provider has ([`echo`]).
    Unchanged,
}

/// A followed source's row as the consumer reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct KnownRow {
    source_id: i64,
    state: String,
    has_provider: bool,
    source_type: String,
    billing_source: Json<serde_json::Value>,
    paused: bool,
    /// The queued operation's `reporting`, `None` when there is none.
    reporting: Option<bool>,
}

impl KnownRow {
    fn known(&self, state: SyncState) -> echo::Known<'_> {
        echo::Known {
            state,
            has_provider: self.has_provider,
            source_type: &self.source_type,
            billing_source: &self.billing_source.0,
            paused: self.paused,
            operation: match self.reporting {
                None => echo::Operation::None,
                Some(false) => echo::Operation::Working,
                Some(true) => echo::Operation::Reporting,
            },
        }
    }
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
        /// What events that change nothing are compared with (`None` for a new row).
        known: Option<KnownRow>,
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
    let current: Vec<KnownRow> = sqlx::query_as(
        "SELECT s.source_id, s.state, s.koku_uuid IS NOT NULL AS has_provider, s.source_type, \
           s.billing_source, s.paused, o.reporting \
         FROM api_sources s LEFT JOIN operations o ON o.source_id = s.source_id \
         WHERE s.source_id = ANY($1) ORDER BY s.source_id FOR UPDATE OF s",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut followed: HashMap<i64, Followed> = current
        .into_iter()
        .map(|row| {
            let state = SyncState::parse(&row.state).unwrap_or(SyncState::New);
            (
                row.source_id,
                Followed {
                    state,
                    has_provider: row.has_provider,
                    known: Some(row),
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
                known: None,
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
        // Nothing queued for it in this batch either: the event is compared with the row.
        if entry.op.is_none()
            && let Some(row) = &entry.known
            && echo::changes_nothing(
                &row.known(entry.state),
                event.kind,
                event.application.as_ref(),
            )
        {
            recorded.push(Recorded::Unchanged);
            continue;
        }
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
            new.states.push(f.state.as_str());
        }
        changed.ids.push(*id);
        changed.states.push(f.state.as_str());
        changed.identities.push(f.identity.clone());
        changed.ops.push(op.as_str());
        changed
            .rereads
            .push(f.reread.unwrap_or(Reread::All).as_str());
    }
    if changed.ids.is_empty() {
        // Only row locks were taken (events that change nothing, such as the echo of a status
        // this listener sent): nothing to commit, so no WAL flush to wait for.
        tx.rollback().await?;
        return Ok(recorded);
    }
    sqlx::query(RECORD.as_str())
        .bind(&new.ids)
        .bind(&new.identities)
        .bind(&new.offsets)
        .bind(&new.accounts)
        .bind(&new.orgs)
        .bind(&new.states)
        .bind(&changed.ids)
        .bind(&changed.states)
        .bind(&changed.identities)
        .bind(&changed.ops)
        .bind(&changed.rereads)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(recorded)
}

/// What [`record_events`] writes, in one statement (one round trip in the consumer's cycle,
/// which every event waits behind): the rows of sources followed from now on, inserted in their
/// new state; the state of the others (the update does not see the rows inserted beside it,
/// which is why they carry theirs); and the queued operations, whose foreign key is checked
/// at the end of the statement, when the new rows are there.
static RECORD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH new AS (INSERT INTO api_sources (source_id, auth_header, \"offset\", account_id, org_id, state) \
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) \
           ON CONFLICT (source_id) DO NOTHING), \
         changed AS (UPDATE api_sources s SET state = c.state, \
             auth_header = coalesce(c.identity, s.auth_header), updated_timestamp = now() \
           FROM unnest($7::bigint[], $8::text[], $9::text[]) AS c(source_id, state, identity) \
           WHERE s.source_id = c.source_id) \
         INSERT INTO operations (source_id, kind, reread) \
         SELECT * FROM unnest($7::bigint[], $10::text[], $11::text[]) {}",
        super::queue::ENQUEUE_CONFLICT
    )
});

#[derive(Default)]
struct NewRows {
    ids: Vec<i64>,
    identities: Vec<String>,
    accounts: Vec<Option<String>>,
    orgs: Vec<String>,
    offsets: Vec<i64>,
    states: Vec<&'static str>,
}

#[derive(Default)]
struct Changes {
    ids: Vec<i64>,
    states: Vec<&'static str>,
    identities: Vec<Option<String>>,
    ops: Vec<&'static str>,
    rereads: Vec<&'static str>,
}

/// What an operation writes back to a source's sync row.
#[derive(Debug, Clone)]
pub struct Saved<'a> {
    pub name: Option<String>,
    pub source_type: String,
    /// `{"credentials": {...}}` with secrets sealed, or `{}`.
    pub authentication: serde_json::Value,
    /// `{"data_source": {...}}`, or `{}`.
    pub billing_source: serde_json::Value,
    pub paused: bool,
    pub source_uuid: Option<Uuid>,
    pub application_id: Option<i64>,
    pub state: SyncState,
    pub reason: Option<&'a str>,
    /// The provider the source is now linked to.
    pub link: Option<Uuid>,
    /// The generation of the operation whose changes this commits: it only reports the status
    /// from now on (`operations.reporting`).
    pub reporting: Option<i64>,
}

/// The statement of [`save`] in two parts, its parameters numbered from `$first` (in the
/// order [`bind_saved`] binds them): the CTE `reporting` and the update of the sync row,
/// which answers `first_link`. Both apply only where `condition` holds, so a larger
/// statement can make them depend on what it did before.
pub(super) fn save_parts(first: usize, condition: &str) -> (String, String) {
    let p = |n: usize| format!("${}", first + n - 1);
    let reporting = format!(
        "reporting AS (UPDATE operations SET reporting = true \
           WHERE source_id = {id} AND generation = {generation} AND {condition})",
        id = p(1),
        generation = p(12),
    );
    let update = format!(
        "UPDATE api_sources SET name = {}, source_type = {}, authentication = {}, billing_source = {}, \
           paused = {}, source_uuid = coalesce(source_uuid, {}), application_id = coalesce({}, application_id), \
           state = {}, state_reason = {}, updated_timestamp = now(), \
           koku_uuid = coalesce({link}::uuid::text, koku_uuid), provider_id = coalesce({link}::uuid, provider_id), \
           linked_timestamp = CASE WHEN {link}::uuid IS NULL THEN linked_timestamp ELSE coalesce(linked_timestamp, now()) END \
         WHERE source_id = {} AND {condition} \
         RETURNING CASE WHEN {link}::uuid IS NOT NULL AND linked_timestamp = now() THEN created_timestamp END AS first_link",
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10),
        p(1),
        link = p(11),
    );
    (reporting, update)
}

/// Binds the parameters of [`save_parts`].
pub(super) fn bind_saved<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    source_id: i64,
    saved: &'q Saved<'_>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(source_id)
        .bind(&saved.name)
        .bind(&saved.source_type)
        .bind(Json(&saved.authentication))
        .bind(Json(&saved.billing_source))
        .bind(saved.paused)
        .bind(saved.source_uuid)
        .bind(saved.application_id)
        .bind(saved.state.as_str())
        .bind(saved.reason)
        .bind(saved.link)
        .bind(saved.reporting)
}

static SAVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let (reporting, update) = save_parts(1, "true");
    format!("WITH {reporting} {update}")
});

/// Writes an operation's outcome to the sync row. Answers the source's creation time when
/// this is its first link (for the source-to-provider latency).
pub async fn save(
    conn: &mut PgConnection,
    source_id: i64,
    saved: &Saved<'_>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let first_link: Option<(Option<DateTime<Utc>>,)> = bind_saved(
        sqlx::query_as(sqlx::AssertSqlSafe(SAVE.as_str())),
        source_id,
        saved,
    )
    .fetch_optional(conn)
    .await?;
    Ok(first_link.and_then(|(created,)| created))
}

/// The status last sent to sources-api.
pub async fn set_status(
    db: &PgPool,
    source_id: i64,
    status: &impl serde::Serialize,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_sources SET status = $2 WHERE source_id = $1")
        .bind(source_id)
        .bind(Json(status))
        .execute(db)
        .await?;
    Ok(())
}

/// After a provider was removed: the sync row goes, unless a newer trigger than the
/// operation's `generation` arrived meanwhile; then the row starts over (`new`, unlinked) and
/// the operation is released to run again. Answers whether the row went.
pub async fn remove_unless_triggered(
    conn: &mut PgConnection,
    source_id: i64,
    generation: i64,
) -> Result<bool, sqlx::Error> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT generation FROM operations WHERE source_id = $1 FOR UPDATE")
            .bind(source_id)
            .fetch_optional(&mut *conn)
            .await?;
    if current.is_some_and(|g| g != generation) {
        sqlx::query(
            "UPDATE api_sources SET koku_uuid = NULL, provider_id = NULL, state = 'new', status = '{}' \
             WHERE source_id = $1",
        )
        .bind(source_id)
        .execute(&mut *conn)
        .await?;
        super::queue::release(conn, source_id).await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM api_sources WHERE source_id = $1")
        .bind(source_id)
        .execute(conn)
        .await?;
    Ok(true)
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
        super::queue::enqueue(&mut tx, source_id, kind).await?;
    }
    tx.commit().await
}
