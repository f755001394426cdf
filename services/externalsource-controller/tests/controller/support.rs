//! What the controller tests share: the controller over the fake API server, a source
//! server on loopback with ETags (plain or TLS with a CA made for the test), waiting, and
//! Flux's fetch.

use std::{
    io::Read as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use externalsource_controller::{App, Config, storage::Storage};
use keel_kube_fake::FakeApiServer;
use keel_service::Shutdown;
use serde_json::{Value, json};
use sha2::Digest as _;

pub const API: &str = "source.flux.oddkin.co/v1alpha1";
pub const EA: &str = "source.toolkit.fluxcd.io/v1";

/// A source server: answers its body with an ETag, 304 to a matching If-None-Match, 401
/// without the token when one is set, after `delay`; records the If-None-Match of every
/// request.
#[derive(Clone, Default)]
pub struct Origin {
    pub body: Arc<Mutex<Vec<u8>>>,
    pub seen: Arc<Mutex<Vec<Option<String>>>>,
    pub token: Arc<Mutex<Option<String>>>,
    pub delay: Arc<Mutex<Duration>>,
    /// While set, every request is answered 503.
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl Origin {
    pub fn router(&self) -> Router {
        let me = self.clone();
        Router::new().route(
            "/data",
            get(move |headers: HeaderMap| {
                let me = me.clone();
                async move {
                    if me.down.load(std::sync::atomic::Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    let token = me.token.lock().unwrap().clone();
                    if let Some(t) = token
                        && headers
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            != Some(&format!("Bearer {t}"))
                    {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    let body = me.body.lock().unwrap().clone();
                    let etag = format!("\"{}\"", hex(&sha2::Sha256::digest(&body)));
                    let asked = headers
                        .get(header::IF_NONE_MATCH)
                        .map(|v| v.to_str().unwrap().to_owned());
                    me.seen.lock().unwrap().push(asked.clone());
                    if asked.as_deref() == Some(etag.as_str()) {
                        return StatusCode::NOT_MODIFIED.into_response();
                    }
                    ([(header::ETAG, etag)], body).into_response()
                }
            }),
        )
    }

    pub async fn serve(&self) -> String {
        let app = self.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/data", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    pub fn set(&self, body: &[u8]) {
        *self.body.lock().unwrap() = body.to_vec();
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct Running {
    pub fake: Arc<FakeApiServer>,
    pub storage: Storage,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A controller over a new fake API server.
pub async fn start(config: Config) -> Running {
    start_on(Arc::new(FakeApiServer::start().await), config).await
}

/// A controller over `fake` (a restarted one finds what the last one left).
pub async fn start_on(fake: Arc<FakeApiServer>, config: Config) -> Running {
    let app = App::build(&config, Some(fake.client())).await.unwrap();
    let storage = app.storage();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Running {
        fake,
        storage,
        shutdown,
        task,
    }
}

pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until source `name` is Ready.
pub async fn until_ready(r: &Running, name: &str) {
    until(&format!("{name} Ready"), || {
        condition(&source(r, name), "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
}

/// A condition's (status, reason).
pub fn condition(o: &Value, kind: &str) -> Option<(String, String)> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
}

pub fn message(o: &Value, kind: &str) -> String {
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

pub fn source(r: &Running, name: &str) -> Value {
    r.fake
        .get(API, "externalsources", "team", name)
        .unwrap_or(Value::Null)
}

/// Creates ExternalSource `name` in `team` with `spec`.
pub fn create(r: &Running, name: &str, spec: Value) {
    r.fake.create(API, "externalsources", "team", json!({"apiVersion": API, "kind": "ExternalSource", "metadata": {"name": name}, "spec": spec}));
}

pub fn http_spec(url: &str) -> Value {
    json!({"interval": "10m", "generator": {"type": "http", "http": {"url": url}}})
}

/// Any change makes the controller look again (as a spec edit would).
pub fn poke(r: &Running, name: &str, n: u32) {
    r.fake.edit(API, "externalsources", "team", name, |o| {
        o["metadata"]["annotations"] = json!({"test/poke": n.to_string()});
    });
}

/// What Flux's fetcher does: download the url, verify the digest against the bytes, untar;
/// answers the file at `path`.
pub async fn flux_fetch(artifact: &Value, path: &str) -> Vec<u8> {
    let bytes = reqwest::get(artifact["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let digest = format!("sha256:{}", hex(&sha2::Sha256::digest(&bytes)));
    assert_eq!(
        artifact["digest"],
        digest.as_str(),
        "the digest is of the tarball"
    );
    assert_eq!(artifact["size"], bytes.len());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(path) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            return data;
        }
    }
    panic!("{path} is not in the artifact");
}

/// Serves `router` over HTTPS on loopback with a CA made for the test; answers the URL of
/// `/data` and the CA's PEM.
pub async fn serve_tls(router: Router) -> (String, String) {
    let (addr, ca) = keel_service::tls::testing::serve_https(router).await;
    (format!("https://{addr}/data"), ca)
}
