use sqlx::{AssertSqlSafe, PgConnection, PgExecutor, PgPool};

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

/// The outbox table of one schema, built by this library's migrations (`migrations/outbox`).
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    /// The schema the outbox lives in (the owning service's).
    pub schema: &'static str,
    /// `<schema>.outbox`.
    pub table: &'static str,
}

/// The outbox's migrations, applied to each schema that has an outbox.
pub static OUTBOX_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/outbox");

/// A message to append: written as a row, read back as a [`crate::Message`].
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub topic: &'a str,
    /// Names the kind of message in the `event_type` column (for operators and retention).
    pub event_type: &'a str,
    /// Messages with one key stay in one partition, in order.
    pub key: &'a str,
    /// In the order they are sent.
    pub headers: &'a [(String, String)],
    /// JSON text, kept byte for byte.
    pub payload: &'a str,
}

/// SQL expressions for the columns of messages appended by [`Outbox::append_from`].
#[derive(Debug, Clone, Copy)]
pub struct AppendColumns<'a> {
    pub topic: &'a str,
    pub event_type: &'a str,
    pub key: &'a str,
    /// A `jsonb` of `[[name, value], ...]`.
    pub headers: &'a str,
    /// A `json` value.
    pub payload: &'a str,
}

/// Rows one retention statement deletes: short transactions, no long lock on the table.
const PRUNE_CHUNK: i64 = 10_000;

/// Rows whose transaction has finished: nothing can still appear before them.
const FINAL: &str = "txid < pg_snapshot_xmin(pg_current_snapshot())";

// The reads below select `txid` cast to bigint under its own name, so they order by the
// table's column (`o.txid`): ordering by the cast would sort the whole range instead of
// walking the index, a cost growing with the backlog.

/// Sets a reader's dedicated connection to always walk the outbox's indexes. With statistics
/// from before a burst (a new table, or one analysed while nothing was pending) the planner
/// takes a backlog of thousands for a few rows and sorts all of it on every read, so draining
/// it costs the square of its size; the index walk costs the same per row at any size.
pub async fn walk_indexes(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off")
        .execute(conn)
        .await?;
    Ok(())
}

/// `[[name, value], ...]`, as the headers column holds them.
pub fn headers_json(headers: &[(String, String)]) -> sqlx::types::Json<Vec<[String; 2]>> {
    sqlx::types::Json(
        headers
            .iter()
            .map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
    )
}

impl Outbox {
    /// The outbox of `schema` (a `const`, so a service can name its outbox once).
    pub const fn new(schema: &'static str, table: &'static str) -> Self {
        Self { schema, table }
    }

    /// The migrations that build this outbox, with a history of their own in its schema.
    pub const fn owner(&self) -> keel_db::Owner {
        keel_db::Owner {
            schema: self.schema,
            migrator: &OUTBOX_MIGRATOR,
            history: "_keel_outbox_migrations",
        }
    }

    /// Final rows of `topic` after `after`, in (txid, id) order (index (topic, txid, id)).
    pub async fn read(
        &self,
        db: impl PgExecutor<'_>,
        topic: &str,
        after: Position,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let sql = format!(
            "SELECT id, txid::text::bigint AS txid, topic, key, headers, payload::text AS payload \
             FROM {table} o \
             WHERE topic = $3 AND (txid, id) > ($1::text::xid8, $2) AND {FINAL} \
             ORDER BY o.txid, o.id LIMIT $4",
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

    /// How many final rows of `topic` lie after `after`: an embedded-log consumer's lag.
    pub async fn backlog(
        &self,
        db: impl PgExecutor<'_>,
        topic: &str,
        after: Position,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "SELECT count(*) FROM {table} \
             WHERE topic = $3 AND (txid, id) > ($1::text::xid8, $2) AND {FINAL}",
            table = self.table
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(after.txid.to_string())
            .bind(after.id)
            .bind(topic)
            .fetch_one(db)
            .await
    }

    /// The first `limit` rows not yet published whose transaction has finished, in (txid, id)
    /// order, after `after` when given (the relay's last row of a run), else from the start (a
    /// partial index holds only unpublished rows, so that read stays cheap).
    pub async fn unpublished(
        &self,
        db: impl PgExecutor<'_>,
        after: Option<Position>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let sql = format!(
            "SELECT id, txid::text::bigint AS txid, topic, key, headers, payload::text AS payload \
             FROM {table} o WHERE published_at IS NULL {after} AND {FINAL} \
             ORDER BY o.txid, o.id LIMIT $1",
            table = self.table,
            after = if after.is_some() {
                "AND (txid, id) > ($2::text::xid8, $3)"
            } else {
                ""
            },
        );
        let query = sqlx::query_as(AssertSqlSafe(sql)).bind(limit);
        match after {
            Some(p) => {
                query
                    .bind(p.txid.to_string())
                    .bind(p.id)
                    .fetch_all(db)
                    .await
            }
            None => query.fetch_all(db).await,
        }
    }

    pub async fn mark_published(
        &self,
        db: impl PgExecutor<'_>,
        ids: &[i64],
    ) -> Result<(), sqlx::Error> {
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

    /// Deletes rows created more than `retention` ago, in chunks, and returns how many went.
    /// With `keep_unpublished` (the Kafka transport) rows the relay has not published yet stay
    /// whatever their age; without it (the embedded log) retention works like Kafka's: a
    /// consumer group further behind than `retention` misses what was deleted.
    pub async fn prune(
        &self,
        db: &PgPool,
        retention: std::time::Duration,
        keep_unpublished: bool,
    ) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY( \
               SELECT ctid FROM {table} \
               WHERE created_at < now() - make_interval(secs => $1) \
                 AND (published_at IS NOT NULL OR NOT $2) \
               LIMIT $3))",
            table = self.table
        );
        let mut deleted = 0;
        loop {
            let n = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(retention.as_secs_f64())
                .bind(keep_unpublished)
                .bind(PRUNE_CHUNK)
                .execute(db)
                .await?
                .rows_affected();
            deleted += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
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

    /// Appends `messages`, in order, in one statement, inside the caller's transaction so they
    /// commit with the change they describe. For the embedded log this is publishing.
    pub async fn append(
        &self,
        conn: &mut PgConnection,
        messages: &[NewMessage<'_>],
    ) -> Result<(), sqlx::Error> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut insert = sqlx::QueryBuilder::new(format!(
            "INSERT INTO {} (topic, event_type, key, headers, payload) ",
            self.table
        ));
        insert.push_values(messages, |mut row, m| {
            row.push_bind(m.topic)
                .push_bind(m.event_type)
                .push_bind(m.key)
                .push_bind(headers_json(m.headers))
                .push_bind(m.payload)
                .push_unseparated("::json");
        });
        insert.build().execute(conn).await?;
        Ok(())
    }

    /// The SQL of a data-modifying CTE appending one message per row of `from` (an earlier CTE
    /// of the same statement), so a writer can insert its change and the message announcing it
    /// in one round trip. Each column is an SQL expression: a parameter, or one over `from`.
    pub fn append_from(&self, from: &str, columns: AppendColumns<'_>) -> String {
        format!(
            "INSERT INTO {} (topic, event_type, key, headers, payload) \
             SELECT {}, {}, {}, {}, {} FROM {from}",
            self.table,
            columns.topic,
            columns.event_type,
            columns.key,
            columns.headers,
            columns.payload
        )
    }
}
