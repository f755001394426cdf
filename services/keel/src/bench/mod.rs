//! `keel bench …`: measured load on Keel's services, printed as throughput and latency
//! percentiles.

use std::{process::Command, time::Duration};

use anyhow::Context as _;
use hdrhistogram::Histogram;

mod broker;
mod events;
mod externalsource;
mod ingestion;
mod listener;
mod sources;

pub use broker::{BrokerBench, broker};
pub use events::{EventsBench, events};
pub use externalsource::{ExternalSourceBench, externalsource};
pub use ingestion::{IngestionBench, ingestion};
pub use listener::{ListenerBench, listener};
pub use sources::{SourcesBench, run};

/// Microseconds from 1 µs to one minute, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn report(name: &str, count: u64, errors: u64, elapsed: Duration, h: &Histogram<u64>) -> f64 {
    let rate = count as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "{name:<18} {count:>8} ok {errors:>5} errors  {rate:>9.1} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            ms(0.50),
            ms(0.95),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    rate
}

/// A database of its own on the benchmarked server, dropped and created again at start and
/// dropped at the end.
pub(crate) struct ScratchDatabase {
    admin: String,
    name: &'static str,
    pub url: String,
}

impl ScratchDatabase {
    pub(crate) async fn create(server_url: &str, name: &'static str) -> anyhow::Result<Self> {
        let scratch = Self {
            admin: replace_database(server_url, "postgres"),
            name,
            url: replace_database(server_url, name),
        };
        scratch.drop_database()?;
        keel_db::ensure_database(&scratch.url).await?;
        Ok(scratch)
    }

    fn drop_database(&self) -> anyhow::Result<()> {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
    }

    pub(crate) fn remove(self) -> anyhow::Result<()> {
        self.drop_database()
    }
}

/// Runs one SQL command with psql (what pgbench's baseline and scratch databases need).
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .status()
        .context("psql (PostgreSQL client) is needed for the benchmarks")?;
    anyhow::ensure!(status.success(), "psql failed: {sql}");
    Ok(())
}

/// Prints one latency line for `h` (microseconds).
fn latency_line(name: &str, what: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    #[expect(clippy::print_stdout)]
    {
        println!(
            "{name:<24} {:>8} {what}  p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            h.len(),
            ms(0.50),
            ms(0.95),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same server URL with another database name.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/keel", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/keel?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
