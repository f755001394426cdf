//! The relay: transaction order, never skipping a late commit, one relay per outbox, broker
//! restarts, and retention.

use std::time::Duration;

use keel_events::Transport;

use keel_events::testing::TansuBroker;

use crate::harness::{BOTH, Harness, Via, first_names, names, unique};

#[tokio::test]
async fn a_late_commit_holds_back_later_messages_and_is_never_skipped() {
    for via in BOTH {
        // Batches of 3 rows: the relay pipelines several while the late row waits.
        let h = Harness::start_with(via, 3, (via == Via::Kafka).then(crate::harness::kafka)).await;
        let key = unique("key");
        // A transaction takes its txid with this row, then stays open while later ones commit.
        let mut held = h.db.begin().await.unwrap();
        h.append(&mut held, &key, r#"{"name":"late"}"#).await;
        let after = names("after", 10);
        h.write_names(&key, &after).await;
        if via == Via::Kafka {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let published: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&h.db)
                    .await
                    .unwrap();
            assert_eq!(
                published, 0,
                "rows after an open transaction are not final: publishing them could skip its row"
            );
        }
        held.commit().await.unwrap();
        h.delivered().await;
        let got = h.collect(&unique("group"), &key, 11).await;
        let want: Vec<String> = std::iter::once("late".to_owned()).chain(after).collect();
        assert_eq!(
            first_names(&got),
            want,
            "{via:?}: every message, in transaction order"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn the_relay_takes_its_lock_again_after_losing_its_connection() {
    let h = Harness::start(Via::Kafka).await;
    let key = unique("key");
    h.write_names(&key, &["before".to_owned()]).await;
    h.wait_published().await;
    // One relay per database: its lock is the only one-key advisory lock.
    let cut = h.cut_lock_holders(1, 1).await;
    // Fails (times out) unless the relay takes its lock again on a new session.
    h.lock_holders(1, 1, &cut).await;
    h.write_names(&key, &["after".to_owned()]).await;
    h.wait_published().await;
    let got = h.collect(&unique("group"), &key, 2).await;
    assert_eq!(first_names(&got), ["before", "after"]);
    h.stop().await;
}

#[tokio::test]
async fn a_second_relay_on_the_same_outbox_waits_as_standby() {
    let h = Harness::start(Via::Kafka).await;
    let key = unique("key");
    h.write_names(&key, &["first".to_owned()]).await;
    h.wait_published().await;
    let status = std::sync::Arc::new(keel_events::relay::RelayStatus::default());
    let second = keel_events::Relay::new(
        h.db.clone(),
        crate::harness::OUTBOX,
        &crate::harness::kafka(),
        100,
        status.clone(),
    )
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(second.run(stop.clone()));
    for _ in 0..100 {
        if status.standby.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        status.standby.load(std::sync::atomic::Ordering::Relaxed),
        "the second relay knows it waits"
    );
    assert_eq!(h.lock_holders(1, 1, &[]).await.len(), 1, "one relay lock");
    h.write_names(&key, &["second".to_owned()]).await;
    h.wait_published().await;
    let got = h.collect(&unique("group"), &key, 2).await;
    assert_eq!(got.len(), 2, "published once, by the first relay");
    stop.cancel();
    run.await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn the_relay_survives_a_broker_restart_without_losing_messages() {
    let mut broker = TansuBroker::start().await;
    let h = Harness::start_with(Via::Kafka, 10_000, Some(broker.kafka())).await;
    let key = unique("key");
    let before = names("before", 20);
    h.write_names(&key, &before).await;
    h.wait_published().await;

    broker.down().await;
    // Writers keep committing while Kafka is down: the messages wait in the outbox.
    let during = names("during", 20);
    h.write_names(&key, &during).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        h.pending().await > 0,
        "nothing can be acknowledged while the broker is down"
    );

    broker.up().await;
    h.wait_published().await;
    let got = h
        .collect_from(
            Transport::Kafka(broker.kafka()),
            &unique("group"),
            &key,
            40,
            None,
        )
        .await;
    let first_seen = first_names(&got);
    eprintln!(
        "duplicates after the broker restart: {}",
        got.len() - first_seen.len()
    );
    let want: Vec<String> = before.into_iter().chain(during).collect();
    assert_eq!(
        first_seen, want,
        "no message lost across the restart, in order"
    );
    h.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_rows_but_never_unpublished_ones_under_kafka() {
    // No relay: the test decides what counts as published.
    let h = Harness::start_with(Via::Embedded, 10_000, None).await;
    h.write_names(&unique("key"), &names("s", 4)).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&h.db)
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    // Two rows eight days old, one of them published; two recent ones, one published.
    sqlx::query("UPDATE outbox SET created_at = now() - interval '8 days' WHERE id = ANY($1)")
        .bind(&ids[..2])
        .execute(&h.db)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind([ids[0], ids[2]])
        .execute(&h.db)
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let left = || async {
        sqlx::query_scalar::<_, i64>("SELECT id FROM outbox ORDER BY id")
            .fetch_all(&h.db)
            .await
            .unwrap()
    };
    let outbox = crate::harness::OUTBOX;
    // Kafka: only what the relay already published goes.
    assert_eq!(outbox.prune(&h.db, week, true).await.unwrap(), 1);
    assert_eq!(left().await, ids[1..]);
    // Embedded log: age alone decides, as Kafka's log retention does.
    assert_eq!(outbox.prune(&h.db, week, false).await.unwrap(), 1);
    assert_eq!(left().await, ids[2..]);
}

/// A row Kafka will never take (over `message.max.bytes`) goes to the dead letters with its
/// reason, and the rows around it are published in order: one bad row never stops the relay.
#[tokio::test]
async fn a_row_kafka_refuses_for_good_is_dead_lettered_and_the_others_flow() {
    let h = Harness::start(Via::Kafka).await;
    let key = unique("key");
    let big = serde_json::json!({"name": "big", "pad": "x".repeat(1_100_000)}).to_string();
    h.write_names(&key, &["before".to_owned()]).await;
    // Appending refuses it (below); a row like it can still be there, from another writer or
    // an earlier version.
    sqlx::query(
        "INSERT INTO outbox (topic, event_type, key, headers, payload) \
         VALUES ($1, 'Test.event', $2, '[]', $3::json)",
    )
    .bind(&h.topic)
    .bind(&key)
    .bind(&big)
    .execute(&h.db)
    .await
    .unwrap();
    h.write_names(&key, &["after".to_owned()]).await;
    h.wait_published().await;
    let got = h.collect(&unique("group"), &key, 2).await;
    assert_eq!(first_names(&got), ["before", "after"]);
    let letters: Vec<(String, i32, i64, i32, String)> = sqlx::query_as(
        "SELECT group_id, partition, \"offset\", octet_length(payload), error \
         FROM keel_events.dead_letters",
    )
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (group, partition, offset, bytes, error) = &letters[0];
    assert_eq!(group, keel_events::dead_letter::RELAY_GROUP);
    assert_eq!(*partition, -1);
    let big_id: i64 = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id OFFSET 1 LIMIT 1")
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(*offset, big_id, "the dead letter names the outbox row");
    assert!(*bytes > 1_100_000, "the payload is kept whole");
    assert!(error.contains("size too large"), "{error}");
    let counted = h
        .relay_status
        .dead_lettered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, 1);
}

/// A backlog of large rows is read within the byte budget, not 10,000 rows at a time, and
/// still arrives whole and in order over both transports.
#[tokio::test]
async fn a_backlog_of_large_rows_is_read_within_the_byte_budget() {
    let pad = "y".repeat(400_000);
    let rows: Vec<String> = (0..60)
        .map(|i| serde_json::json!({"name": format!("row-{i:02}"), "pad": pad}).to_string())
        .collect();
    for via in BOTH {
        let h = Harness::start(via).await;
        let key = unique("key");
        if via == Via::Embedded {
            h.write(&key, &rows).await;
            let mut conn = h.db.acquire().await.unwrap();
            let outbox = crate::harness::OUTBOX;
            let unpublished = outbox.unpublished(&mut conn, None, 10_000).await.unwrap();
            let read = outbox
                .read(&mut conn, &h.topic, Default::default(), 10_000)
                .await
                .unwrap();
            // As many leading rows as fit in the budget, to the byte.
            let mut total = 0;
            let fitting = rows
                .iter()
                .take_while(|r| {
                    total += r.len() as i64;
                    total <= keel_events::outbox::READ_BYTES
                })
                .count();
            assert!((1..60).contains(&fitting));
            for batch in [unpublished, read] {
                let bytes: usize = batch.iter().map(|r| r.payload.len()).sum();
                assert_eq!(batch.len(), fitting, "rows in one read");
                assert!(
                    bytes as i64 <= keel_events::outbox::READ_BYTES,
                    "{bytes} bytes"
                );
            }
        } else {
            h.write(&key, &rows).await;
        }
        h.delivered().await;
        let got = h.collect(&unique("group"), &key, 60).await;
        assert_eq!(first_names(&got), names("row", 60), "{via:?}");
        h.stop().await;
    }
}

/// A message larger than Kafka takes is refused when appended, while the writer can still
/// answer, and nothing of the call is written.
#[tokio::test]
async fn appending_a_message_kafka_could_never_take_is_refused() {
    let h = Harness::start_with(Via::Embedded, 10_000, None).await;
    let headers = [("event_type".to_owned(), "Test.event".to_owned())];
    let small = r#"{"name":"small"}"#;
    let big = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(keel_events::outbox::MAX_MESSAGE_BYTES)
    );
    let message = |payload| keel_events::NewMessage {
        topic: &h.topic,
        event_type: "Test.event",
        key: "k",
        headers: &headers,
        payload,
    };
    let mut conn = h.db.acquire().await.unwrap();
    let refused = crate::harness::OUTBOX
        .append(&mut conn, &[message(small), message(&big)])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, keel_events::outbox::AppendError::TooLarge { bytes, .. } if bytes > 1_000_000),
        "{refused}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "neither message is written");
}
