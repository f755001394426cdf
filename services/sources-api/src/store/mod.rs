//! sources-api's persistence. One module per resource owns its table (with the columns a list
//! may filter and sort on), its row type, the payload its events carry, and its queries.
//!
//! Every query of a tenant's rows takes a [`Tenant`], which only [`tenants::get_or_create`]
//! makes and whose id nothing outside this module can read: a query without its tenant cannot
//! be written by accident, as svix's `secure_find` guarantees. Writes go through a [`Write`]:
//! one tenant's transaction whose announced events are appended to the outbox when it
//! commits, so a change and its events commit together or not at all.

/// `fetch`, `find` and `find_in` of one resource's rows by id, scoped to the tenant.
macro_rules! by_id {
    ($row:ty, $select:expr, $table:literal, $kind:literal) => {
        async fn fetch(
            conn: &mut sqlx::PgConnection,
            tenant: &super::Tenant,
            id: i64,
        ) -> crate::error::Result<$row> {
            super::fetch_by_id(conn, tenant, $select, $table, id, $kind).await
        }

        #[doc = concat!("The tenant's ", $kind, " `id`, or 404.")]
        pub async fn find(
            db: &sqlx::PgPool,
            tenant: &super::Tenant,
            id: i64,
        ) -> crate::error::Result<$row> {
            fetch(&mut *db.acquire().await?, tenant, id).await
        }

        #[doc = concat!("The tenant's ", $kind, " `id` as the write sees it, or 404.")]
        pub async fn find_in(w: &mut super::Write<'_>, id: i64) -> crate::error::Result<$row> {
            let tenant = w.tenant();
            fetch(w.conn(), tenant, id).await
        }
    };
}

/// `list` of a table whose rows belong to a source: one page of the tenant's rows, only
/// those of `of_source` when given.
macro_rules! list_by_source {
    ($row:ty) => {
        pub async fn list(
            db: &sqlx::PgPool,
            tenant: &super::Tenant,
            of_source: Option<i64>,
            query: &keel_domain::listing::ListQuery,
        ) -> crate::error::Result<keel_db::Page<$row>> {
            let scopes = of_source
                .map(|id| vec![keel_db::Scope::eq("t.source_id = ", id)])
                .unwrap_or_default();
            super::tenant_page(db, tenant, &TABLE, "t.*", scopes, query).await
        }
    };
}

pub mod application_authentications;
pub mod applications;
pub mod authentications;
pub mod catalogue;
pub mod endpoints;
/// JSON as `jsonb` gives it back.
pub mod jsonb;
pub mod outbox;
pub mod rhc_connections;
pub mod secrets;
pub mod source_batches;
pub mod sources;
pub mod status;
pub mod tenants;

use keel_crypto::SecretBox;
use keel_db::{Listing, Page, Scope, Table};
use keel_domain::{listing::ListQuery, sources_events::EventType};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction, postgres::PgRow};

pub use outbox::{Event, OUTBOX};
pub use tenants::{Tenant, TenantCache};

use crate::{
    domain::{authentication::Credentials, status::StatusReport},
    error::Result,
};

/// A query whose parameters are being bound, for the helpers below that bind the groups of
/// columns several tables share.
type Binding<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>;

/// Binds the credential columns authentications and secrets share, in order: `name`,
/// `authtype`, `username`, the sealed password, `extra`.
fn bind_credentials<'q, O>(
    q: Binding<'q, O>,
    c: &'q Credentials,
    sealed: &'q Option<Vec<u8>>,
) -> Binding<'q, O> {
    q.bind(&c.name)
        .bind(&c.authtype)
        .bind(&c.username)
        .bind(sealed)
        .bind(&c.extra)
}

/// Binds a status report, in order: `availability_status`, `availability_status_error`,
/// `last_checked_at`, `last_available_at`.
fn bind_report<'q, O>(q: Binding<'q, O>, r: &'q StatusReport) -> Binding<'q, O> {
    q.bind(r.status.map(|s| s.as_str()))
        .bind(&r.error)
        .bind(r.last_checked_at)
        .bind(r.last_available_at)
}

/// One tenant's transaction and the events it announces. Dropped without [`Write::commit`],
/// it rolls back and announces nothing.
pub struct Write<'t> {
    tx: Transaction<'static, Postgres>,
    tenant: &'t Tenant,
    events: Vec<Event>,
}

