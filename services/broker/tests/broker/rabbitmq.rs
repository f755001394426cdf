//! RabbitMQ vhosts on the real local server (management API on 15672): the handed-over user
//! logs in and may declare queues in its vhost only, a removed user is put back under the
//! repair policy, and deprovisioning removes the vhost and the user.

use broker::config::SharedTarget;
use keel_service::config::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const API: &str = "http://127.0.0.1:15672";

fn admin(method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, format!("{API}/{path}"))
        .basic_auth("guest", Some("guest"))
}

async fn status_as(user: &str, password: &str, method: reqwest::Method, path: &str) -> StatusCode {
    client()
        .request(method, format!("{API}/{path}"))
        .basic_auth(user, Some(password))
        .json(&json!({"durable": true}))
        .send()
        .await
        .expect("RabbitMQ's management API on 127.0.0.1:15672 (is the plugin enabled?)")
        .status()
}

#[tokio::test]
async fn a_vhost_and_its_user_are_made_repaired_and_removed() {
    let db = database().await;
    let app = watching(&db.url, |c| {
        c.rabbitmq = Some(SharedTarget {
            admin_url: Secret::new("http://guest:guest@127.0.0.1:15672".to_owned()),
            host: None,
        })
    })
    .await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "queue", "resourceName": "tasks", "namespace": ns, "team": "ops",
        "callbackUrl": callback, "spec": {"engine": "rabbitmq", "driftPolicy": "repair"},
    });
    let id = provision_ready(&app, request).await;
    let r = resource(&app, &ns, "tasks").await;
    assert_eq!(r["desiredSpec"]["version"], "3", "{r}");
    assert_eq!(
        (r["endpoint"].as_str(), r["port"].as_i64()),
        (Some("127.0.0.1"), Some(5672))
    );

    let creds = take_secret(&app, &ns, "tasks").await;
    let user = creds["username"].as_str().unwrap().to_owned();
    let password = creds["password"].as_str().unwrap().to_owned();
    let vhost = creds["database"].as_str().unwrap().to_owned();
    // The server checks the password: the user logs in, a wrong password does not.
    assert_eq!(
        status_as(&user, &password, reqwest::Method::GET, "api/whoami").await,
        StatusCode::OK
    );
    assert_eq!(
        status_as(&user, "wrong", reqwest::Method::GET, "api/whoami").await,
        StatusCode::UNAUTHORIZED
    );
    let own = status_as(
        &user,
        &password,
        reqwest::Method::PUT,
        &format!("api/queues/{vhost}/jobs"),
    )
    .await;
    assert!(own.is_success(), "declaring a queue in its vhost: {own}");
    let other = status_as(
        &user,
        &password,
        reqwest::Method::PUT,
        "api/queues/%2F/jobs",
    )
    .await;
    assert!(
        other.is_client_error(),
        "the default vhost is not its: {other}"
    );
    let limits: Value = admin(reqwest::Method::GET, &format!("api/vhost-limits/{vhost}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits[0]["value"]["max-connections"], 10, "{limits}");

    // The user deleted behind the broker's back: put back with the same password.
    admin(reqwest::Method::DELETE, &format!("api/users/{user}"))
        .send()
        .await
        .unwrap();
    let last = repaired(&app, &ns, "tasks").await;
    assert_eq!(
        last["message"],
        format!(
            "Drift repaired: Missing: user {user} (removed outside the broker); Missing: permissions of user {user} on vhost {vhost} (removed outside the broker)"
        ),
        "{last}"
    );
    assert_eq!(
        status_as(&user, &password, reqwest::Method::GET, "api/whoami").await,
        StatusCode::OK
    );

    deprovision(&app, &id, "queue", "tasks", &ns, &callback).await;
    for path in [format!("api/vhosts/{vhost}"), format!("api/users/{user}")] {
        let status = admin(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
