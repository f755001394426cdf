//! Caches as ACL users on the real local Redis: the user may touch only its own keys, a
//! removed user is put back under the repair policy, and deprovisioning removes the user
//! and its keys.

use broker::config::SharedTarget;
use keel_service::config::Secret;
use serde_json::json;

use crate::common::*;

const REDIS: &str = "redis://127.0.0.1:6379";

async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 (is it running?)")
}

async fn login(
    user: &str,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://{user}:{password}@127.0.0.1:6379"))?
        .get_multiplexed_async_connection()
        .await
}

async fn user_exists(user: &str) -> bool {
    let found: Option<redis::Value> = redis::cmd("ACL")
        .arg("GETUSER")
        .arg(user)
        .query_async(&mut admin().await)
        .await
        .unwrap();
    found.is_some()
}

#[tokio::test]
async fn a_cache_user_sees_only_its_keys_is_repaired_and_goes_with_its_keys() {
    let db = database().await;
    let app = watching(&db.url, |c| {
        c.redis = Some(SharedTarget {
            admin_url: Secret::new(REDIS.to_owned()),
            host: None,
        })
    })
    .await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let request = json!({
        "resourceType": "cache", "resourceName": "sessions", "namespace": ns, "team": "web",
        "callbackUrl": callback, "spec": {"engine": "redis", "driftPolicy": "repair"},
    });
    let id = provision_ready(&app, request).await;
    let r = resource(&app, &ns, "sessions").await;
    // The local server is 7.0.x: the catalogue's 7.0 is what it serves.
    assert_eq!(r["desiredSpec"]["version"], "7.0", "{r}");
    assert_eq!(
        (r["endpoint"].as_str(), r["port"].as_i64()),
        (Some("127.0.0.1"), Some(6379))
    );

    let creds = take_secret(&app, &ns, "sessions").await;
    let (user, password) = (
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
    );
    let prefix = creds["keyPrefix"].as_str().unwrap().to_owned();
    assert_eq!(prefix, format!("{user}:"));
    assert!(creds["database"].is_null(), "{creds}");

    let mut conn = login(user, password)
        .await
        .expect("the handed-over credentials log in");
    redis::cmd("SET")
        .arg(format!("{prefix}a"))
        .arg("1")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg(format!("{prefix}a"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "1");
    let other = redis::cmd("SET")
        .arg("not-mine")
        .arg("1")
        .query_async::<()>(&mut conn)
        .await;
    let refused = other.unwrap_err().to_string();
    assert!(
        refused.contains("no permissions to access one of the keys"),
        "{refused}"
    );
    let flush = redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await;
    assert!(flush.is_err(), "dangerous commands are not allowed");
    assert!(login(user, "wrong-password").await.is_err());

    // Removed behind the broker's back: put back with the same password.
    redis::cmd("ACL")
        .arg("DELUSER")
        .arg(user)
        .query_async::<()>(&mut admin().await)
        .await
        .unwrap();
    let last = repaired(&app, &ns, "sessions").await;
    assert_eq!(
        last["message"],
        format!(
            "Drift repaired: Missing: user {user} (removed outside the broker); Missing: login of user {user} (removed outside the broker); Missing: access of user {user} to keys {prefix}* (removed outside the broker)"
        ),
        "{last}"
    );
    assert!(login(user, password).await.is_ok());

    deprovision(&app, &id, "cache", "sessions", &ns, &callback).await;
    assert!(!user_exists(user).await);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut admin().await)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
