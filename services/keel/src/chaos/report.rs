//! After the chaos: waiting for quiet, then comparing what the workload was told against what
//! sources-api serves and what the listener built, and printing the figures.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use anyhow::Context as _;
use keel_domain::sources_events::EVENT_STREAM_TOPIC;
use keel_service::KafkaSettings;
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use super::workload::{Api, Source, Tenant};

/// Where the event stream stands in the broker.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamPosition {
    /// Messages in the topic (high watermarks summed).
    pub published: i64,
    /// Messages the listener's group has committed (offsets summed).
    pub consumed: i64,
}

impl StreamPosition {
    pub fn lag(&self) -> i64 {
        self.published - self.consumed
    }
}

/// Reads the topic's watermarks and `group`'s committed offsets (blocking client calls, on the
/// blocking pool).
pub async fn stream_position(kafka: &KafkaSettings, group: &str) -> anyhow::Result<StreamPosition> {
    let consumer: BaseConsumer = keel_events::kafka::client_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("a Kafka client to read offsets")?;
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(5);
        let metadata = consumer.fetch_metadata(Some(EVENT_STREAM_TOPIC), timeout)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        let mut list = TopicPartitionList::new();
        let mut position = StreamPosition::default();
        for p in 0..partitions {
            list.add_partition(EVENT_STREAM_TOPIC, p);
            position.published += consumer.fetch_watermarks(EVENT_STREAM_TOPIC, p, timeout)?.1;
        }
        for e in consumer.committed_offsets(list, timeout)?.elements() {
            if let Offset::Offset(o) = e.offset() {
                position.consumed += o;
            }
        }
        Ok(position)
    })
    .await?
}

/// What the database holds about the spine's progress.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Backlog {
    pub outbox_rows: i64,
    pub unpublished: i64,
    /// Listener operations waiting or running (not parked).
    pub pending_operations: i64,
    pub parked_operations: i64,
    pub dead_letters: i64,
}

pub async fn backlog(db: &PgPool) -> anyhow::Result<Backlog> {
    let (outbox_rows, unpublished, pending_operations, parked_operations, dead_letters) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM sources.outbox), \
                    (SELECT count(*) FROM sources.outbox WHERE published_at IS NULL), \
                    (SELECT count(*) FROM cost.operations WHERE parked_at IS NULL), \
                    (SELECT count(*) FROM cost.operations WHERE parked_at IS NOT NULL), \
                    (SELECT count(*) FROM keel_events.dead_letters)",
        )
        .fetch_one(db)
        .await?;
    Ok(Backlog {
        outbox_rows,
        unpublished,
        pending_operations,
        parked_operations,
        dead_letters,
    })
}

/// How quiet came.
#[derive(Debug, Default)]
pub struct Quiet {
    pub reached: bool,
    /// Rebalances forced because consumption stood still with messages waiting.
    pub forced_rebalances: u32,
}

/// Consumption standing still this long with messages waiting forces a rebalance.
const STALL: Duration = Duration::from_secs(20);

/// Quiet: everything published and consumed, no operation waiting, three checks in a row a
/// second apart (a status report the listener sends makes new events). Not reached past
/// `limit`. When consumption stands still with messages waiting, a member joins and leaves
/// the group (see [`super::member`]).
pub async fn wait_quiet(
    db: &PgPool,
    kafka: &KafkaSettings,
    group: &str,
    limit: Duration,
) -> anyhow::Result<Quiet> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut quiet = Quiet::default();
    let mut calm = 0;
    let mut last = None;
    let mut progress = (tokio::time::Instant::now(), -1);
    while calm < 3 {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(?last, "no quiet before the deadline");
            return Ok(quiet);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = backlog(db).await?;
        let s = stream_position(kafka, group).await.ok();
        if let Some(s) = &s {
            if s.consumed != progress.1 || s.lag() == 0 {
                progress = (tokio::time::Instant::now(), s.consumed);
            } else if progress.0.elapsed() > STALL {
                tracing::warn!(?s, "consumption stands still; forcing a rebalance");
                super::member::join_and_leave(kafka, group, Duration::from_secs(3)).await?;
                quiet.forced_rebalances += 1;
                progress = (tokio::time::Instant::now(), s.consumed);
            }
        }
        let quiet = b.unpublished == 0
            && b.pending_operations == 0
            && s.as_ref().is_some_and(|s| s.lag() == 0);
        let now = Some((b, s));
        calm = if quiet && (calm == 0 || now == last) {
            calm + 1
        } else {
            u32::from(quiet)
        };
        last = now;
    }
    quiet.reached = true;
    Ok(quiet)
}

