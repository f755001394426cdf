//! `keel up`'s command line: it offers every option of the binaries it runs except the ones it
//! decides itself, and refuses settings that contradict what it runs.

mod support;

use std::{collections::BTreeSet, process::Command};

use support::workspace_bin;

/// The long options a `--help` lists.
fn options(bin: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(workspace_bin(bin))
        .args(args)
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{bin} {args:?} --help");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split([' ', '<']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn up_offers_the_services_options_but_none_it_overrides() {
    let sources = options("sources-api", &[]);
    let listener = options("listener", &[]);
    let ingestion = options("ingestion", &[]);
    let broker = options("broker", &[]);
    let up = options("keel", &["up"]);
    assert!(sources.contains("metrics-port") && listener.contains("metrics-port"));
    assert!(sources.contains("psks") && listener.contains("sources-psk"));
    // `up` serves metrics on each service's own port, and names the listener's port apart.
    assert!(ingestion.contains("ingress-port") && ingestion.contains("polling-timer"));
    let mut want: BTreeSet<String> = sources.union(&listener).cloned().collect();
    want.extend(ingestion);
    want.extend(broker);
    want.remove("metrics-port");
    want.extend(["services", "data-dir", "listener-port", "broker-port"].map(str::to_owned));
    assert_eq!(up, want);
}

#[test]
fn up_refuses_another_sources_api_while_running_its_own() {
    let data = tempfile_dir();
    let out = Command::new(workspace_bin("keel"))
        .arg("up")
        .env_clear()
        .env("KEEL_DATA_DIR", &data)
        .env("SOURCES_API_URL", "http://sources.example:8000")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("keel runs");
    let _ = std::fs::remove_dir_all(&data);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "SOURCES_API_URL names another sources-api while Keel's runs in this process"
        ),
        "{stderr}"
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
