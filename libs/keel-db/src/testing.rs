//! Each test gets its own database, cloned from a template database that holds every owner's
//! migrations. The template is built once per migration set (its name carries a hash of the
//! migrations) under an advisory lock, so parallel test processes build it once between them.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    str::FromStr,
};

use anyhow::Context as _;
use sqlx::{
    AssertSqlSafe, ConnectOptions as _, Connection as _, Executor as _,
    postgres::{PgConnectOptions, PgConnection},
};

use crate::pool::{Owner, migrate, quote_ident};

/// Prefix of every per-test database, so a test run can sweep up what crashed tests left.
pub const TEST_DATABASE_PREFIX: &str = "keel_test_";

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

fn template_name(owners: &[Owner]) -> (String, i64) {
    let mut hasher = DefaultHasher::new();
    for owner in owners {
        owner.schema.hash(&mut hasher);
        owner.history.hash(&mut hasher);
        for m in owner.migrator.iter() {
            m.version.hash(&mut hasher);
            m.checksum.hash(&mut hasher);
        }
    }
    let hash = hasher.finish();
    // The advisory lock key only needs to be stable for this template.
    (format!("keel_tpl_{hash:016x}"), hash as i64)
}

async fn admin_connection(admin: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    admin
        .connect()
        .await
        .context("cannot connect to PostgreSQL (is it running? see README)")
}

impl TestDatabase {
    /// Creates a fresh database with every owner's schema migrated. `server_url` is any URL of
    /// the server; its database name is ignored.
    pub async fn create(server_url: &str, owners: &[Owner]) -> anyhow::Result<Self> {
        let base = PgConnectOptions::from_str(server_url).context("invalid database URL")?;
        let admin = base.clone().database("postgres");
        let (template, lock_key) = template_name(owners);
        let mut conn = admin_connection(&admin).await?;

        conn.execute(sqlx::query("SELECT pg_advisory_lock($1)").bind(lock_key))
            .await?;
        let built: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await?;
        if !built {
            let scratch = format!("keel_tpl_build_{}", uuid::Uuid::new_v4().simple());
            conn.execute(AssertSqlSafe(format!(
                "CREATE DATABASE {}",
                quote_ident(&scratch)
            )))
            .await?;
            let scratch_url = base.clone().database(&scratch).to_url_lossy().to_string();
            for owner in owners {
                migrate(&scratch_url, *owner).await?;
            }
            // Renaming publishes the template only once it is complete.
            conn.execute(AssertSqlSafe(format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&scratch),
                quote_ident(&template)
            )))
            .await?;
        }
        conn.execute(sqlx::query("SELECT pg_advisory_unlock($1)").bind(lock_key))
            .await?;

        let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        conn.execute(AssertSqlSafe(format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(&template)
        )))
        .await
        .context("cloning the template database")?;
        conn.close().await.ok();
        let url = base.database(&name).to_url_lossy().to_string();
        Ok(Self { url, name, admin })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, so the cleanup gets a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = admin.connect().await.ok()?;
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                );
                conn.execute(AssertSqlSafe(sql)).await.ok()
            })
        });
        let _ = dropper.join();
    }
}
