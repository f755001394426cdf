//! Consumers: order and commits, restarts, retries and dead letters (one by one and in
//! batches), groups splitting partitions, lag, and embedded-log members losing their lock.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use keel_events::{ConsumerConfig, Handler, Message, Outcome};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::harness::{BOTH, Harness, OUTBOX, Via, first_names, names, unique};

#[tokio::test]
async fn messages_arrive_in_order_with_their_key_headers_and_payload() {
    for via in BOTH {
        let h = Harness::start(via).await;
        let key = unique("key");
        let sent = names("m", 8);
        h.write_names(&key, &sent).await;
        h.delivered().await;
        let got = h.collect(&unique("group"), &key, sent.len()).await;
        assert_eq!(first_names(&got), sent, "{via:?}");
        for m in &got {
            assert_eq!(m.topic, h.topic, "{via:?}: under the requested topic name");
            assert_eq!(m.header("event_type"), Some("Test.event"), "{via:?}");
        }
        let partitions: BTreeSet<i32> = got.iter().map(|m| m.partition).collect();
        assert_eq!(partitions.len(), 1, "{via:?}: one key, one partition");
        assert!(
            got.windows(2).all(|w| w[0].offset < w[1].offset),
            "{via:?}: offsets grow"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn an_embedded_member_takes_its_lock_again_after_losing_its_connection() {
    let h = Harness::start(Via::Embedded).await;
    let key = unique("key");
    let before = names("before", 3);
    h.write_names(&key, &before).await;
    let group = unique("group");
    let after = names("after", 3);
    let (got, ()) = tokio::join!(h.collect(&group, &key, 6), async {
        // The member holds its lock while reading: cutting its session makes it take the
        // lock again and go on from its stored position.
        let cut = h.cut_lock_holders(2, 1).await;
        // Fails (times out) unless it takes its lock again on a new session.
        h.lock_holders(2, 1, &cut).await;
        h.write_names(&key, &after).await;
    });
    let want: Vec<String> = before.into_iter().chain(after).collect();
    assert_eq!(first_names(&got), want);
}

#[tokio::test]
async fn a_restarted_group_resumes_after_its_last_commit() {
    for via in BOTH {
        let h = Harness::start(via).await;
        let key = unique("key");
        let sent = names("s", 12);
        h.write_names(&key, &sent).await;
        h.delivered().await;
        let group = unique("group");
        let first = h
            .collect_from(via.transport(), &group, &key, 12, Some(5))
            .await;
        assert_eq!(first.len(), 5, "{via:?}: stopped after five");
        let rest = h.collect(&group, &key, 7).await;
        assert_eq!(
            rest.len(),
            7,
            "{via:?}: resumed after the last commit, nothing repeated or lost"
        );
        let all: Vec<String> = first_names(&first)
            .into_iter()
            .chain(first_names(&rest))
            .collect();
        assert_eq!(all, sent, "{via:?}");
        h.stop().await;
    }
}

/// Handles by payload: `fail` is dead-lettered, `retry` fails twice before succeeding.
#[derive(Default)]
struct Picky {
    handled: Mutex<Vec<String>>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Handler for Picky {
    async fn handle(&self, message: &Message) -> Outcome {
        let body = String::from_utf8_lossy(&message.payload).into_owned();
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(body.clone()).or_default();
            *n += 1;
            *n
        };
        match body.as_str() {
            "\"fail\"" => Outcome::Fail("nope".into()),
            "\"retry\"" if attempt < 3 => Outcome::Retry("not yet".into()),
            _ => {
                self.handled.lock().unwrap().push(body);
                Outcome::Done
            }
        }
    }
}

/// Picky taking whole batches: stops at its first retry, as the contract allows.
#[derive(Default)]
struct Batched {
    picky: Picky,
    sizes: Mutex<Vec<usize>>,
}

impl Handler for Batched {
    const TAKES_BATCHES: bool = true;

    async fn handle(&self, message: &Message) -> Outcome {
        self.picky.handle(message).await
    }

    async fn handle_batch(&self, messages: &[Message]) -> Vec<Outcome> {
        self.sizes.lock().unwrap().push(messages.len());
        let mut outcomes = Vec::new();
        for m in messages {
            let outcome = self.picky.handle(m).await;
            let retry = matches!(outcome, Outcome::Retry(_));
            outcomes.push(outcome);
            if retry {
                break;
            }
        }
        outcomes
    }
}

impl AsRef<Picky> for Picky {
    fn as_ref(&self) -> &Picky {
        self
    }
}

impl AsRef<Picky> for Batched {
    fn as_ref(&self) -> &Picky {
        &self.picky
    }
}

#[tokio::test]
async fn failures_are_dead_lettered_and_retries_hold_the_partition() {
    for via in BOTH {
        dead_letters_and_retries(via, Arc::new(Picky::default())).await;
    }
}

/// The same contract when the handler takes batches: the messages before a retry are not
/// handled again, the retried one and those after it are, in order.
#[tokio::test]
async fn batches_keep_the_contract_of_single_messages() {
    for via in BOTH {
        let handler = Arc::new(Batched::default());
        dead_letters_and_retries(via, handler.clone()).await;
        let sizes = handler.sizes.lock().unwrap().clone();
        if via == Via::Embedded {
            // All four were in the log before the consumer started: one batch.
            assert_eq!(sizes.first(), Some(&4), "{sizes:?}");
        }
        assert!(!sizes.is_empty(), "{via:?}: batches were used");
    }
}

async fn dead_letters_and_retries<H: Handler + AsRef<Picky>>(via: Via, handler: Arc<H>) {
    let h = Harness::start(via).await;
    let payloads: Vec<String> = ["a", "retry", "fail", "b"]
        .iter()
        .map(|p| json!(p).to_string())
        .collect();
    h.write("k", &payloads).await;
    h.delivered().await;

    let token = CancellationToken::new();
    let group = unique("group");
    let mut config = ConsumerConfig::new(&group, &[h.topic.as_str()]);
    config.retry_base = Duration::from_millis(10);
    config.poll_interval = Duration::from_millis(20);
    let run = tokio::spawn(keel_events::consumer::run(
        via.transport(),
        h.db.clone(),
        OUTBOX,
        config,
        handler.clone(),
        token.clone(),
    ));
    let picky = || AsRef::<Picky>::as_ref(&*handler);
    for _ in 0..600 {
        if picky().handled.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();

    assert_eq!(
        *picky().handled.lock().unwrap(),
        ["\"a\"", "\"retry\"", "\"b\""],
        "{via:?}: in order, b after the retried one"
    );
    assert_eq!(picky().attempts.lock().unwrap()["\"retry\""], 3, "{via:?}");
    let dead: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT topic, error, payload FROM keel_events.dead_letters WHERE group_id = $1",
    )
    .bind(&group)
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_eq!(
        dead,
        vec![(h.topic.clone(), "nope".to_owned(), b"\"fail\"".to_vec())],
        "{via:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn two_consumers_in_one_group_split_the_partitions() {
    let h = Harness::start(Via::Kafka).await;
    let group = unique("group");

    struct Member {
        seen: Mutex<Vec<(i32, String)>>,
    }
    impl Handler for Member {
        async fn handle(&self, m: &Message) -> Outcome {
            self.seen
                .lock()
                .unwrap()
                .push((m.partition, m.key_str().unwrap_or_default().to_owned()));
            Outcome::Done
        }
    }
    let token = CancellationToken::new();
    let members: Vec<Arc<Member>> = (0..2)
        .map(|_| {
            Arc::new(Member {
                seen: Mutex::default(),
            })
        })
        .collect();
    let runs: Vec<_> = members
        .iter()
        .map(|m| {
            tokio::spawn(keel_events::consumer::run(
                Via::Kafka.transport(),
                h.db.clone(),
                OUTBOX,
                ConsumerConfig::new(&group, &[h.topic.as_str()]),
                m.clone(),
                token.clone(),
            ))
        })
        .collect();
    // Let the group settle on both members before producing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for n in 0..60 {
        h.write(&format!("key-{n}"), &["\"x\"".to_owned()]).await;
    }
    h.wait_published().await;
    for _ in 0..300 {
        let total: usize = members.iter().map(|m| m.seen.lock().unwrap().len()).sum();
        if total >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let partitions: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| m.seen.lock().unwrap().iter().map(|(p, _)| *p).collect())
        .collect();
    let keys: BTreeSet<String> = members
        .iter()
        .flat_map(|m| {
            m.seen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, k)| k.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(keys.len(), 60, "every message handled");
    assert!(
        !partitions[0].is_empty() && !partitions[1].is_empty(),
        "both members work: {partitions:?}"
    );
    assert!(
        partitions[0].is_disjoint(&partitions[1]),
        "each partition has one member: {partitions:?}"
    );
    h.stop().await;
}

/// Never finishes the first message, so nothing is ever committed.
struct Stuck;

impl Handler for Stuck {
    async fn handle(&self, _: &Message) -> Outcome {
        Outcome::Retry("stuck".into())
    }
}

#[tokio::test]
async fn consumer_lag_counts_what_is_not_handled_yet() {
    // Kafka: high watermark - committed offset. Embedded log: rows past the group's position,
    // taken from a short read, or counted when a read comes back full (more than 500).
    for (via, waiting) in [(Via::Kafka, 5), (Via::Embedded, 5), (Via::Embedded, 600)] {
        let h = Harness::start(via).await;
        let payloads: Vec<String> = (0..waiting).map(|n| n.to_string()).collect();
        let mut tx = h.db.begin().await.unwrap();
        for p in &payloads {
            h.append(&mut tx, "one-key", p).await;
        }
        tx.commit().await.unwrap();
        h.delivered().await;
        let group = unique("group");
        let mut config = ConsumerConfig::new(&group, &[h.topic.as_str()]);
        config.lag_interval = Duration::from_millis(300);
        let token = CancellationToken::new();
        let run = tokio::spawn(keel_events::consumer::run(
            via.transport(),
            h.db.clone(),
            OUTBOX,
            config,
            Arc::new(Stuck),
            token.clone(),
        ));
        let series = format!(
            "events_consumer_lag{{group=\"{group}\",topic=\"{}\"",
            h.topic
        );
        let mut line = String::new();
        for _ in 0..300 {
            let metrics = keel_telemetry::prometheus().render();
            if let Some(l) = metrics
                .lines()
                .find(|l| l.starts_with(&series) && !l.ends_with(" 0"))
            {
                line = l.to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        token.cancel();
        run.await.unwrap().unwrap();
        assert!(
            line.ends_with(&format!(" {waiting}")),
            "{via:?}: {waiting} messages wait on one partition: {line:?}"
        );
        h.stop().await;
    }
}

/// Counts what it handles.
#[derive(Default)]
struct Counted {
    handled: Mutex<usize>,
}

impl Handler for Counted {
    async fn handle(&self, _: &Message) -> Outcome {
        *self.handled.lock().unwrap() += 1;
        Outcome::Done
    }
}

impl Counted {
    /// Whether `n` messages are handled within 30 s.
    async fn reaches(&self, n: usize) -> bool {
        for _ in 0..300 {
            if *self.handled.lock().unwrap() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// An embedded-log consumer of the harness's topic that, once idle, would not look again for
/// an hour unless woken: its counter, its stop, and its task.
fn idle_for_an_hour(
    h: &Harness,
) -> (
    Arc<Counted>,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut config = ConsumerConfig::new(unique("group"), &[h.topic.as_str()]);
    config.poll_interval = Duration::from_secs(3600);
    config.max_poll_interval = Duration::from_secs(3600);
    let handler = Arc::new(Counted::default());
    let token = CancellationToken::new();
    let run = tokio::spawn(keel_events::consumer::run(
        Via::Embedded.transport(),
        h.db.clone(),
        OUTBOX,
        config,
        handler.clone(),
        token.clone(),
    ));
    (handler, token, run)
}

/// An idle embedded-log consumer that would not look again for an hour reads a row as soon
/// as a writer of its process says it committed one.
#[tokio::test]
async fn a_commit_in_the_same_process_wakes_an_idle_embedded_consumer() {
    let h = Harness::start(Via::Embedded).await;
    let key = unique("key");
    h.write_names(&key, &names("first", 1)).await;
    let (handler, token, run) = idle_for_an_hour(&h);
    assert!(
        handler.reaches(1).await,
        "the row written before the start is read at once"
    );
    h.write_names(&key, &names("second", 1)).await;
    OUTBOX.committed();
    assert!(handler.reaches(2).await, "the commit woke the consumer");
    token.cancel();
    run.await.unwrap().unwrap();
    h.stop().await;
}

/// A row committed behind an older transaction still open is not final, so the commit that
/// woke the consumer finds nothing; nobody announces when the older transaction ends.
#[tokio::test]
async fn rows_held_back_by_an_open_transaction_are_read_when_it_ends() {
    let h = Harness::start(Via::Embedded).await;
    let key = unique("key");
    h.write_names(&key, &names("first", 1)).await;
    let (handler, token, run) = idle_for_an_hour(&h);
    assert!(handler.reaches(1).await, "the first row is read");

    let mut older = h.db.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .unwrap();
    h.write_names(&key, &names("second", 1)).await;
    OUTBOX.committed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *handler.handled.lock().unwrap(),
        1,
        "a row behind an open transaction is not read"
    );
    older.commit().await.unwrap();
    assert!(
        handler.reaches(2).await,
        "the held-back row is read once the transaction ends, with no commit to wake the reader"
    );
    token.cancel();
    run.await.unwrap().unwrap();
    h.stop().await;
}