impl<'t> Write<'t> {
    pub async fn begin(db: &PgPool, tenant: &'t Tenant) -> Result<Self> {
        Ok(Self {
            tx: db.begin().await?,
            tenant,
            events: Vec::new(),
        })
    }

    pub fn tenant(&self) -> &'t Tenant {
        self.tenant
    }

    /// The transaction, for the store's queries only.
    pub(in crate::store) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Announces an event; events are recorded in the order announced.
    pub fn announce(&mut self, event_type: EventType, payload: Value) {
        self.events.push(Event::new(event_type, payload));
    }

    pub fn announce_all(&mut self, events: impl IntoIterator<Item = Event>) {
        self.events.extend(events);
    }

    /// Records the announced events in the outbox and commits, together.
    pub async fn commit(mut self) -> Result<()> {
        outbox::record(&mut self.tx, self.tenant, &self.events).await?;
        self.tx.commit().await?;
        if !self.events.is_empty() {
            outbox::OUTBOX.committed();
        }
        Ok(())
    }
}

/// One page of the tenant's rows of `table` within `scopes`: every list of a tenant's
/// resource goes through here, the tenant condition first.
async fn tenant_page<Row>(
    db: &PgPool,
    tenant: &Tenant,
    table: &'static Table,
    select: &'static str,
    mut scopes: Vec<Scope>,
    query: &ListQuery,
) -> Result<Page<Row>>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    scopes.insert(0, Scope::eq("t.tenant_id = ", tenant.id()));
    page(db, table, select, scopes, query).await
}

/// One page of a table shared by every tenant (the catalogue), or across tenants.
async fn page<Row>(
    db: &PgPool,
    table: &'static Table,
    select: &'static str,
    scopes: Vec<Scope>,
    query: &ListQuery,
) -> Result<Page<Row>>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    Ok(Listing {
        table,
        select,
        scopes,
        query,
    }
    .fetch::<Row>(db)
    .await?)
}

/// The tenant's row `id` of `table` (alias `t`, columns `select`), or 404 `<kind> not found`.
async fn fetch_by_id<Row>(
    conn: &mut PgConnection,
    tenant: &Tenant,
    select: &str,
    table: &str,
    id: i64,
    kind: &str,
) -> Result<Row>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!("SELECT {select} FROM {table} t WHERE t.id = $1 AND t.tenant_id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| crate::error::Error::not_found(kind))
}

// Whether a source is the tenant's, for its children's modules (a source's module depends on
// its children's for its cascade, never the other way round).

async fn source_exists(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sources WHERE id = $1 AND tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant.id())
        .fetch_one(conn)
        .await?,
    )
}

/// 404 `source not found` unless the source is the tenant's.
async fn ensure_source(db: &PgPool, tenant: &Tenant, id: i64) -> Result<()> {
    ensure_source_conn(&mut *db.acquire().await?, tenant, id).await
}

async fn ensure_source_in(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant;
    ensure_source_conn(&mut w.tx, tenant, id).await
}

async fn ensure_source_conn(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<()> {
    if source_exists(conn, tenant, id).await? {
        Ok(())
    } else {
        Err(crate::error::Error::not_found("source"))
    }
}

/// The condition of a list of one source's children, or none.
/// Deletes a source's rows of `table` (its cascade) and returns them as `select` reads them.
async fn delete_of_source<R>(
    w: &mut Write<'_>,
    table: &Table,
    select: &str,
    source_id: i64,
) -> Result<Vec<R>>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!(
        "DELETE FROM {} AS t WHERE t.source_id = $1 RETURNING {select}",
        table.name
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(source_id)
        .fetch_all(w.conn())
        .await?)
}

/// The password sealed in the tenant's row `id` of `table`, opened: for the internal API only.
async fn open_password(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    tenant: &Tenant,
    table: &Table,
    id: i64,
) -> Result<Option<String>> {
    let sql = format!(
        "SELECT password_encrypted FROM {} WHERE id = $1 AND tenant_id = $2",
        table.name
    );
    let sealed: Option<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .fetch_one(conn)
        .await?;
    tenant.open(secrets, sealed.as_deref())
}

/// Rows sorted by id: a cascade's events go out in id order, as sources-api-go sends them.
fn by_id<T>(mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Vec<T> {
    rows.sort_by_key(|r| id(r));
    rows
}
