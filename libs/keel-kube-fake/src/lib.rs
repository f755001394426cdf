//! A Kubernetes API server for tests, in process on loopback. No real API server can run on
//! the machines Keel is tested on (no kube-apiserver, etcd, kind or Docker engine), so this
//! one speaks the same HTTP to the same clients: kube-rs `Api`s and the `Controller` loop run
//! against it unchanged.
//!
//! It answers get, list (label and field selectors), watch (from a resource version, or the
//! current state first), create, replace, patch (server-side apply, merge and strategic merge
//! as a merge, JSON patch), delete (held by finalizers, cascading to owned objects) and the
//! `/status` subresource. Every call is recorded for assertions, and faults can be injected.
//!
//! Simplified on purpose: server-side apply merges what was applied into what exists (no
//! per-manager field ownership, so a field a manager stops applying is not removed), there
//! is no admission or schema validation, and no controller runs (a test plays the
//! StatefulSet controller by setting status).

pub mod resource;
mod routes;
pub mod selector;
pub mod store;

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

pub use resource::{Failure, Resource};
pub use store::Part;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Call {
    /// The value of a query parameter (`fieldManager`, `force`).
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// Requests answered with this code before the server behaves again.
    failing: Vec<u16>,
    /// Every request answered 500, as a control plane that cannot serve (500 rather than
    /// 503: kube-rs retries a 503 for minutes).
    down: bool,
}

#[derive(Default)]
struct Shared {
    store: Mutex<store::Store>,
    resources: Mutex<Vec<Resource>>,
    calls: Mutex<Vec<Call>>,
    faults: Mutex<Faults>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock has already failed; the data is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn resource(&self, api_version: &str, plural: &str) -> Option<Resource> {
        lock(&self.resources)
            .iter()
            .find(|r| r.api_version == api_version && r.plural == plural)
            .cloned()
    }
}

/// The running server; stopped when dropped.
pub struct FakeApiServer {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server on a free loopback port, knowing [`resource::builtin`] kinds.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        *lock(&shared.resources) = resource::builtin();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let app = routes::router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake API server serves");
        });
        Self { url, shared, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of this server, in namespace `default`.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("the server's URL is a URI"));
        kube::Client::try_from(config).expect("a client for the fake API server")
    }

    /// Teaches the server another kind (a custom resource).
    pub fn register(&self, r: Resource) {
        let mut all = lock(&self.shared.resources);
        all.retain(|x| !(x.api_version == r.api_version && x.plural == r.plural));
        all.push(r);
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    pub fn clear_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    fn known(&self, api_version: &str, plural: &str) -> Resource {
        self.shared
            .resource(api_version, plural)
            .unwrap_or_else(|| panic!("{api_version} {plural} is not registered"))
    }

    pub fn get(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let r = self.known(api_version, plural);
        lock(&self.shared.store).get(&r, ns, name).cloned()
    }

    /// The objects of a kind in `ns` (`None`: every namespace).
    pub fn list(&self, api_version: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let r = self.known(api_version, plural);
        lock(&self.shared.store).list(&r, ns).cloned().collect()
    }

    /// Creates an object, as another client of the cluster would.
    pub fn create(&self, api_version: &str, plural: &str, ns: &str, o: Value) -> Value {
        let r = self.known(api_version, plural);
        lock(&self.shared.store)
            .create(&r, ns, o)
            .unwrap_or_else(|e| panic!("{}", e.message))
    }

    /// Sets an object's status, as the cluster's own controllers would.
    pub fn set_status(&self, api_version: &str, plural: &str, ns: &str, name: &str, status: Value) {
        let r = self.known(api_version, plural);
        lock(&self.shared.store)
            .update(
                &r,
                ns,
                name,
                serde_json::json!({ "status": status }),
                Part::Status,
            )
            .unwrap_or_else(|e| panic!("{}", e.message));
    }

    /// Changes an object behind its owner's back: `change` gets the object to edit.
    pub fn edit(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let r = self.known(api_version, plural);
        let mut store = lock(&self.shared.store);
        let mut o = store.get(&r, ns, name).cloned().expect("the object exists");
        change(&mut o);
        o["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        store
            .update(&r, ns, name, o, Part::Main)
            .unwrap_or_else(|e| panic!("{}", e.message));
    }

    /// Deletes an object as another client would (finalizers still hold it).
    pub fn delete(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> bool {
        let r = self.known(api_version, plural);
        lock(&self.shared.store).delete(&r, ns, name).is_ok()
    }

    /// The next `n` requests are answered with `code` (and a `Status` saying so).
    pub fn fail_next(&self, n: usize, code: u16) {
        lock(&self.shared.faults)
            .failing
            .extend(std::iter::repeat_n(code, n));
    }

    /// While down, every request is answered 500.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.faults).down = down;
    }
}
