//! `mysql` databases on the real local MariaDB: the handed-over password logs in (MariaDB
//! checks it over TCP), the user reaches its own database only, a dropped user is put back
//! under the repair policy, and deprovisioning leaves nothing.

use broker::{config::SharedTarget, drivers::Names};
use keel_service::config::Secret;
use serde_json::json;
use sqlx::MySqlPool;

use crate::common::*;

const MARIADB: &str = "mysql://root@127.0.0.1:3306";

async fn admin() -> MySqlPool {
    MySqlPool::connect(MARIADB)
        .await
        .expect("MariaDB on 127.0.0.1:3306 as root (is it running?)")
}

async fn login(user: &str, password: &str, database: &str) -> Result<MySqlPool, sqlx::Error> {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&format!(
            "mysql://{user}:{password}@127.0.0.1:3306/{database}"
        ))
        .await
}

#[tokio::test]
async fn a_mariadb_database_is_usable_with_its_credentials_repaired_and_removed() {
    let db = database().await;
    let admin = admin().await;
    let app = watching(&db.url, |c| {
        c.mysql = Some(SharedTarget {
            admin_url: Secret::new(MARIADB.to_owned()),
            host: None,
        })
    })
    .await;
    let (callback, _) = receiver().await;
    let ns = namespace();
    let spec = json!({"engine": "mysql", "size": "medium", "driftPolicy": "repair"});
    let id = provision(&app, &ns, "shop", &callback, spec).await;
    eventually("Ready", || async { phase(&app.base, &id).await == "Ready" }).await;
    let r = resource(&app, &ns, "shop").await;
    // The local server is MariaDB 10.11: the catalogue's version it runs.
    assert_eq!(r["desiredSpec"]["version"], "10.11", "{r}");
    assert_eq!(r["port"], 3306);

    let creds = take_secret(&app, &ns, "shop").await;
    let user = creds["username"].as_str().unwrap().to_owned();
    let password = creds["password"].as_str().unwrap().to_owned();
    let schema = creds["database"].as_str().unwrap().to_owned();
    assert_eq!(user, Names::new(&ns, "shop").object);

    let pool = login(&user, &password, &schema)
        .await
        .expect("the credentials log in");
    sqlx::raw_sql("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2)")
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let foreign = sqlx::query("SELECT * FROM mysql.user")
        .fetch_all(&pool)
        .await;
    assert!(foreign.is_err(), "the user reaches its own database only");
    pool.close().await;
    assert!(login(&user, "wrong-password", &schema).await.is_err());
    let limit: i64 = sqlx::query_scalar(
        "SELECT CAST(max_user_connections AS SIGNED) FROM mysql.user WHERE User = ? AND Host = '%'",
    )
    .bind(&user)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(limit, 25);

    // The user dropped behind the broker's back: put back with the same password.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP USER '{user}'@'%'")))
        .execute(&admin)
        .await
        .unwrap();
    let last = repaired(&app, &ns, "shop").await;
    assert_eq!(
        last["message"],
        format!(
            "Drift repaired: Missing: user {user} (removed outside the broker); Missing: privileges of user {user} on database {schema} (removed outside the broker)"
        ),
        "{last}"
    );
    let pool = login(&user, &password, &schema)
        .await
        .expect("the same password logs in again");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2, "the data stayed");
    pool.close().await;

    deprovision(&app, &id, "database", "shop", &ns, &callback).await;
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM mysql.user WHERE User = ?), \
                (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)",
    )
    .bind(&user)
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
    app.shutdown.trigger();
    app.task.await.unwrap().unwrap();
}
