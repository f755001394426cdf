//! kube-rs, unchanged, against the fake: the calls a broker and a controller make.

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Secret};
use keel_kube_fake::FakeApiServer;
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

#[tokio::test]
async fn typed_clients_create_apply_list_patch_status_and_delete() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    let made = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s", "labels": {"app": "db"}}, "stringData": {"k": "v"}})).unwrap(),
        )
        .await
        .unwrap();
    assert!(made.metadata.uid.is_some() && made.metadata.resource_version.is_some());
    let again = secrets
        .create(&PostParams::default(), &made)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, kube::Error::Api(s) if s.code == 409),
        "{again:?}"
    );
    let listed = secrets
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        secrets
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "team");
    let apply = PatchParams::apply("keel-test").force();
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}});
    let first = sets.patch("db", &apply, &Patch::Apply(&set)).await.unwrap();
    let mut three = set.clone();
    three["spec"]["replicas"] = json!(3);
    let second = sets
        .patch("db", &apply, &Patch::Apply(&three))
        .await
        .unwrap();
    assert_eq!(second.spec.unwrap().replicas, Some(3));
    assert_eq!(first.metadata.generation, Some(1));
    assert_eq!(second.metadata.generation, Some(2));
    let applied = server
        .calls()
        .into_iter()
        .find(|c| c.method == "PATCH")
        .unwrap();
    assert_eq!(
        applied.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(applied.param("fieldManager").as_deref(), Some("keel-test"));
    assert_eq!(
        applied.path,
        "/apis/apps/v1/namespaces/team/statefulsets/db"
    );

    sets.patch_status(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 3, "readyReplicas": 2}})),
    )
    .await
    .unwrap();
    let now = sets.get("db").await.unwrap();
    assert_eq!(now.status.unwrap().ready_replicas, Some(2));

    secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["keel/x"]}})),
        )
        .await
        .unwrap();
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    assert!(
        secrets
            .get("s")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some(),
        "held by its finalizer"
    );
    let json_patch: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "keel/x"}, {"op": "remove", "path": "/metadata/finalizers/0"}])).unwrap();
    secrets
        .patch("s", &PatchParams::default(), &Patch::Json::<()>(json_patch))
        .await
        .unwrap();
    assert!(secrets.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn the_watcher_sees_what_exists_then_each_change() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let secrets: Api<Secret> = Api::namespaced(client, "team");
    server.create(
        "v1",
        "secrets",
        "team",
        json!({"metadata": {"name": "before"}}),
    );
    let mut seen = watcher(secrets.clone(), watcher::Config::default())
        .applied_objects()
        .map_ok(|s| s.metadata.name.unwrap_or_default())
        .boxed();
    assert_eq!(seen.try_next().await.unwrap().as_deref(), Some("before"));
    server.create(
        "v1",
        "secrets",
        "team",
        json!({"metadata": {"name": "after"}}),
    );
    server.create(
        "v1",
        "secrets",
        "elsewhere",
        json!({"metadata": {"name": "other"}}),
    );
    server.edit("v1", "secrets", "team", "before", |o| {
        o["data"] = json!({"k": "dg=="})
    });
    assert_eq!(seen.try_next().await.unwrap().as_deref(), Some("after"));
    assert_eq!(seen.try_next().await.unwrap().as_deref(), Some("before"));
}

#[tokio::test]
async fn faults_reach_the_client() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "team");
    server.fail_next(1, 500);
    let err = secrets.get_opt("x").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 500),
        "{err:?}"
    );
    assert!(secrets.get_opt("x").await.unwrap().is_none());
    server.set_down(true);
    assert!(server.client().apiserver_version().await.is_err());
    server.set_down(false);
    assert_eq!(
        server.client().apiserver_version().await.unwrap().minor,
        "33"
    );
}
