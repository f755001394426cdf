//! The bench's report data: made by Koku's nise (cached by size and month, since nise writes
//! some 10,000 rows a second), and the S3 it is served from (moto's, started here when none is
//! named).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use chrono::{Datelike as _, NaiveDate};

/// Where nise and moto are installed (scripts/test installs them).
pub(super) fn venv(named: Option<&Path>) -> PathBuf {
    named.map_or_else(
        || {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache/keel/ingest-venv")
        },
        Path::to_path_buf,
    )
}

/// A CUR month of about `rows` line items in `<cache>/aws-<month>-<instances>/`, laid out as
/// in the bucket (`bench/keel/<range>/…`); returns the directory and the report files.
pub(super) fn aws_month(
    venv: &Path,
    month: NaiveDate,
    rows: usize,
) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let next = (month + chrono::Months::new(1))
        .pred_opt()
        .context("a month's last day")?;
    let hours = 24 * next.day() as usize;
    // nise's EC2 generator writes one row an hour per instance; one S3 generator adds a few.
    let instances = rows.div_ceil(hours).max(1);
    let dir = cache_dir().join(format!("aws-{month}-{instances}"));
    if !dir.join("done").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        // nise writes to a directory when the bucket name is one that exists.
        std::fs::create_dir_all(dir.join("bucket"))?;
        eprintln!(
            "generating {instances} instances x {hours} hours with nise (cached in {})",
            dir.display()
        );
        let mut yaml = String::from("---\ngenerators:\n");
        for i in 0..instances {
            yaml.push_str(&format!(
                "  - EC2Generator:\n      start_date: {month}\n      end_date: {next}\n      resource_id: i-{i:06}\n      region: us-east-1\n      tags:\n        resourceTags/user:app: app{}\n",
                i % 7
            ));
        }
        yaml.push_str("accounts:\n  payer: 9999999999999\n  user:\n    - 9999999999999\n");
        std::fs::write(dir.join("static.yml"), yaml)?;
        let mut nise = Command::new(venv.join("bin/nise"));
        nise.args(["report", "aws", "-s", &month.to_string(), "-e"])
            .arg((next + chrono::Days::new(1)).to_string())
            .arg("--static-report-file")
            .arg(dir.join("static.yml"))
            .arg("--aws-s3-bucket-name")
            .arg(dir.join("bucket"))
            .args([
                "--aws-s3-report-name",
                "keel",
                "--aws-s3-report-prefix",
                "bench",
            ])
            .args(["--file-row-limit", "500000"])
            .current_dir(&dir);
        run_nise(&mut nise, &dir)?;
    }
    let mut files = Vec::new();
    walk(&dir.join("bucket"), &mut files)?;
    files.sort();
    Ok((dir.join("bucket"), files))
}

/// Runs nise; once it succeeds, `dir` is marked complete for the cache.
fn run_nise(nise: &mut Command, dir: &Path) -> anyhow::Result<()> {
    let out = nise.output().context(
        "koku-nise is needed: scripts/test installs it, or name its virtualenv with --venv",
    )?;
    if !out.status.success() {
        bail!("nise failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dir.join("done"), "")?;
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn cache_dir() -> PathBuf {
    std::env::var_os("KEEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keel")))
        .unwrap_or_else(|| PathBuf::from(".keel-cache"))
        .join("bench")
}

/// moto's S3 for the run: the one named, or one started here (stopped on drop).
pub(super) struct Moto {
    pub url: String,
    child: Option<Child>,
}

impl Moto {
    pub(super) async fn start(named: Option<String>, venv: &Path) -> anyhow::Result<Self> {
        if let Some(url) = named {
            return Ok(Self { url, child: None });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "moto is needed: scripts/test installs it, or name its virtualenv with --venv",
            )?;
        let moto = Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("moto did not start")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The CSV inside each gzip file, decompressed to `into` (for psql's COPY, outside any timing).
pub(super) fn decompress(files: &[PathBuf], into: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (i, f) in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "gz"))
        .enumerate()
    {
        let target = into.join(format!("{i}.csv"));
        let mut reader = flate2::read::MultiGzDecoder::new(std::fs::File::open(f)?);
        std::io::copy(&mut reader, &mut std::fs::File::create(&target)?)?;
        out.push(target);
    }
    Ok(out)
}

/// nise's operator payloads for `days` days from `start`, made ahead (cached) so that only
/// Keel is timed: nise writes the CSVs and the manifest to a directory, and each CSV is packed
/// with the manifest into a tar.gz of its own, as nise packs them for an upload.
pub(super) fn ocp_payloads(
    venv: &Path,
    start: NaiveDate,
    days: u64,
    cluster: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let dir = cache_dir().join(format!("ocp-{start}-{days}-{cluster}"));
    if !dir.join("done").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        // nise extracts into the directory when the upload target is one that exists.
        std::fs::create_dir_all(dir.join("out"))?;
        let end = start + chrono::Days::new(days);
        let mut nise = Command::new(venv.join("bin/nise"));
        nise.args([
            "report",
            "ocp",
            "-s",
            &start.to_string(),
            "-e",
            &end.to_string(),
        ])
        .args(["--ocp-cluster-id", cluster, "--insights-upload"])
        .arg(dir.join("out"))
        .env("INSIGHTS_ACCOUNT_ID", "10001")
        .env("INSIGHTS_ORG_ID", "900000")
        .current_dir(&dir);
        run_nise(&mut nise, &dir)?;
    }
    let mut files = Vec::new();
    walk(&dir.join("out"), &mut files)?;
    let manifest = files
        .iter()
        .find(|f| f.file_name().is_some_and(|n| n == "manifest.json"))
        .context("nise wrote no manifest.json")?
        .clone();
    let mut payloads = Vec::new();
    for csv in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "csv"))
    {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_path_with_name(csv, csv.file_name().context("a file name")?)?;
        tar.append_path_with_name(&manifest, "manifest.json")?;
        payloads.push(tar.into_inner()?.finish()?);
    }
    Ok(payloads)
}
