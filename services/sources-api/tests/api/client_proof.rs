//! A client generated from the checked-in OpenAPI document by a standard generator
//! (openapi-python-client) creates a source, an application and an authentication and reads
//! them back. `scripts/test` installs the generator and sets `KEEL_PYTHON_VENV`.

use std::{path::PathBuf, process::Command};

use crate::helpers::{PSK, TestApp};

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("KEEL_PYTHON_VENV").expect(
        "KEEL_PYTHON_VENV is not set: run the tests through scripts/test, which installs openapi-python-client",
    ))
}

#[tokio::test]
async fn a_generated_python_client_creates_and_reads_back() {
    let venv = venv();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("keel-client-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&out).unwrap();
    let generated = Command::new(venv.join("bin/openapi-python-client"))
        .args(["generate", "--meta", "none", "--output-path"])
        .arg(out.join("client"))
        .arg("--path")
        .arg(root.join("openapi/sources-api.json"))
        .arg("--config")
        .arg(root.join("scripts/client-proof/config.yaml"))
        .output()
        .expect("openapi-python-client runs");
    assert!(
        generated.status.success(),
        "generation failed: {}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let app = TestApp::spawn().await;
    let base = format!("{}/api/sources/v3.1", app.base);
    let proof = tokio::process::Command::new(venv.join("bin/python"))
        .arg(root.join("scripts/client-proof/proof.py"))
        .arg(&out)
        .arg(&base)
        .arg(PSK)
        .output()
        .await
        .expect("python runs");
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        proof.status.success(),
        "the generated client failed:\n{}{}",
        String::from_utf8_lossy(&proof.stdout),
        String::from_utf8_lossy(&proof.stderr)
    );
    // What the client did is really in the database.
    for table in ["sources", "applications", "authentications"] {
        assert_eq!(app.count(table).await, 1, "{table}");
    }
}
