//! The chaos workload: clients that each own some tenants and change their AWS sources through
//! sources-api's REST API (create with application and role, rename, new bucket, new role,
//! pause, unpause, delete), keeping a model of what sources-api acknowledged.
//!
//! An answer is definite when it is a 2xx or 4xx; a transport error or a 5xx is ambiguous (the
//! server may have been killed before or after committing), and the operation is retried until
//! its answer is definite. Every operation is idempotent on retry except a create, which first
//! looks its name up (names are unique per tenant), and a delete, where 404 after an ambiguous
//! attempt means the first attempt landed.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use rand::{Rng, RngExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A source as sources-api last acknowledged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    pub app_id: String,
    pub auth_id: String,
    pub name: String,
    pub bucket: String,
    pub arn: String,
    pub paused: bool,
}

/// One tenant's sources, owned by one client.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub org: String,
    pub live: Vec<Source>,
    pub deleted: Vec<String>,
    /// Numbers the tenant's names, buckets and roles, so each one is new.
    next: u64,
}

impl Tenant {
    pub fn new(org: String) -> Self {
        Self {
            org,
            live: Vec::new(),
            deleted: Vec::new(),
            next: 0,
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// What the clients did, summed over them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Operations sources-api acknowledged, by kind.
    pub acknowledged: BTreeMap<&'static str, u64>,
    /// Operations whose first attempt was ambiguous (retried until definite).
    pub ambiguous: u64,
    /// Attempts that ended in a transport error.
    pub transport_errors: u64,
    /// Answers of 500 or more (each one is a defect: the database never went away).
    pub server_errors: Vec<String>,
    /// 4xx answers to operations the model expected to succeed (each one is a defect).
    pub rejected: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        for (kind, n) in other.acknowledged {
            *self.acknowledged.entry(kind).or_default() += n;
        }
        self.ambiguous += other.ambiguous;
        self.transport_errors += other.transport_errors;
        self.server_errors.extend(other.server_errors);
        self.rejected.extend(other.rejected);
    }

    pub fn total_acknowledged(&self) -> u64 {
        self.acknowledged.values().sum()
    }
}

/// sources-api's REST API as one tenant's caller with the workload's PSK.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub psk: String,
}

/// A definite answer, or why there is none.
pub enum Answer {
    Definite(StatusCode, Value),
    Ambiguous(String),
}

impl Api {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        org: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-rh-sources-org-id", org)
            .header("x-rh-sources-psk", &self.psk)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = match request.send().await {
            Ok(reply) => reply,
            Err(e) => return Answer::Ambiguous(format!("transport: {e}")),
        };
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Answer::Ambiguous(format!("{status} {method} {path}: {text}"));
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer::Definite(status, value)
    }

    /// The answer once it is definite, retrying ambiguous ones for up to `limit`.
    pub async fn definite(
        &self,
        method: Method,
        path: &str,
        org: &str,
        query: &[(&str, &str)],
        limit: Duration,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.send(method.clone(), path, org, query, None).await {
                Answer::Definite(status, body) => return Ok((status, body)),
                Answer::Ambiguous(why) if tokio::time::Instant::now() > deadline => {
                    bail!("{method} {path} stayed ambiguous: {why}")
                }
                Answer::Ambiguous(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }
}

const RETRY: Duration = Duration::from_millis(250);
/// How long one operation may stay ambiguous (sources-api down) before the run gives up.
const GIVE_UP: Duration = Duration::from_secs(180);
/// Sources a tenant holds at most; past it the workload changes and deletes instead.
const MAX_LIVE: usize = 20;

/// One client: operations on its own tenants until `budget` operations have been started over
/// all clients or `stop` is cancelled.
pub async fn client(
    api: Api,
    mut tenants: Vec<Tenant>,
    mut rng: impl Rng + Send,
    every: Duration,
    budget: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(Vec<Tenant>, Tally)> {
    let mut tally = Tally::default();
    let mut pace = tokio::time::interval(every);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = pace.tick() => {}
        }
        if !take(&budget) {
            break;
        }
        let t = rng.random_range(0..tenants.len());
        let tenant = &mut tenants[t];
        let create =
            tenant.live.len() < 3 || (tenant.live.len() < MAX_LIVE && rng.random_bool(0.2));
        if create {
            operate(&api, tenant, Op::Create, &mut tally).await?;
            continue;
        }
        let i = rng.random_range(0..tenant.live.len());
        let op = match rng.random_range(0..100) {
            0..20 => Op::Rename(i),
            20..35 if !tenant.live[i].paused => Op::Bucket(i),
            20..50 => Op::Role(i),
            50..80 => Op::Pause(i, !tenant.live[i].paused),
            _ => Op::Delete(i),
        };
        operate(&api, tenant, op, &mut tally).await?;
    }
    Ok((tenants, tally))
}

fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Rename(usize),
    Bucket(usize),
    Role(usize),
    Pause(usize, bool),
    Delete(usize),
}

impl Op {
    fn kind(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Rename(_) => "rename",
            Self::Bucket(_) => "new bucket",
            Self::Role(_) => "new role",
            Self::Pause(_, true) => "pause",
            Self::Pause(_, false) => "unpause",
            Self::Delete(_) => "delete",
        }
    }
}

/// Runs `op` until its answer is definite and applies it to the model.
async fn operate(api: &Api, t: &mut Tenant, op: Op, tally: &mut Tally) -> anyhow::Result<()> {
    let n = t.fresh();
    let org = t.org.clone();
    let (method, path, body) = match op {
        Op::Create => {
            let source = proposed(&org, n);
            return create(api, t, source, tally).await;
        }
        Op::Rename(i) => (
            Method::PATCH,
            format!("/sources/{}", t.live[i].id),
            Some(json!({"name": name(&org, n)})),
        ),
        Op::Bucket(i) => (
            Method::PATCH,
            format!("/applications/{}", t.live[i].app_id),
            Some(json!({"extra": {"bucket": bucket(&org, n), "bucket_region": "eu-west-1"}})),
        ),
        Op::Role(i) => (
            Method::PATCH,
            format!("/authentications/{}", t.live[i].auth_id),
            Some(json!({"username": arn(&org, n)})),
        ),
        Op::Pause(i, pause) => (
            Method::POST,
            format!(
                "/applications/{}/{}",
                t.live[i].app_id,
                if pause { "pause" } else { "unpause" }
            ),
            None,
        ),
        Op::Delete(i) => (Method::DELETE, format!("/sources/{}", t.live[i].id), None),
    };
    let mut retried = false;
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    let status = loop {
        match api
            .send(method.clone(), &path, &org, &[], body.as_ref())
            .await
        {
            Answer::Definite(status, reply) => {
                if status.is_success() || (retried && matches!(op, Op::Delete(_)) && status == 404)
                {
                    break status;
                }
                tally
                    .rejected
                    .push(format!("{method} {path} {body:?}: {status} {reply}"));
                return Ok(());
            }
            Answer::Ambiguous(why) => note_ambiguous(tally, &mut retried, &why, deadline)?,
        }
        tokio::time::sleep(RETRY).await;
    };
    tracing::debug!(%method, %path, %status, "acknowledged");
    *tally.acknowledged.entry(op.kind()).or_default() += 1;
    match op {
        Op::Rename(i) => t.live[i].name = name(&org, n),
        Op::Bucket(i) => t.live[i].bucket = bucket(&org, n),
        Op::Role(i) => t.live[i].arn = arn(&org, n),
        Op::Pause(i, pause) => t.live[i].paused = pause,
        Op::Delete(i) => {
            let gone = t.live.swap_remove(i);
            t.deleted.push(gone.id);
        }
        Op::Create => {}
    }
    Ok(())
}

