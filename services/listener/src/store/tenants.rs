//! Customers and tenant schemas. A new org's customer row, schema `org<org_id>` and tenant
//! row are made and committed on their own, before any provider transaction of the org, so a
//! provider transaction never holds the locks a schema clone takes (the clone adds a foreign
//! key to `cost.api_provider`, which locks that table until commit).
//!
//! Schemas come from a small pool of spares cloned ahead of time (`cost.spare_tenants`): the
//! first source of an org renames one instead of waiting for a clone, and the pool is refilled
//! in the background ([`super::spares`]).

use std::{collections::HashMap, sync::LazyLock, time::Instant};

use regex::Regex;
use sqlx::{PgConnection, PgPool};

use crate::domain::{Problem, too_long_message};

/// The schema every tenant is cloned from (Koku's `TEMPLATE_SCHEMA` default).
pub const TEMPLATE_SCHEMA: &str = "template0";

/// Koku's `create_schema_name`.
pub fn schema_name(org_id: &str) -> String {
    format!("org{org_id}")
}

static SCHEMA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^org[A-Za-z0-9_]{1,60}$").expect("valid regex"));

/// Longest org id and account number `api_customer` holds (Koku's columns).
const MAX_ORG_ID: usize = 36;
const MAX_ACCOUNT_ID: usize = 150;

const ACCOUNT_TAKEN_MESSAGE: &str =
    "This account number already belongs to another organization in cost management.";

/// Why a tenant could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The source cannot have a tenant as it is (reported to the user).
    #[error("{}", .0.message)]
    Problem(Problem),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What the tables cannot hold is the source's problem, reported to the user, not a
/// database error retried until the operation parks.
fn check(org_id: &str, account_id: Option<&str>) -> Result<String, Problem> {
    if org_id.chars().count() > MAX_ORG_ID {
        return Err(Problem::new("source.org_id", too_long_message(MAX_ORG_ID)));
    }
    if account_id.is_some_and(|a| a.chars().count() > MAX_ACCOUNT_ID) {
        return Err(Problem::new(
            "source.account_id",
            too_long_message(MAX_ACCOUNT_ID),
        ));
    }
    let schema = schema_name(org_id);
    if !SCHEMA.is_match(&schema) {
        return Err(Problem::new(
            "source.provider",
            format!("the org id does not make a valid schema name: {schema}"),
        ));
    }
    Ok(schema)
}

/// The org's customer id, once its customer row, tenant schema and tenant row exist and are
/// committed; made in a statement (from a spare) or a transaction (a clone) of their own when
/// missing.
pub async fn ensure(
    db: &PgPool,
    org_id: &str,
    account_id: Option<&str>,
) -> Result<i64, TenantError> {
    let schema = check(org_id, account_id).map_err(TenantError::Problem)?;
    let started = Instant::now();
    if let Some((customer, spare)) = make_tenant(db, org_id, account_id, &schema).await? {
        if let Some(spare) = spare {
            taken_from_spares(&schema, &spare, started, 1);
        }
        return Ok(customer);
    }
    // No spare left: the template is cloned.
    let mut tx = db.begin().await?;
    // Two first sources of one org: the second waits here, then finds the tenant made.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keel.tenant'), hashtext($1))")
        .bind(&schema)
        .execute(&mut *tx)
        .await?;
    // The schema first: a clone waits for its turn before this transaction writes anything,
    // so the wait does not hold back the horizon every outbox reader waits behind.
    if !schema_exists(&mut tx, &schema).await? {
        create_schema(&mut tx, &schema).await?;
    }
    // With the schema there, the function writes the customer and, last, the tenant row, in
    // this transaction: the tenant is whole when it commits.
    let (customer, _) = make_tenant(&mut *tx, org_id, account_id, &schema)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(customer)
}

/// A new org's tenant, asked for together with others ([`make_many`]).
#[derive(Debug, Clone)]
pub struct Asked {
    pub org_id: String,
    pub account_id: Option<String>,
    /// [`check`]ed.
    pub schema: String,
}

impl Asked {
    /// The org's tenant, or the source's problem when the tables cannot hold it.
    pub fn new(org_id: &str, account_id: Option<&str>) -> Result<Self, Problem> {
        Ok(Self {
            schema: check(org_id, account_id)?,
            org_id: org_id.to_owned(),
            account_id: account_id.map(str::to_owned),
        })
    }
}

/// What [`make_many`] made of one org.
#[derive(Debug, Clone, PartialEq)]
pub enum Made {
    /// The org's customer id.
    Customer(i64),
    Problem(Problem),
}

