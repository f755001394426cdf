//! What the process-level tests share: the database server, the workspace's binaries, ports.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// The PostgreSQL server scripts/test starts (`DATABASE_URL`).
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A binary of the workspace, beside this test's own (`cargo nextest run --workspace` builds
/// them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests through scripts/test (cargo nextest run --workspace)",
        path.display()
    );
    path
}

/// The JSON answer of `GET url`, as the tenant `org` when one is given.
pub async fn get_json(http: &reqwest::Client, url: &str, org: Option<&str>) -> serde_json::Value {
    let mut request = http.get(url);
    if let Some(org) = org {
        request = request.header("x-rh-sources-org-id", org);
    }
    request.send().await.unwrap().json().await.unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
