//! Spare tenant schemas (`cost.spare_tenants`), cloned from the template ahead of time for
//! the first sources of new orgs ([`super::tenants`] renames one).
//!
//! A spare is cloned one statement per transaction, not in one transaction like a tenant
//! cloned on demand: a transaction that lasts the whole clone holds back every outbox reader
//! (they read only rows older than every open transaction) and, from its first foreign key
//! on, every provider write (the key locks `cost.api_provider` until commit). Under load each
//! background clone stalled every source in flight for as long as it ran. A spare is listed
//! in `spare_tenants` only once whole; one left half made by a crash is dropped by the next
//! refill.

use std::time::{Duration, Instant};

use sqlx::{Connection as _, PgConnection, PgPool};

use super::tenants::TEMPLATE_SCHEMA;

/// How long one of a spare's statements waits for a lock before it gives way and tries again
/// a moment later: while a foreign key waits for `cost.api_provider`, provider writes queue
/// behind it.
const LOCK_WAIT: &str = "20ms";
const RETRY_AFTER: Duration = Duration::from_millis(20);
/// Tries of one statement before the spare is given up (and dropped) until the next refill.
const TRIES: usize = 100;

/// SQLSTATE of a lock wait that reached `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What spares are named, and how a half-made one is recognised.
const PREFIX: &str = "keel_spare_";

/// Clones spares until `target` are waiting, or only one while `busy` (operations are
/// waiting: clones share the two cores with them); answers how many were made. Nothing is
/// made while another replica clones.
pub async fn refill(db: &PgPool, target: usize, busy: bool) -> Result<usize, sqlx::Error> {
    // Looked at first on the pool: a full pool, the usual case, costs no session.
    if waiting(db).await? >= target as i64 {
        return Ok(0);
    }
    // A session of its own: it holds the clone lock across the clone's transactions and sets
    // its lock timeout, and is closed after (which releases the lock whatever happened).
    let mut conn = db.acquire().await?.detach();
    let made = refill_on(&mut conn, target, busy).await;
    let _ = conn.close().await;
    made
}

async fn refill_on(
    conn: &mut PgConnection,
    target: usize,
    busy: bool,
) -> Result<usize, sqlx::Error> {
    // The lock tenants cloned on demand take for their transaction.
    let free: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('keel.tenant.clone'))")
            .fetch_one(&mut *conn)
            .await?;
    if !free {
        return Ok(0);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET lock_timeout = '{LOCK_WAIT}'"
    )))
    .execute(&mut *conn)
    .await?;
    drop_half_made(conn).await?;
    let mut made = 0;
    loop {
        // Counted again under the clone lock, so replicas refilling together do not overshoot.
        if waiting(&mut *conn).await? >= target as i64 {
            return Ok(made);
        }
        let name = format!("{PREFIX}{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        if let Err(e) = clone(conn, &name).await {
            let _ = drop_schema(conn, &name).await;
            return match e {
                sqlx::Error::Database(e) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                    Ok(made)
                }
                e => Err(e),
            };
        }
        let took = started.elapsed();
        metrics::histogram!("tenant_schema_clone_seconds").record(took.as_secs_f64());
        tracing::info!(
            schema = name,
            took_ms = took.as_secs_f64() * 1e3,
            "cloned a spare tenant schema"
        );
        made += 1;
        if busy {
            return Ok(made);
        }
    }
}

async fn waiting(db: impl sqlx::PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM spare_tenants")
        .fetch_one(db)
        .await
}

/// The template's tables, foreign keys and migration history, each statement committed on
/// its own; the spare is listed last.
async fn clone(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let (template, target) = (
        keel_db::quote_ident(TEMPLATE_SCHEMA),
        keel_db::quote_ident(name),
    );
    let mut statements = vec![format!("CREATE SCHEMA {target}")];
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
    )
    .bind(TEMPLATE_SCHEMA)
    .fetch_all(&mut *conn)
    .await?;
    for table in &tables {
        let table = keel_db::quote_ident(table);
        statements.push(format!(
            "CREATE TABLE {target}.{table} (LIKE {template}.{table} INCLUDING ALL)"
        ));
    }
    // Keys within the schema first: those to `cost.api_provider` lock it, so they come last.
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, con.conname::text, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class r ON r.oid = con.confrelid \
         WHERE n.nspname = $1 AND con.contype = 'f' \
         ORDER BY r.relnamespace <> n.oid, c.relname, con.conname",
    )
    .bind(TEMPLATE_SCHEMA)
    .fetch_all(&mut *conn)
    .await?;
    for (table, key, definition) in &keys {
        statements.push(format!(
            "ALTER TABLE {target}.{} ADD CONSTRAINT {} {}",
            keel_db::quote_ident(table),
            keel_db::quote_ident(key),
            // As `pg_get_constraintdef` names the template (its name needs no quotes).
            definition.replace(&format!("{TEMPLATE_SCHEMA}."), &format!("{target}."))
        ));
    }
    statements.push(format!(
        "INSERT INTO {target}._sqlx_migrations SELECT * FROM {template}._sqlx_migrations"
    ));
    for statement in &statements {
        run(conn, statement).await?;
    }
    sqlx::query("INSERT INTO spare_tenants (schema_name) VALUES ($1)")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs one statement in a transaction of its own, again while it cannot have its locks.
async fn run(conn: &mut PgConnection, statement: &str) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
        {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) && tries + 1 < TRIES =>
            {
                tries += 1;
                tokio::time::sleep(RETRY_AFTER).await;
            }
            done => return done.map(drop),
        }
    }
}

/// Spares a crash left half made: schemas named like spares that are not listed. Called under
/// the clone lock, so no replica is making one.
async fn drop_half_made(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let half_made: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE starts_with(nspname, $1) \
           AND nspname NOT IN (SELECT schema_name FROM spare_tenants)",
    )
    .bind(PREFIX)
    .fetch_all(&mut *conn)
    .await?;
    for name in half_made {
        drop_schema(conn, &name).await?;
        tracing::info!(schema = name, "dropped a half-made spare tenant schema");
    }
    Ok(())
}

async fn drop_schema(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let statement = format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        keel_db::quote_ident(name)
    );
    run(conn, &statement).await
}
