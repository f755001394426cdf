//! A deployment's credentials, sealed with the broker's key and bound to the deployment id.
//! They are made once, before anything is created (so an operation resumed after a crash
//! sets the same password), handed to the caller once, and after that only rotated.

use sqlx::PgPool;

/// The sealed credentials of the deployment, made from `make` when it has none yet.
pub async fn ensure(
    db: &PgPool,
    id: &str,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, sqlx::Error> {
    let existing: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT credentials FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    if let Some(Some(sealed)) = existing {
        return Ok(sealed);
    }
    let sealed = make();
    // A concurrent maker (there is none while the lease holds) would keep the first.
    sqlx::query_scalar(
        "UPDATE deployments SET credentials = coalesce(credentials, $2) WHERE id = $1 RETURNING credentials",
    )
    .bind(id)
    .bind(sealed)
    .fetch_one(db)
    .await
}

/// Replaces the credentials (a rotation) and makes them readable once more.
pub async fn replace(
    conn: &mut sqlx::PgConnection,
    id: &str,
    sealed: Vec<u8>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployments SET credentials = $2, credentials_read_at = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(sealed)
    .execute(conn)
    .await?;
    Ok(())
}

/// What reading a connection secret found.
#[derive(Debug)]
pub enum Take {
    /// The sealed credentials and the deployment they belong to, now marked read.
    Fresh {
        deployment_id: String,
        sealed: Vec<u8>,
    },
    /// Read before: rotate to read again.
    AlreadyRead,
    /// No Ready deployment in the namespace has this secret.
    Unknown,
}

/// Hands the credentials of the namespace's Ready deployment with `secret` over, once.
pub async fn take(db: &PgPool, namespace: &str, secret: &str) -> Result<Take, sqlx::Error> {
    let row: Option<(String, Option<Vec<u8>>, bool)> = sqlx::query_as(
        "WITH d AS (SELECT id, credentials, credentials_read_at IS NOT NULL AS was_read FROM deployments \
                    WHERE namespace = $1 AND connection_secret = $2 AND phase = 'Ready' FOR UPDATE), \
              marked AS (UPDATE deployments SET credentials_read_at = now() \
                         WHERE id IN (SELECT id FROM d) AND credentials_read_at IS NULL) \
         SELECT id, credentials, was_read FROM d",
    )
    .bind(namespace)
    .bind(secret)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None | Some((_, None, _)) => Take::Unknown,
        Some((_, Some(_), true)) => Take::AlreadyRead,
        Some((deployment_id, Some(sealed), false)) => Take::Fresh {
            deployment_id,
            sealed,
        },
    })
}

/// A deleted deployment's credentials are dropped with it.
pub async fn forget(conn: &mut sqlx::PgConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deployments SET credentials = NULL WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
