use sqlx::{AssertSqlSafe, PgConnection, PgPool};

/// Where a reader stands in an outbox: the last row it has passed, in (txid, id) order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub txid: i64,
    pub id: i64,
}

/// One outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub txid: i64,
    pub topic: String,
    pub key: String,
    pub headers: sqlx::types::Json<Vec<[String; 2]>>,
    pub payload: String,
}

impl OutboxRow {
    pub fn position(&self) -> Position {
        Position {
            txid: self.txid,
            id: self.id,
        }
    }
}

/// An outbox table (e.g. `sources.outbox`) with the columns of the sources migrations.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    pub table: &'static str,
}

/// Rows whose transaction has finished: nothing can still appear before them.
const FINAL: &str = "txid < pg_snapshot_xmin(pg_current_snapshot())";

impl Outbox {
    /// Final rows of `topic` after `after`, in (txid, id) order (index (topic, txid, id)).
    pub async fn read(
        &self,
        db: &PgPool,
        topic: &str,
        after: Position,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let sql = format!(
            "SELECT id, txid::text::bigint AS txid, topic, key, headers, payload::text AS payload \
             FROM {table} \
             WHERE topic = $3 AND (txid, id) > ($1::text::xid8, $2) AND {FINAL} \
             ORDER BY txid, id LIMIT $4",
            table = self.table
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(after.txid.to_string())
            .bind(after.id)
            .bind(topic)
            .bind(limit)
            .fetch_all(db)
            .await
    }

    /// The first `limit` rows not yet published whose transaction has finished, in (txid, id)
    /// order. Read from the start every time (a partial index holds only unpublished rows), so
    /// no row is ever passed over, whatever order transactions finish in.
    pub async fn unpublished(
        &self,
        db: &PgPool,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let sql = format!(
            "SELECT id, txid::text::bigint AS txid, topic, key, headers, payload::text AS payload \
             FROM {table} WHERE published_at IS NULL AND {FINAL} ORDER BY txid, id LIMIT $1",
            table = self.table
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(db)
            .await
    }

    pub async fn mark_published(&self, db: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
        let sql = format!(
            "UPDATE {} SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
            self.table
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .execute(db)
            .await?;
        Ok(())
    }

    /// Rows not yet published, and the age in seconds of the oldest of them.
    pub async fn relay_lag(&self, db: &PgPool) -> Result<(i64, f64), sqlx::Error> {
        let sql = format!(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
             FROM {} WHERE published_at IS NULL",
            self.table
        );
        sqlx::query_as(AssertSqlSafe(sql)).fetch_one(db).await
    }

    /// Appends a message; for the embedded log this is publishing. Runs in the caller's
    /// transaction so the message commits with the change it describes.
    pub async fn append(
        &self,
        conn: &mut PgConnection,
        topic: &str,
        key: &str,
        headers: &[(String, String)],
        payload: &str,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO {} (topic, event_type, key, headers, payload) \
             VALUES ($1, $2, $3, $4, $5::json) RETURNING id",
            self.table
        );
        let event_type = headers
            .iter()
            .find(|(k, _)| k == "event_type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let headers: Vec<[String; 2]> = headers
            .iter()
            .map(|(k, v)| [k.clone(), v.clone()])
            .collect();
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(topic)
            .bind(event_type)
            .bind(key)
            .bind(sqlx::types::Json(headers))
            .bind(payload)
            .fetch_one(conn)
            .await
    }
}
