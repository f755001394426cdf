//! What the upload endpoint refuses, and that a refused payload leaves nothing behind.

mod support;

use std::io::Write as _;

use serde_json::{Value, json};
use support::*;

fn identity(org: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(json!({"identity": {"org_id": org}}).to_string())
}

const HCCM: &str = "application/vnd.redhat.hccm.tar+tgz";

fn multipart(part: &str, content_type: &str, body: &[u8]) -> (String, Vec<u8>) {
    let boundary = "keel-test-boundary";
    let mut out = Vec::new();
    write!(
        out,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"payload.tar.gz\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .unwrap();
    out.extend_from_slice(body);
    write!(out, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), out)
}

/// A gzip tarball of `files`.
fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *body).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn manifest(cluster: &str) -> Vec<u8> {
    json!({
        "uuid": "0f6e2a5c-1d37-4e53-9d5a-0c1f3f7e2b11", "cluster_id": cluster,
        "date": "2026-11-01T00:00:00+00:00", "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-11-02T00:00:00+00:00", "files": ["x_openshift_report.0.csv"]
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn bad_payloads_are_refused_and_nothing_is_kept() {
    let db = database().await;
    let pool = pool(&db).await;
    let dir = tempfile_dir();
    let mut config = config(&db, &dir);
    config.max_upload = 64 * 1024;
    let app = start(&config).await;
    let url = format!("http://{}/api/ingress/v1/upload", app.addr);
    let client = reqwest::Client::new();
    let good = tarball(&[
        ("x_openshift_report.0.csv", b"a,b\n1,2\n"),
        ("manifest.json", &manifest("c1")),
    ]);
    let send = |org: Option<&str>, part: &str, ct: &str, body: &[u8]| {
        let (content_type, bytes) = multipart(part, ct, body);
        let mut req = client
            .post(&url)
            .header("content-type", content_type)
            .body(bytes);
        if let Some(org) = org {
            req = req.header("x-rh-identity", identity(org));
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let cases: Vec<(u16, (u16, Value))> = vec![
        (401, send(None, "file", HCCM, &good).await),
        (
            415,
            send(
                Some("1"),
                "file",
                "application/vnd.redhat.advisor.collection+tgz",
                &good,
            )
            .await,
        ),
        (
            415,
            send(Some("1"), "file", "application/gzip", &good).await,
        ),
        (400, send(Some("1"), "other", HCCM, &good).await),
        (
            400,
            send(Some("1"), "file", HCCM, b"\x1f\x8b\x08 not a tarball").await,
        ),
        (
            400,
            send(Some("1"), "file", HCCM, &tarball(&[("x.csv", b"a\n")])).await,
        ),
        (
            400,
            send(
                Some("1"),
                "file",
                HCCM,
                &tarball(&[("manifest.json", b"{\"cluster_id\":\"../x\"}")]),
            )
            .await,
        ),
        (
            413,
            send(Some("1"), "file", HCCM, &vec![7u8; 128 * 1024]).await,
        ),
    ];
    // Not multipart at all: the identity is checked first, then the body, both in JSON.
    let plain = client
        .post(&url)
        .header("x-rh-identity", identity("1"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let body: Value = plain.json().await.unwrap();
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("multipart"),
        "{body}"
    );
    let anonymous = client.post(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    for (want, (got, body)) in &cases {
        assert_eq!(got, want, "{body}");
        if *got != 413 {
            assert!(
                body["errors"][0]["detail"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{body}"
            );
        }
    }
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM ingestion.uploads")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no payload stored"
    );

    // The same payload, well formed: 202 with the ingress' body, kept and recorded.
    let (status, body) = send(Some("42"), "file", HCCM, &good).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["upload"]["org_id"], "42");
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    let (state, cluster): (String, String) =
        sqlx::query_as("SELECT state, cluster_id FROM ingestion.uploads WHERE request_id = $1")
            .bind(&request_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(cluster, "c1");
    assert!(["received", "waiting"].contains(&state.as_str()), "{state}");
    assert!(dir.join(format!("42/c1/{request_id}.tar.gz")).exists());
    app.stop().await;
}
