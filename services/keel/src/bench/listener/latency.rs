//! Create-to-provider latencies, read from the scratch database once every source is linked.

use hdrhistogram::Histogram;
use sqlx::PgPool;

use super::super::histogram;

/// Source row written in sources-api to provider linked, per source linked in phase 1 (ids
/// follow creation: the first `skip` were the warm-up's), and its two parts: until the
/// listener recorded the source's first event (its sync row), and from there to the link.
pub(super) async fn link_latency(db: &PgPool, skip: usize) -> anyhow::Result<[Histogram<u64>; 3]> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT (extract(epoch FROM a.linked_timestamp - s.created_at) * 1e6)::bigint, \
           (extract(epoch FROM a.created_timestamp - s.created_at) * 1e6)::bigint \
         FROM api_sources a JOIN sources.sources s ON s.id = a.source_id \
         WHERE a.linked_timestamp IS NOT NULL ORDER BY s.id OFFSET $1",
    )
    .bind(skip as i64)
    .fetch_all(db)
    .await?;
    let mut h = [histogram(), histogram(), histogram()];
    for (whole, delivered) in rows {
        for (h, m) in h.iter_mut().zip([whole, delivered, whole - delivered]) {
            h.record(m.max(1) as u64).ok();
        }
    }
    Ok(h)
}

/// From each creation's acknowledgement (the bench's clock) to its source's link (PostgreSQL's
/// clock: the same machine's).
pub(super) async fn acknowledged_to_linked(
    db: &PgPool,
    acknowledged: &[(i64, chrono::DateTime<chrono::Utc>)],
) -> anyhow::Result<Histogram<u64>> {
    let ids: Vec<i64> = acknowledged.iter().map(|(id, _)| *id).collect();
    let at: Vec<chrono::DateTime<chrono::Utc>> = acknowledged.iter().map(|(_, at)| *at).collect();
    let micros: Vec<i64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM a.linked_timestamp - c.at) * 1e6)::bigint \
         FROM unnest($1::bigint[], $2::timestamptz[]) AS c(id, at) \
         JOIN api_sources a ON a.source_id = c.id WHERE a.linked_timestamp IS NOT NULL",
    )
    .bind(&ids)
    .bind(&at)
    .fetch_all(db)
    .await?;
    let mut h = histogram();
    for m in micros {
        h.record(m.max(1) as u64).ok();
    }
    Ok(h)
}

/// Both parts of create-to-provider ([`link_latency`]), their median and longest, by quarter
/// second of the source's creation (from the first of the phase).
#[expect(clippy::print_stdout)]
pub(super) async fn timeline(db: &PgPool, skip: usize) -> anyhow::Result<()> {
    let rows: Vec<(f64, i64, f64, f64, f64, f64)> = sqlx::query_as(
        "WITH l AS (SELECT s.created_at, a.created_timestamp, a.linked_timestamp \
           FROM api_sources a JOIN sources.sources s ON s.id = a.source_id \
           WHERE a.linked_timestamp IS NOT NULL ORDER BY s.id OFFSET $1), \
         q AS (SELECT floor(extract(epoch FROM created_at - min(created_at) OVER ()) * 4) / 4 AS at, \
           extract(epoch FROM created_timestamp - created_at) * 1e3 AS followed, \
           extract(epoch FROM linked_timestamp - created_timestamp) * 1e3 AS worked FROM l) \
         SELECT at::float8, count(*), \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY followed), max(followed)::float8, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY worked), max(worked)::float8 \
         FROM q GROUP BY at ORDER BY at",
    )
    .bind(skip as i64)
    .fetch_all(db)
    .await?;
    println!("created at  sources   create -> followed p50 / max   followed -> provider p50 / max");
    for (at, n, followed, followed_max, worked, worked_max) in rows {
        println!(
            "{at:>9.2} s {n:>8}   {followed:>10.1} / {followed_max:>7.1} ms   {worked:>12.1} / {worked_max:>7.1} ms"
        );
    }
    Ok(())
}
