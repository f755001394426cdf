use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::{
    AssertSqlSafe, ConnectOptions as _, Connection as _, Executor as _, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
};

/// A set of migrations and the PostgreSQL schema it builds: a service's own schema, or a
/// library's tables inside a service's schema (the event outbox).
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    /// The schema the owner's tables live in; also its pool's `search_path`.
    pub schema: &'static str,
    pub migrator: &'static Migrator,
    /// The table, inside `schema`, that records which of these migrations ran: a library
    /// migrating into another owner's schema keeps a history of its own.
    pub history: &'static str,
}

impl Owner {
    /// A service's own schema, its history in `<schema>._sqlx_migrations`.
    pub const fn new(schema: &'static str, migrator: &'static Migrator) -> Self {
        Self {
            schema,
            migrator,
            history: DEFAULT_HISTORY,
        }
    }
}

const DEFAULT_HISTORY: &str = "_sqlx_migrations";

/// Creates the database named in `url` when it does not exist yet, connecting to the server's
/// `postgres` database to do so.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("invalid DATABASE_URL")?;
    let name = options
        .get_database()
        .context("DATABASE_URL names no database")?
        .to_owned();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("cannot connect to PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let created = admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {}",
                quote_ident(&name)
            )))
            .await;
        // Another process may have created it in the meantime (SQLSTATE 42P04).
        match created {
            Ok(_) => tracing::info!(database = %name, "created database"),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("cannot create database"),
        }
    }
    admin.close().await.ok();
    Ok(())
}

fn owner_options(url: &str, schema: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .context("invalid DATABASE_URL")?
        .options([("search_path", schema)])
        // Names the owner in pg_stat_activity.
        .application_name(&format!("keel-{schema}"))
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2)))
}

/// How long one session may hold the database up. A transaction left open holds back the
/// horizon every outbox reader waits behind (and vacuum), so no session keeps one idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// `statement_timeout`
    pub statement: Duration,
    /// `idle_in_transaction_session_timeout`
    pub idle_in_transaction: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(30),
        }
    }
}

/// How long a pooled connection may sit idle before it is pinged when handed out again.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool whose connections see the owner's schema first, with the default session limits.
pub async fn connect(url: &str, schema: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_limited(url, schema, max_connections, SessionLimits::default()).await
}

/// The same, with `limits` on every session.
pub async fn connect_limited(
    url: &str,
    schema: &str,
    max_connections: u32,
    limits: SessionLimits,
) -> anyhow::Result<PgPool> {
    connect_sessions(url, schema, max_connections, limits, &[]).await
}

/// A pool whose commits return before their WAL reaches disk (`synchronous_commit = off`),
/// for writes a crash may lose without harm because they are made again: a work queue's
/// leases and completions. PostgreSQL writes WAL in order, so a lost commit never leaves a
/// later durable commit without it, and the next durable commit flushes it too.
pub async fn connect_unflushed(
    url: &str,
    schema: &str,
    max_connections: u32,
    limits: SessionLimits,
) -> anyhow::Result<PgPool> {
    let settings = [("synchronous_commit", "off")];
    connect_sessions(url, schema, max_connections, limits, &settings).await
}

async fn connect_sessions(
    url: &str,
    schema: &str,
    max_connections: u32,
    limits: SessionLimits,
    settings: &[(&str, &str)],
) -> anyhow::Result<PgPool> {
    let millis = |d: Duration| d.as_millis().to_string();
    let options = owner_options(url, schema)?
        .options([
            ("statement_timeout", millis(limits.statement)),
            (
                "idle_in_transaction_session_timeout",
                millis(limits.idle_in_transaction),
            ),
        ])
        .options(settings.iter().copied());
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        // A floor of open sessions, opened in the background from the start: a burst right
        // after a start paid for opening them (a new server process each, its caches cold), and
        // a cold listener's first new orgs waited up to twice as long as a warm one's. Idle
        // sessions above the floor close after sqlx's idle timeout.
        .min_connections(max_connections / 2)
        .acquire_timeout(Duration::from_secs(5))
        // A connection back from a request moments ago is not pinged again: under load the
        // ping doubled the round trips of a one-statement write. One idle for longer may have
        // been closed by a server restart, so it is checked (pgbouncer's `server_check_delay`).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options);
    // Checked now: a wrong address or password fails the start, not the first request. The
    // floor is not waited for (a server short of sessions slows the start, never fails it).
    pool.acquire()
        .await
        .context("cannot connect to PostgreSQL")?;
    Ok(pool)
}

/// Runs the owner's migrations inside its schema, keeping the owner's migration history in
/// `<schema>.<history>` so owners never see each other's history.
pub async fn migrate(url: &str, owner: Owner) -> anyhow::Result<()> {
    migrate_into(url, owner.schema, owner.migrator, owner.history).await
}

/// Runs `migrator` inside `schema` (created when missing), with its history in
/// `<schema>._sqlx_migrations`: for schemas named at run time, such as one per tenant.
pub async fn migrate_schema(url: &str, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    migrate_into(url, schema, migrator, DEFAULT_HISTORY).await
}

async fn migrate_into(
    url: &str,
    schema: &str,
    migrator: &Migrator,
    history: &str,
) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&owner_options(url, schema)?)
        .await
        .context("cannot connect to PostgreSQL")?;
    conn.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(schema)
    )))
    .await
    .or_else(ignore_concurrent_create)?;
    let mut run = Migrator {
        migrations: migrator.migrations.clone(),
        ..Migrator::DEFAULT
    };
    run.dangerous_set_table_name(format!("{}.{}", quote_ident(schema), quote_ident(history)));
    run.run(&mut conn)
        .await
        .with_context(|| format!("migrating schema {schema}"))?;
    conn.close().await.ok();
    Ok(())
}

/// `CREATE ... IF NOT EXISTS` can still race with itself on the catalog's unique index.
fn ignore_concurrent_create(e: sqlx::Error) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Ok(Default::default())
        }
        _ => Err(e),
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