fn note_ambiguous(
    tally: &mut Tally,
    retried: &mut bool,
    why: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    if !*retried {
        tally.ambiguous += 1;
        *retried = true;
    }
    if why.starts_with("transport") {
        tally.transport_errors += 1;
    } else if why.starts_with('5') {
        tally.server_errors.push(why.to_owned());
    } else {
        tally.rejected.push(why.to_owned());
    }
    if tokio::time::Instant::now() > deadline {
        bail!("an operation stayed ambiguous for {GIVE_UP:?}: {why}");
    }
    Ok(())
}

/// `bulk_create` of a source with its cost-management application and role; after an ambiguous
/// attempt, the name is looked up before trying again.
async fn create(api: &Api, t: &mut Tenant, mut s: Source, tally: &mut Tally) -> anyhow::Result<()> {
    let body = json!({
        "sources": [{"name": s.name, "source_type_name": "amazon"}],
        "applications": [{"application_type_name": "cost-management", "source_name": s.name,
                          "extra": {"bucket": s.bucket, "bucket_region": "eu-west-1"}}],
        "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                             "authtype": "arn", "username": s.arn,
                             "extra": {"external_id": format!("ext-{}", s.name)}}]
    });
    let mut retried = false;
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    let ids = loop {
        if retried {
            match find(api, &t.org, &s.name).await {
                Ok(Some(ids)) => break ids,
                Ok(None) => {}
                Err(why) => {
                    note_ambiguous(tally, &mut retried, &why, deadline)?;
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        match api
            .send(Method::POST, "/bulk_create", &t.org, &[], Some(&body))
            .await
        {
            Answer::Definite(StatusCode::CREATED, reply) => break created_ids(&reply)?,
            Answer::Definite(status, reply) => {
                tally
                    .rejected
                    .push(format!("POST /bulk_create {}: {status} {reply}", s.name));
                return Ok(());
            }
            Answer::Ambiguous(why) => note_ambiguous(tally, &mut retried, &why, deadline)?,
        }
        tokio::time::sleep(RETRY).await;
    };
    (s.id, s.app_id, s.auth_id) = ids;
    *tally.acknowledged.entry("create").or_default() += 1;
    t.live.push(s);
    Ok(())
}

type Ids = (String, String, String);

fn created_ids(reply: &Value) -> anyhow::Result<Ids> {
    let id = |list: &str| {
        reply[list][0]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("bulk_create answered without {list}: {reply}"))
    };
    Ok((id("sources")?, id("applications")?, id("authentications")?))
}

/// The ids of the tenant's source named `name` with its application and role, if it exists;
/// `Err` when the lookup itself was ambiguous.
async fn find(api: &Api, org: &str, name: &str) -> Result<Option<Ids>, String> {
    let first = |path: String, query: Vec<(&'static str, String)>| async move {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match api.send(Method::GET, &path, org, &query, None).await {
            Answer::Definite(StatusCode::OK, list) => {
                Ok(list["data"][0]["id"].as_str().map(str::to_owned))
            }
            Answer::Definite(status, body) => Err(format!("{status} GET {path}: {body}")),
            Answer::Ambiguous(why) => Err(why),
        }
    };
    let Some(source) = first("/sources".into(), vec![("filter[name]", name.to_owned())]).await?
    else {
        return Ok(None);
    };
    // bulk_create commits the three together: a source found has its application and role.
    let app = first(format!("/sources/{source}/applications"), vec![])
        .await?
        .ok_or_else(|| format!("source {source} has no application"))?;
    let auth = first(format!("/applications/{app}/authentications"), vec![])
        .await?
        .ok_or_else(|| format!("application {app} has no authentication"))?;
    Ok(Some((source, app, auth)))
}

fn proposed(org: &str, n: u64) -> Source {
    Source {
        id: String::new(),
        app_id: String::new(),
        auth_id: String::new(),
        name: name(org, n),
        bucket: bucket(org, n),
        arn: arn(org, n),
        paused: false,
    }
}

fn name(org: &str, n: u64) -> String {
    format!("chaos {org} {n}")
}

fn bucket(org: &str, n: u64) -> String {
    format!("chaos-{org}-{n}")
}

fn arn(org: &str, n: u64) -> String {
    format!("arn:aws:iam::{:0>12}:role/Chaos{n}", org)
}