/// The tenants of many orgs from spares (`cost.make_tenants`), in one statement and one
/// commit. An org missing from the answer is to be made on its own ([`ensure`]): another
/// session holds its lock, or no spare was left.
pub async fn make_many(db: &PgPool, asked: &[Asked]) -> Result<HashMap<String, Made>, sqlx::Error> {
    // Sorted: replicas lock the orgs in one order.
    let mut asked: Vec<&Asked> = asked.iter().collect();
    asked.sort_by(|a, b| a.schema.cmp(&b.schema));
    let started = Instant::now();
    let made: Vec<(String, Option<i64>, Option<String>, bool)> = sqlx::query_as(
        "SELECT org_id, customer_id, spare, account_taken FROM make_tenants($1, $2, $3)",
    )
    .bind(asked.iter().map(|a| a.org_id.as_str()).collect::<Vec<_>>())
    .bind(
        asked
            .iter()
            .map(|a| a.account_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(asked.iter().map(|a| a.schema.as_str()).collect::<Vec<_>>())
    .fetch_all(db)
    .await?;
    metrics::histogram!("tenant_batch_size").record(asked.len() as f64);
    let mut answer = HashMap::with_capacity(made.len());
    for (org_id, customer, spare, account_taken) in made {
        let made = match (customer, account_taken) {
            (Some(customer), false) => Made::Customer(customer),
            _ => Made::Problem(account_taken_problem()),
        };
        if let Some(spare) = spare {
            taken_from_spares(&schema_name(&org_id), &spare, started, asked.len());
        }
        answer.insert(org_id, made);
    }
    Ok(answer)
}

/// Counts and logs a tenant made from a spare, by a statement that made `orgs` of them.
fn taken_from_spares(schema: &str, spare: &str, started: Instant, orgs: usize) {
    metrics::counter!("tenant_schemas_created_total", "from" => "spare").increment(1);
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        schema,
        spare,
        took_ms,
        orgs,
        "tenant schema taken from the spares"
    );
}

/// `cost.make_tenant`: the customer id, and the spare taken if one was; `None` when the
/// schema is missing and no spare is left (nothing written).
async fn make_tenant(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    account_id: Option<&str>,
    schema: &str,
) -> Result<Option<(i64, Option<String>)>, TenantError> {
    let made: Option<(Option<i64>, Option<String>)> =
        sqlx::query_as("SELECT customer_id, spare FROM make_tenant($1, $2, $3)")
            .bind(org_id)
            .bind(account_id)
            .bind(schema)
            .fetch_optional(db)
            .await
            .map_err(account_taken)?;
    Ok(made.and_then(|(customer, spare)| Some((customer?, spare))))
}

/// An account number another org's customer holds is the source's problem.
fn account_taken(e: sqlx::Error) -> TenantError {
    match e {
        sqlx::Error::Database(e) if e.constraint() == Some("api_customer_account_id_key") => {
            TenantError::Problem(account_taken_problem())
        }
        e => e.into(),
    }
}

fn account_taken_problem() -> Problem {
    Problem::new("source.account_id", ACCOUNT_TAKEN_MESSAGE)
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *conn)
        .await
}

/// Renames a spare to `schema`, or clones the template when none is left (unless one is
/// listed while this waits for the clone lock: a refill was making it).
async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    let mut spare = take_spare(conn).await?;
    if spare.is_none() {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keel.tenant.clone'))")
            .execute(&mut *conn)
            .await?;
        spare = take_spare(conn).await?;
    }
    match spare {
        Some(spare) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER SCHEMA {} RENAME TO {}",
                keel_db::quote_ident(&spare),
                keel_db::quote_ident(schema)
            )))
            .execute(&mut *conn)
            .await?;
            taken_from_spares(schema, &spare, started, 1);
        }
        None => {
            clone(conn, schema).await?;
            metrics::counter!("tenant_schemas_created_total", "from" => "clone").increment(1);
        }
    }
    Ok(())
}

/// The oldest spare, unlisted (renamed by the caller in the same transaction).
async fn take_spare(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM spare_tenants WHERE schema_name = ( \
           SELECT schema_name FROM spare_tenants ORDER BY created_at \
           LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING schema_name",
    )
    .fetch_optional(&mut *conn)
    .await
}

/// Clones the template into `schema`, under the clone lock the caller holds: one clone at a
/// time in the database, as concurrent clones contend on the catalogue and each gets many
/// times slower.
async fn clone(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    sqlx::query("SELECT cost.clone_schema($1, $2)")
        .bind(TEMPLATE_SCHEMA)
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    let took = started.elapsed();
    metrics::histogram!("tenant_schema_clone_seconds").record(took.as_secs_f64());
    tracing::info!(
        schema,
        took_ms = took.as_secs_f64() * 1e3,
        "cloned tenant schema"
    );
    Ok(())
}

/// Every tenant schema, oldest first, and every spare: each is migrated at start.
pub async fn schemas(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT schema_name FROM (SELECT schema_name, 0 AS k, id FROM api_tenant \
           UNION ALL SELECT schema_name, 1, 0 FROM spare_tenants) s ORDER BY k, id",
    )
    .fetch_all(db)
    .await
}

/// Whether `schema` exists (a deleted source's tenant may never have been made).
pub async fn exists(conn: &mut PgConnection, schema: &str) -> Result<bool, sqlx::Error> {
    schema_exists(conn, schema).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_tables_cannot_hold_is_the_sources_problem() {
        assert_eq!(check("1234567", Some("acct")).unwrap(), "org1234567");
        let long_org = "9".repeat(37);
        assert_eq!(check(&long_org, None).unwrap_err().key, "source.org_id");
        let long_account = "a".repeat(151);
        assert_eq!(
            check("1", Some(&long_account)).unwrap_err().key,
            "source.account_id"
        );
        assert_eq!(check("a-b", None).unwrap_err().key, "source.provider");
        assert_eq!(check("o_1", None).unwrap(), "orgo_1");
    }
}
