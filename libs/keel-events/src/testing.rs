//! Test support (feature `testing`): a Kafka-protocol broker of a test's own, and who holds
//! the library's advisory locks.

use std::time::Duration;

use keel_service::KafkaSettings;
use sqlx::PgPool;

/// Waits until `holders` sessions other than `except` hold advisory locks with `keys` keys in
/// `db`'s database (1: a relay's, 2: embedded-log members'); returns their pids.
pub async fn advisory_lock_holders(
    db: &PgPool,
    keys: i32,
    holders: usize,
    except: &[i32],
) -> Vec<i32> {
    for _ in 0..200 {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = $1 \
             AND granted AND pid <> ALL($2) \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(keys)
        .bind(except)
        .fetch_all(db)
        .await
        .unwrap();
        if pids.len() == holders {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{holders} sessions never held advisory locks with {keys} keys together");
}

/// A tansu broker of a test's own (`TANSU_BIN`, which `scripts/test` builds), on a free
/// port, that the test can stop and start; its storage is removed when dropped.
pub struct TansuBroker {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl TansuBroker {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tansu-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = Self {
            dir,
            port,
            child: None,
        };
        broker.up().await;
        broker
    }

    /// How to reach it.
    pub fn kafka(&self) -> KafkaSettings {
        KafkaSettings::plain(format!("127.0.0.1:{}", self.port))
    }

    /// Starts it (again), and waits until it listens.
    pub async fn up(&mut self) {
        let bin = std::env::var("TANSU_BIN")
            .expect("TANSU_BIN is not set: run the tests through scripts/test");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = tokio::process::Command::new(bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tansu did not listen");
    }

    /// Stops it, as a crash would.
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
