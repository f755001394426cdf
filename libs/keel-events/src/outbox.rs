use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use sqlx::{AssertSqlSafe, PgConnection, PgExecutor, PgPool};
use tokio::sync::Notify;

/// This process's readers of each outbox table, woken by [`Outbox::committed`].
static COMMITTED: LazyLock<Mutex<HashMap<&'static str, Arc<Notify>>>> =
    LazyLock::new(Mutex::default);

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

/// The largest message the outbox takes: librdkafka's default `message.max.bytes` (its
/// producer refuses larger ones, and brokers default to about the same). A larger one could
/// never be published: it is refused when appended, while the writer can still answer.
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Why messages were not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("a {event_type} message of {bytes} bytes is larger than the {max} bytes Kafka takes")]
    TooLarge {
        event_type: String,
        bytes: usize,
        max: usize,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl NewMessage<'_> {
    /// Bytes of the message as the producer counts them: key, headers and payload.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.key.len() + headers + self.payload.len()
    }
}

/// Most payload bytes one read of the outbox returns (a relay batch, an embedded-log batch):
/// 10,000 rows of 2 MB would otherwise be read into memory at once.
pub const READ_BYTES: i64 = 16 * 1024 * 1024;

/// A parameter of the reads below.
enum Param {
    Text(String),
    Int(i64),
}

fn bind_all<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    params: &'q [Param],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text.as_str()),
            Param::Int(n) => query.bind(*n),
        };
    }
    query
}

/// Binds what [`Outbox::after`] reads: the position and the topic.
fn bind_after<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    topic: &'q str,
    after: Position,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(after.txid.to_string())
        .bind(after.id)
        .bind(topic)
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
/// it costs the square of its size; the index walk costs the same per row at any size. JIT is
/// off as well: the disabled plans' inflated costs would have every read compiled (150 ms
/// each, for a read of 0.5 ms).
pub async fn walk_indexes(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off; \
         SET jit = off",
    )
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

    /// Wakes this process's readers of the outbox (embedded-log consumers, the relay): a
    /// writer calls it after committing rows it appended, so that readers in the same process
    /// (`keel up`) read them at once instead of at their next poll. Readers elsewhere find them
    /// when they next poll.
    pub fn committed(&self) {
        self.wake().notify_waiters();
    }

    /// What [`Self::committed`] notifies.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        let mut readers = COMMITTED.lock().unwrap_or_else(|e| e.into_inner());
        readers.entry(self.table).or_default().clone()
    }

    /// The migrations that build this outbox, with a history of their own in its schema.
    pub const fn owner(&self) -> keel_db::Owner {
        keel_db::Owner {
            schema: self.schema,
            migrator: &OUTBOX_MIGRATOR,
            history: "_keel_outbox_migrations",
        }
    }

    /// Final rows of `topic` after `after`, in (txid, id) order (index (topic, txid, id)): at
    /// most `limit` rows and [`READ_BYTES`] of payload.
    pub async fn read(
        &self,
        conn: &mut PgConnection,
        topic: &str,
        after: Position,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let params = [
            Param::Text(after.txid.to_string()),
            Param::Int(after.id),
            Param::Text(topic.to_owned()),
        ];
        let cond = format!("topic = $3 AND (txid, id) > ($1::text::xid8, $2) AND {FINAL}");
        self.read_within(conn, &cond, &params, limit).await
    }

    /// The first rows of `cond` in (txid, id) order, at most `limit` of them and
    /// [`READ_BYTES`] of payload (always one, however large), in one statement: the running
    /// size comes from the values' headers, and rows past the budget are never sent (nor
    /// decompressed). The outer order is the inner one, by the same columns, so it costs no
    /// sort (with sorts disabled on readers, one would cost enough to be compiled by JIT).
    async fn read_within(
        &self,
        conn: &mut PgConnection,
        cond: &str,
        params: &[Param],
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let limit_param = params.len() + 1;
        let rows = format!(
            "SELECT id, txid, topic, key, headers, payload FROM ( \
               SELECT o.id, o.txid AS position, o.txid::text::bigint AS txid, o.topic, o.key, \
                 o.headers, o.payload::text AS payload, \
                 row_number() OVER w AS n, sum(octet_length(o.payload::text)) OVER w AS upto \
               FROM {table} o WHERE {cond} \
               WINDOW w AS (ORDER BY o.txid, o.id ROWS UNBOUNDED PRECEDING) \
               ORDER BY o.txid, o.id LIMIT ${limit_param}) r \
             WHERE n = 1 OR upto <= {READ_BYTES} ORDER BY position, id",
            table = self.table
        );
        bind_all(sqlx::query_as(AssertSqlSafe(rows)), params)
            .bind(limit)
            .fetch_all(conn)
            .await
    }

    /// How many final rows of `topic` lie after `after`: an embedded-log consumer's lag.
    pub async fn backlog(
        &self,
        db: impl PgExecutor<'_>,
        topic: &str,
        after: Position,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT count(*) {}", self.after(&format!("AND {FINAL}")));
        bind_after(sqlx::query_scalar(AssertSqlSafe(sql)), topic, after)
            .fetch_one(db)
            .await
    }

    /// Whether committed rows of `topic` lie after `after` that are not final yet: a
    /// transaction older than theirs is still open (in any database of the cluster). They
    /// become readable when it ends, which no commit of this process may announce.
    pub async fn held_back(
        &self,
        db: impl PgExecutor<'_>,
        topic: &str,
        after: Position,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!("SELECT EXISTS (SELECT 1 {})", self.after(""));
        bind_after(sqlx::query_scalar(AssertSqlSafe(sql)), topic, after)
            .fetch_one(db)
            .await
    }

    /// `FROM` the rows of topic `$3` after the position (`$1`, `$2`), and `cond`.
    fn after(&self, cond: &str) -> String {
        format!(
            "FROM {} WHERE topic = $3 AND (txid, id) > ($1::text::xid8, $2) {cond}",
            self.table
        )
    }

    /// The first rows not yet published whose transaction has finished, in (txid, id) order,
    /// after `after` when given (the relay's last row of a run), else from the start (a partial
    /// index holds only unpublished rows, so that read stays cheap): at most `limit` rows and
    /// [`READ_BYTES`] of payload.
    pub async fn unpublished(
        &self,
        conn: &mut PgConnection,
        after: Option<Position>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        match after {
            Some(p) => {
                let params = [Param::Text(p.txid.to_string()), Param::Int(p.id)];
                let cond = format!(
                    "published_at IS NULL AND (txid, id) > ($1::text::xid8, $2) AND {FINAL}"
                );
                self.read_within(conn, &cond, &params, limit).await
            }
            None => {
                let cond = format!("published_at IS NULL AND {FINAL}");
                self.read_within(conn, &cond, &[], limit).await
            }
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
    ) -> Result<(), AppendError> {
        if messages.is_empty() {
            return Ok(());
        }
        if let Some(m) = messages.iter().find(|m| m.size() > MAX_MESSAGE_BYTES) {
            return Err(AppendError::TooLarge {
                event_type: m.event_type.to_owned(),
                bytes: m.size(),
                max: MAX_MESSAGE_BYTES,
            });
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
