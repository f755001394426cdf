//! Hooks as they run: through the sidecar (which checks its own whitelist), in process with
//! a cleared environment and a timeout, symlinks out of the trusted directories refused, and
//! the whitelist read again when its file changes.

use std::{path::PathBuf, time::Duration};

use externalsource_controller::{
    crd::{HookEnv, HookSpec, RetryPolicy},
    domain::{policy::HookFailure, whitelist::Whitelist},
    hooks::{Runner, sidecar},
};

fn hook(command: &str, args: &[&str]) -> HookSpec {
    HookSpec {
        name: command.into(),
        command: command.into(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        timeout: "5s".into(),
        retry_policy: RetryPolicy::Fail,
        env: vec![],
    }
}

fn whitelist(yaml: &str) -> Whitelist {
    Whitelist::parse(yaml).unwrap()
}

const TR: &str = "commands:\n  tr:\n    allowed: true\n    argumentPatterns: ['a-z', 'A-Z']\n";

fn system() -> Vec<PathBuf> {
    vec!["/usr/bin".into(), "/bin".into()]
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_sidecar_runs_what_its_own_whitelist_allows() {
    keel_service::tls::install_crypto_provider();
    let executor = Runner::new(whitelist(TR), system());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, sidecar::router(executor))
            .await
            .unwrap()
    });
    // The controller's whitelist allows more than the sidecar's: the sidecar still refuses.
    let wide = format!("{TR}  sh:\n    allowed: true\n    argumentPatterns: ['.*']\n");
    let controller =
        Runner::new(whitelist(&wide), system()).through_sidecar(&url, reqwest::Client::new());
    assert_eq!(
        controller
            .run(&hook("tr", &["a-z", "A-Z"]), b"abc".to_vec())
            .await
            .unwrap(),
        b"ABC"
    );
    let refused = controller
        .run(&hook("sh", &["-c", "id"]), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, HookFailure::Denied { reason, .. } if reason.contains("hook executor refused")),
        "{refused:?}"
    );
    // Neither does the controller send what its own whitelist refuses.
    let local = controller
        .run(&hook("rm", &["-rf", "/"]), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&local, HookFailure::Denied { reason, .. } if reason.contains("not allowed")),
        "{local:?}"
    );
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{url}/execute"))
        .json(&serde_json::json!({"command": "tr", "args": ["a-z", "A-Z"], "stdin": "not base64!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let answer = client
        .post(format!("{url}/execute"))
        .json(&serde_json::json!({"command": "rm", "args": ["-rf", "/"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let failing = client
        .post(format!("{url}/execute"))
        .json(&serde_json::json!({"command": "tr", "args": ["a-z"], "stdin": ""}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = failing.json().await.unwrap();
    assert_ne!(body["exitCode"], 0, "tr with one set fails: {body}");
}

#[tokio::test]
async fn commands_run_with_a_cleared_environment_and_are_killed_at_their_timeout() {
    let yaml = "commands:\n  env:\n    allowed: true\n  sleep:\n    allowed: true\n    argumentPatterns: ['[0-9]+']\n";
    let runner = Runner::new(whitelist(yaml), system());
    let mut h = hook("env", &[]);
    h.env = vec![HookEnv {
        name: "GREETING".into(),
        value: "hello".into(),
    }];
    let out = String::from_utf8(runner.run(&h, Vec::new()).await.unwrap()).unwrap();
    let mut vars: Vec<&str> = out.lines().map(|l| l.split('=').next().unwrap()).collect();
    vars.sort_unstable();
    assert_eq!(vars, ["GREETING", "LANG", "PATH"], "{out}");
    assert!(out.contains("GREETING=hello"));
    let mut slow = hook("sleep", &["5"]);
    slow.timeout = "200ms".into();
    let started = std::time::Instant::now();
    let err = runner.run(&slow, Vec::new()).await.unwrap_err();
    assert!(
        matches!(&err, HookFailure::Failed { reason, .. } if reason.contains("timed out")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn symlinks_out_of_the_trusted_directories_are_refused() {
    let tr = ["/usr/bin/tr", "/bin/tr"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("coreutils' tr");
    let linked = scratch("linked");
    std::os::unix::fs::symlink(tr, linked.join("tr")).unwrap();
    let runner = Runner::new(whitelist(TR), vec![linked.clone()]);
    let err = runner
        .run(&hook("tr", &["a-z", "A-Z"]), b"x".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookFailure::Denied { reason, .. } if reason.contains("outside the trusted")),
        "{err:?}"
    );
    // A real program in the trusted directory runs.
    let copied = scratch("copied");
    std::fs::copy(tr, copied.join("tr")).unwrap();
    let runner = Runner::new(whitelist(TR), vec![copied.clone()]);
    assert_eq!(
        runner
            .run(&hook("tr", &["a-z", "A-Z"]), b"x".to_vec())
            .await
            .unwrap(),
        b"X"
    );
    // Not installed in the trusted directories: refused, whatever the system has.
    let err = runner.run(&hook("tr2", &[]), Vec::new()).await.unwrap_err();
    assert!(matches!(err, HookFailure::Denied { .. }));
    let _ = std::fs::remove_dir_all(linked);
    let _ = std::fs::remove_dir_all(copied);
}

/// Replaces the file at once, as a ConfigMap's mount does: a write in place can be read half
/// done (empty, which is a valid whitelist of nothing).
fn replace(path: &std::path::Path, contents: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn the_whitelist_is_read_again_when_it_changes() {
    let dir = scratch("reload");
    let path = dir.join("whitelist.yaml");
    std::fs::write(&path, "commands: {}\n").unwrap();
    let runner = Runner::new(whitelist("commands: {}\n"), system());
    let watching = runner.watch(
        path.clone(),
        Some(b"commands: {}\n".to_vec()),
        Duration::from_millis(50),
    );
    let upper = hook("tr", &["a-z", "A-Z"]);
    assert!(matches!(
        runner.run(&upper, b"a".to_vec()).await,
        Err(HookFailure::Denied { .. })
    ));
    replace(&path, TR);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = runner.run(&upper, b"a".to_vec()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the new whitelist was not taken: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken file keeps the last good whitelist.
    replace(&path, "commands: [");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runner.run(&upper, b"a".to_vec()).await.unwrap(), b"A");
    watching.abort();
    let _ = std::fs::remove_dir_all(dir);
}
