//! One audit record per operation asked for: who (address and a token fingerprint, never
//! the token), what, on which deployment, and how it was answered.

use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub client: &'a str,
    pub token: &'a str,
    pub action: &'a str,
    pub deployment_id: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub outcome: &'a str,
}

pub async fn record(conn: &mut PgConnection, e: &Entry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit (client, token, action, deployment_id, namespace, outcome) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.client)
    .bind(e.token)
    .bind(e.action)
    .bind(e.deployment_id)
    .bind(e.namespace)
    .bind(e.outcome)
    .execute(conn)
    .await?;
    Ok(())
}
