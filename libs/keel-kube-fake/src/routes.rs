//! The API server's HTTP: `/api/v1/...` and `/apis/<group>/<version>/...` paths, namespaced
//! or not, with `/status`; `/version`. Errors are `Status` bodies, as kube-rs expects them.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::{
    Call, Shared, lock,
    resource::{Failure, Resource},
    selector::Selector,
    store::{Change, Part, apply_merge},
};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn answer(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn failure(f: &Failure) -> Response {
    answer(f.code, &f.body())
}

/// What a path names.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn target(shared: &Shared, path: &str) -> Result<Target, Failure> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ((*v).to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return Err(Failure::new(404, "NotFound", format!("no route {path}"))),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some((*n).to_owned()), None),
        [p, n, s] => (*p, Some((*n).to_owned()), Some(*s)),
        _ => return Err(Failure::new(404, "NotFound", format!("no route {path}"))),
    };
    let resource = shared.resource(&api_version, plural).ok_or_else(|| {
        Failure::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({api_version} {plural})"),
        )
    })?;
    match sub {
        None | Some("status") => {}
        Some(other) => {
            return Err(Failure::new(
                404,
                "NotFound",
                format!("no subresource {other}"),
            ));
        }
    }
    Ok(Target {
        resource,
        namespace,
        name,
        status: sub.is_some(),
    })
}

fn params(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let query = uri.query().unwrap_or_default().to_owned();
    lock(&shared.calls).push(Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: parsed.clone(),
    });
    {
        let mut faults = lock(&shared.faults);
        let code = if faults.down {
            Some(500)
        } else if faults.failing.is_empty() {
            None
        } else {
            Some(faults.failing.remove(0))
        };
        if let Some(code) = code {
            return failure(&Failure::new(code, "InternalError", "injected by the test"));
        }
    }
    if uri.path() == "/version" {
        return answer(200, &version());
    }
    let t = match target(&shared, uri.path()) {
        Ok(t) => t,
        Err(f) => return failure(&f),
    };
    let params = params(&query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !body.is_empty() && parsed.is_none() {
        return failure(&Failure::new(400, "BadRequest", "the body is not JSON"));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let result = match (&method, &t.name) {
        (&Method::GET, None) => {
            let selector = match Selector::new(param("labelSelector"), param("fieldSelector")) {
                Ok(s) => s,
                Err(e) => return failure(&Failure::new(400, "BadRequest", e)),
            };
            if matches!(param("watch"), Some("true" | "1")) {
                return watch(
                    &shared,
                    &t,
                    selector,
                    param("resourceVersion"),
                    param("timeoutSeconds"),
                );
            }
            return list(&shared, &t, &selector);
        }
        (&Method::GET, Some(name)) => {
            let store = lock(&shared.store);
            store
                .get(&t.resource, &ns, name)
                .cloned()
                .ok_or_else(|| Failure::not_found(&t.resource, name))
                .map(|o| (200, o))
        }
        (&Method::POST, None) => lock(&shared.store)
            .create(&t.resource, &ns, parsed.unwrap_or(Value::Null))
            .map(|o| (201, o)),
        (&Method::PUT, Some(name)) => {
            let part = if t.status { Part::Status } else { Part::Main };
            lock(&shared.store)
                .update(&t.resource, &ns, name, parsed.unwrap_or(Value::Null), part)
                .map(|o| (200, o))
        }
        (&Method::PATCH, Some(name)) => {
            patch(&shared, &t, &ns, name, content_type.as_deref(), parsed)
        }
        (&Method::DELETE, Some(name)) => lock(&shared.store)
            .delete(&t.resource, &ns, name)
            .map(|o| (200, o)),
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not allowed here"),
        )),
    };
    match result {
        Ok((code, o)) => answer(code, &o),
        Err(f) => failure(&f),
    }
}