/// What sources-api serves, checked against the model; returns the problems, and the
/// applications' availability statuses counted.
pub async fn check_api(
    api: &Api,
    tenants: &[Tenant],
) -> anyhow::Result<(Vec<String>, BTreeMap<String, u64>)> {
    let mut problems = Vec::new();
    let mut statuses = BTreeMap::new();
    let limit = Duration::from_secs(60);
    for t in tenants {
        let (status, list) = api
            .definite(Method::GET, "/sources", &t.org, &[("limit", "1000")], limit)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "listing sources: {status} {list}");
        let served: BTreeMap<String, String> = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["id"].as_str()?.to_owned(), s["name"].as_str()?.to_owned())))
            .collect();
        let model: BTreeMap<String, String> = t
            .live
            .iter()
            .map(|s| (s.id.clone(), s.name.clone()))
            .collect();
        if served != model {
            problems.push(format!(
                "org {}: sources-api serves {served:?}, the acknowledged writes say {model:?}",
                t.org
            ));
        }
        for s in &t.live {
            let (_, app) = api
                .definite(
                    Method::GET,
                    &format!("/applications/{}", s.app_id),
                    &t.org,
                    &[],
                    limit,
                )
                .await?;
            let (_, auth) = api
                .definite(
                    Method::GET,
                    &format!("/authentications/{}", s.auth_id),
                    &t.org,
                    &[],
                    limit,
                )
                .await?;
            let paused = app["paused_at"].as_str().is_some();
            if app["extra"]["bucket"] != s.bucket.as_str()
                || paused != s.paused
                || auth["username"] != s.arn.as_str()
            {
                problems.push(format!(
                    "source {}: sources-api holds bucket {} paused {paused} role {}, acknowledged {s:?}",
                    s.id, app["extra"]["bucket"], auth["username"]
                ));
            }
            let availability = app["availability_status"].as_str().unwrap_or("").to_owned();
            *statuses.entry(availability).or_default() += 1;
        }
        for id in &t.deleted {
            let (status, _) = api
                .definite(Method::GET, &format!("/sources/{id}"), &t.org, &[], limit)
                .await?;
            if status != StatusCode::NOT_FOUND {
                problems.push(format!("deleted source {id} answers {status}"));
            }
        }
    }
    Ok((problems, statuses))
}

/// A provider as the listener built it, with the source it belongs to.
#[derive(sqlx::FromRow)]
struct ProviderRow {
    source_id: Option<i64>,
    name: String,
    paused: bool,
    role_arn: Option<String>,
    bucket: Option<String>,
}

/// The listener's providers against the model: one per live source with its name, paused
/// flag, role and bucket; none for anything else. Returns the problems and providers present.
pub async fn check_providers(
    db: &PgPool,
    tenants: &[Tenant],
) -> anyhow::Result<(Vec<String>, usize)> {
    let rows: Vec<ProviderRow> = sqlx::query_as(
        "SELECT s.source_id, p.name, p.paused, a.credentials->>'role_arn' AS role_arn, \
                b.data_source->>'bucket' AS bucket \
         FROM cost.api_provider p \
         LEFT JOIN cost.api_sources s ON s.koku_uuid = p.uuid::text \
         JOIN cost.api_providerauthentication a ON a.id = p.authentication_id \
         JOIN cost.api_providerbillingsource b ON b.id = p.billing_source_id",
    )
    .fetch_all(db)
    .await?;
    let mut expected: HashMap<i64, &Source> = HashMap::new();
    for s in tenants.iter().flat_map(|t| &t.live) {
        expected.insert(s.id.parse().context("a numeric source id")?, s);
    }
    let mut problems = Vec::new();
    let mut seen: HashMap<i64, u32> = HashMap::new();
    for ProviderRow {
        source_id,
        name,
        paused,
        role_arn: arn,
        bucket,
    } in &rows
    {
        let Some(id) = source_id else {
            problems.push(format!("provider {name:?} belongs to no source"));
            continue;
        };
        *seen.entry(*id).or_default() += 1;
        let Some(s) = expected.get(id) else {
            problems.push(format!(
                "provider {name:?} of source {id}, which is deleted"
            ));
            continue;
        };
        if *name != s.name
            || *paused != s.paused
            || arn.as_deref() != Some(&s.arn)
            || bucket.as_deref() != Some(&s.bucket)
        {
            problems.push(format!(
                "provider of source {id} is {name:?} paused {paused} role {arn:?} bucket {bucket:?}, \
                 acknowledged {s:?}"
            ));
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            problems.push(format!("source {id} has {n} providers"));
        }
    }
    for id in expected.keys() {
        if !seen.contains_key(id) {
            problems.push(format!("source {id} has no provider"));
        }
    }
    Ok((problems, rows.len()))
}
