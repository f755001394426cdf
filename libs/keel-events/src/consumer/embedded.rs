//! Embedded-log members: the outbox read as a log, one task per topic (one partition each),
//! holding an advisory lock per (group, topic) and storing the group's position in
//! `keel_events.consumer_positions` after each batch (while the next one is read).

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{BATCH, ConsumerConfig, Handler, settle_batch};
use crate::{
    message::Message,
    outbox::{Outbox, OutboxRow, Position},
};

async fn load_position(
    db: impl sqlx::PgExecutor<'_>,
    group: &str,
    topic: &str,
) -> Result<Position, sqlx::Error> {
    let stored: Option<(i64, i64)> = sqlx::query_as(
        "SELECT txid, outbox_id FROM keel_events.consumer_positions WHERE group_id = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_optional(db)
    .await?;
    // A new group reads from the beginning, like `auto.offset.reset=earliest`.
    Ok(stored.map_or(Position::default(), |(txid, id)| Position { txid, id }))
}

async fn store_position(
    db: &PgPool,
    group: &str,
    topic: &str,
    p: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keel_events.consumer_positions (group_id, topic, txid, outbox_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic) DO UPDATE \
         SET txid = excluded.txid, outbox_id = excluded.outbox_id, updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(p.txid)
    .bind(p.id)
    .execute(db)
    .await?;
    Ok(())
}

/// Stores each position the member hands over, the latest when several wait: the store of one
/// batch's position overlaps the reading and handling of the next, instead of being one more
/// round trip (and commit) every event waits behind. Returns once the member has dropped its
/// sender and the last position is stored (or shutdown interrupts a retry).
async fn store_positions(
    db: PgPool,
    group: String,
    topic: String,
    mut latest: watch::Receiver<Position>,
    shutdown: CancellationToken,
) {
    let mut stored = *latest.borrow_and_update();
    loop {
        let ended = latest.changed().await.is_err();
        let position = *latest.borrow_and_update();
        while position != stored {
            match store_position(&db, &group, &topic, position).await {
                Ok(()) => stored = position,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot store the consumer position; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        if ended {
            return;
        }
    }
}

/// After a commit of this process wakes a reader, how long it waits for the commits right
/// behind it before reading.
const GATHER: Duration = Duration::from_millis(10);

/// How soon a reader looks again for rows an open transaction holds back.
const HELD_BACK: Duration = Duration::from_millis(20);

/// Takes `pg_advisory_lock(group, topic)` on a dedicated connection, held for as long as the
/// returned connection lives; `None` on shutdown.
async fn hold_member_lock(
    db: &PgPool,
    group: &str,
    topic: &str,
    shutdown: &CancellationToken,
) -> Option<sqlx::PgConnection> {
    loop {
        let attempt = async {
            let mut conn = db.acquire().await?;
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))")
                    .bind(group)
                    .bind(topic)
                    .fetch_one(&mut *conn)
                    .await?;
            // Detached: the connection closes when dropped, which releases the lock, instead
            // of going back to the pool still holding it.
            Ok::<_, sqlx::Error>(got.then(|| conn.detach()))
        };
        match attempt.await {
            Ok(Some(conn)) => return Some(conn),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the group lock"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One member of a group over one topic of the log.
struct Member<'a, H> {
    db: &'a PgPool,
    outbox: Outbox,
    topic: &'a str,
    config: &'a ConsumerConfig,
    handler: &'a H,
    shutdown: &'a CancellationToken,
}

/// One member's run over its topic, reading on its lock connection (set to walk the
/// outbox's indexes); returns on shutdown, or with the error that broke that connection.
async fn read_topic<H: Handler>(
    conn: &mut sqlx::PgConnection,
    m: &Member<'_, H>,
) -> Result<(), sqlx::Error> {
    crate::outbox::walk_indexes(conn).await?;
    let position = load_position(&mut *conn, &m.config.group, m.topic).await?;
    let (handled, latest) = watch::channel(position);
    let writer = tokio::spawn(store_positions(
        m.db.clone(),
        m.config.group.clone(),
        m.topic.to_owned(),
        latest,
        m.shutdown.clone(),
    ));
    let read = read_from(conn, m, position, &handled).await;
    // The last position handed over is stored before the member lets go of its lock.
    drop(handled);
    let _ = writer.await;
    read
}

/// [`read_topic`]'s loop, from `position`, handing each batch's last position to `handled`.
async fn read_from<H: Handler>(
    conn: &mut sqlx::PgConnection,
    m: &Member<'_, H>,
    mut position: Position,
    handled: &watch::Sender<Position>,
) -> Result<(), sqlx::Error> {
    let Member {
        db,
        outbox,
        topic,
        config,
        handler,
        shutdown,
    } = *m;
    let lag = metrics::gauge!(
        "events_consumer_lag",
        "group" => config.group.clone(),
        "topic" => topic.to_owned(),
        "partition" => "0"
    );
    let mut lag_measured: Option<std::time::Instant> = None;
    let committed = outbox.wake();
    let mut idle_wait = config.poll_interval;
    while !shutdown.is_cancelled() {
        // Registered before the look, so a commit during it is not missed.
        let woken = committed.notified();
        let rows = outbox
            .read(&mut *conn, topic, position, BATCH as i64)
            .await?;
        // A batch shorter than asked for is the whole backlog; a full one is counted, at most
        // once per interval (the count walks the backlog's index entries).
        if rows.len() < BATCH {
            lag.set(rows.len() as f64);
        } else if lag_measured.is_none_or(|at| at.elapsed() >= config.lag_interval) {
            lag.set(outbox.backlog(&mut *conn, topic, position).await? as f64);
            lag_measured = Some(std::time::Instant::now());
        }
        if rows.is_empty() {
            // Rows held back by an older open transaction are looked for again soon: their
            // becoming final is announced by nobody. (Checked only before a longer wait.)
            let wait =
                if idle_wait > HELD_BACK && outbox.held_back(&mut *conn, topic, position).await? {
                    HELD_BACK
                } else {
                    idle_wait
                };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = woken => {
                    // Gathers what the next few commits add into one read.
                    idle_wait = config.poll_interval;
                    tokio::time::sleep(GATHER.min(config.poll_interval)).await;
                }
                _ = tokio::time::sleep(wait) => {
                    idle_wait = (idle_wait * 2).min(config.max_poll_interval.max(config.poll_interval));
                }
            }
            continue;
        }
        idle_wait = config.poll_interval;
        let read = rows.len();
        let positions: Vec<Position> = rows.iter().map(OutboxRow::position).collect();
        let messages: Vec<Message> = rows
            .into_iter()
            .map(|row| Message {
                topic: row.topic,
                partition: 0,
                offset: row.id,
                key: Some(row.key.into_bytes()),
                headers: row
                    .headers
                    .0
                    .into_iter()
                    .map(|[k, v]| (k, v.into_bytes()))
                    .collect(),
                payload: row.payload.into_bytes(),
            })
            .collect();
        let settled = settle_batch(handler, db, config, &messages, shutdown).await;
        let Some(&last) = settled.checked_sub(1).and_then(|i| positions.get(i)) else {
            break;
        };
        position = last;
        // Stored while the next batch is read: a restart repeats at most the batches in hand
        // and the one being stored.
        handled.send_replace(position);
        if settled < read {
            break;
        }
    }
    Ok(())
}

pub(super) async fn run<H: Handler>(
    db: PgPool,
    outbox: Outbox,
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Each topic is one partition of the log, read by its own task.
    let mut tasks = tokio::task::JoinSet::new();
    let config = Arc::new(config);
    for topic in config.topics.clone() {
        let (db, handler, config, shutdown) = (
            db.clone(),
            handler.clone(),
            config.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            // A lost lock connection (the database restarted, say) ends a run; the member then
            // takes the lock again and goes on from the stored position.
            while !shutdown.is_cancelled() {
                let Some(mut conn) = hold_member_lock(&db, &config.group, &topic, &shutdown).await
                else {
                    return;
                };
                let member = Member {
                    db: &db,
                    outbox,
                    topic: &topic,
                    config: &config,
                    handler: &*handler,
                    shutdown: &shutdown,
                };
                if let Err(e) = read_topic(&mut conn, &member).await {
                    tracing::warn!(error = %e, %topic, "reading the log failed; taking the lock again");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("consumer stopped");
    Ok(())
}
