//! `keel_events.dead_letters`: messages given up on, with the reason, for an operator to look
//! at. Consumers write the messages their handlers failed; the relay writes the outbox rows
//! Kafka refuses for good (too large, invalid), under the group [`RELAY_GROUP`].

use sqlx::PgExecutor;

/// The `group_id` of the relay's dead letters; their `offset` is the outbox row's id and their
/// `partition` -1 (the row never reached one).
pub const RELAY_GROUP: &str = "outbox-relay";

/// One message given up on.
pub(crate) struct DeadLetter<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// `[[name, value], ...]`
    pub headers: Vec<[String; 2]>,
    pub payload: Option<&'a [u8]>,
    pub reason: &'a str,
}

pub(crate) async fn write(db: impl PgExecutor<'_>, d: &DeadLetter<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keel_events.dead_letters \
           (group_id, topic, partition, \"offset\", key, headers, payload, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(d.group)
    .bind(d.topic)
    .bind(d.partition)
    .bind(d.offset)
    .bind(d.key)
    .bind(sqlx::types::Json(&d.headers))
    .bind(d.payload)
    .bind(d.reason)
    .execute(db)
    .await?;
    Ok(())
}