fn patch(
    shared: &Shared,
    t: &Target,
    ns: &str,
    name: &str,
    content_type: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), Failure> {
    let body = body.ok_or_else(|| Failure::new(400, "BadRequest", "a patch needs a body"))?;
    let part = if t.status { Part::Status } else { Part::Main };
    let mut store = lock(&shared.store);
    let current = store.get(&t.resource, ns, name).cloned();
    let next = match (content_type, current) {
        (Some("application/apply-patch+yaml"), None) if !t.status => {
            return store.create(&t.resource, ns, body).map(|o| (201, o));
        }
        (_, None) => return Err(Failure::not_found(&t.resource, name)),
        (Some("application/apply-patch+yaml"), Some(mut o)) => {
            apply_merge(&mut o, &body);
            o
        }
        (
            Some("application/merge-patch+json" | "application/strategic-merge-patch+json"),
            Some(mut o),
        ) => {
            json_patch::merge(&mut o, &body);
            o
        }
        (Some("application/json-patch+json"), Some(mut o)) => {
            // As the API server's json-patch does: testing a missing path against null holds.
            let body = match body {
                Value::Array(ops) => Value::Array(
                    ops.into_iter()
                        .filter(|op| {
                            !(op["op"] == "test"
                                && op["value"].is_null()
                                && op["path"].as_str().is_some_and(|p| o.pointer(p).is_none()))
                        })
                        .collect(),
                ),
                other => other,
            };
            let ops: json_patch::Patch = serde_json::from_value(body)
                .map_err(|e| Failure::new(400, "BadRequest", format!("not a JSON patch: {e}")))?;
            json_patch::patch(&mut o, &ops).map_err(|e| {
                Failure::new(422, "Invalid", format!("the patch does not apply: {e}"))
            })?;
            // A JSON patch names the version it read only through a `test` operation.
            o["metadata"]
                .as_object_mut()
                .map(|m| m.remove("resourceVersion"));
            o
        }
        (other, _) => {
            return Err(Failure::new(
                415,
                "UnsupportedMediaType",
                format!("the patch type {other:?} is not supported"),
            ));
        }
    };
    store
        .update(&t.resource, ns, name, next, part)
        .map(|o| (200, o))
}

fn list(shared: &Shared, t: &Target, selector: &Selector) -> Response {
    let store = lock(&shared.store);
    let items: Vec<Value> = store
        .list(&t.resource, t.namespace.as_deref())
        .filter(|o| selector.matches(o))
        .cloned()
        .collect();
    answer(
        200,
        &json!({
            "apiVersion": t.resource.api_version,
            "kind": format!("{}List", t.resource.kind),
            "metadata": {"resourceVersion": store.revision().to_string()},
            "items": items,
        }),
    )
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0+keel-fake",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A watch: the changes after `since` (or, without one, the current objects as `ADDED`),
/// then each change as it happens, one JSON object per line, until `timeoutSeconds`.
fn watch(
    shared: &Shared,
    t: &Target,
    selector: Selector,
    since: Option<&str>,
    timeout: Option<&str>,
) -> Response {
    let (api_version, plural, namespace) = (
        t.resource.api_version.clone(),
        t.resource.plural.clone(),
        t.namespace.clone(),
    );
    let wanted = move |c: &Change| {
        c.api_version == api_version
            && c.plural == plural
            && namespace
                .as_deref()
                .is_none_or(|ns| c.object["metadata"]["namespace"].as_str() == Some(ns))
            && selector.matches(&c.object)
    };
    let store = lock(&shared.store);
    let rx = store.changes.subscribe();
    let backlog: VecDeque<Change> = match since.and_then(|v| v.parse::<u64>().ok()) {
        Some(rv) if rv > 0 => store
            .history
            .iter()
            .filter(|c| c.revision > rv)
            .cloned()
            .collect(),
        _ => store
            .list(&t.resource, t.namespace.as_deref())
            .map(|o| Change {
                revision: store.revision(),
                api_version: t.resource.api_version.clone(),
                plural: t.resource.plural.clone(),
                kind: "ADDED",
                object: o.clone(),
            })
            .collect(),
    };
    drop(store);
    let seconds = timeout.and_then(|s| s.parse().ok()).unwrap_or(1800);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let lines = futures::stream::unfold(
        (backlog, rx),
        move |(mut backlog, mut rx): (VecDeque<Change>, broadcast::Receiver<Change>)| {
            let wanted = wanted.clone();
            async move {
                loop {
                    let change = match backlog.pop_front() {
                        Some(c) => c,
                        None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Ok(c)) => c,
                            // Too far behind, closed or timed out: the client watches again.
                            _ => return None,
                        },
                    };
                    if wanted(&change) {
                        let line = format!(
                            "{}\n",
                            json!({"type": change.kind, "object": change.object})
                        );
                        return Some((Ok::<_, std::convert::Infallible>(line), (backlog, rx)));
                    }
                }
            }
        },
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}
