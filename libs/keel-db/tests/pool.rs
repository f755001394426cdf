//! The pool's check of a connection it hands out: a connection back moments ago is used as it
//! is; one idle for longer than `PING_AFTER_IDLE` is pinged first, so a session the server
//! ended meanwhile (a restart, an administrator) is replaced instead of failing a request.

use keel_db::{PING_AFTER_IDLE, testing::TestDatabase};
use sqlx::PgPool;

fn server_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests through scripts/test, which starts PostgreSQL",
    )
}

async fn pool_of_one() -> (TestDatabase, PgPool) {
    let database = TestDatabase::create(&server_url(), &[]).await.unwrap();
    let pool = keel_db::connect(&database.url, "public", 1).await.unwrap();
    (database, pool)
}

async fn backend(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

/// Ends `pid`'s session from another connection, and waits until it is gone.
async fn terminate(url: &str, pid: i32) {
    let admin = keel_db::connect(url, "public", 1).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(ended, "the session {pid} ended");
    admin.close().await;
}

#[tokio::test]
async fn a_connection_idle_past_the_ping_delay_whose_session_ended_is_replaced() {
    let (database, pool) = pool_of_one().await;
    let first = backend(&pool).await.unwrap();
    terminate(&database.url, first).await;
    tokio::time::sleep(PING_AFTER_IDLE + std::time::Duration::from_millis(200)).await;

    let second = backend(&pool)
        .await
        .expect("the pool pinged the dead connection and opened a new one");
    assert_ne!(second, first, "a new session serves the query");
}

#[tokio::test]
async fn a_connection_back_moments_ago_is_handed_out_without_a_ping() {
    let (database, pool) = pool_of_one().await;
    let first = backend(&pool).await.unwrap();
    // Within the delay the connection is trusted as it is: the session ended under it shows
    // in the next query (a ping would have replaced it and hidden the end).
    terminate(&database.url, first).await;
    assert!(
        backend(&pool).await.is_err(),
        "the recently used connection was handed out unchecked"
    );
    // The failed connection is not handed out again.
    assert_ne!(backend(&pool).await.unwrap(), first);
}
