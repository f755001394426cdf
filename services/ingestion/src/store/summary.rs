//! Daily summaries, rebuilt for the days a manifest touched in its month and no others (Koku's
//! delete-then-insert per window), inside the summary task's transaction.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tenant::{Manifest, Tenant};

/// 2^30: Koku's gigabytes are gibibytes.
const GIB: &str = "1073741824.0";

/// Start and end of the manifest's billing month.
fn month_of(m: &Manifest) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = m.billing_period_start_datetime;
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .expect("months in range");
    (start, end)
}

/// AWS: this manifest's line items replace other manifests' in the month (a new assembly of a
/// month already loaded), then the summary of every day either had is rebuilt.
pub async fn aws(
    conn: &mut PgConnection,
    t: &Tenant,
    m: &Manifest,
    bill_id: i64,
) -> Result<Vec<NaiveDate>, sqlx::Error> {
    let (start, end) = month_of(m);
    analyze(conn, t, &["aws_line_items"]).await?;
    let days: Vec<NaiveDate> = sqlx::query_scalar(t.sql(
        "WITH gone AS (DELETE FROM {s}.aws_line_items \
                       WHERE source_uuid = $1 AND lineitem_usagestartdate >= $2 AND lineitem_usagestartdate < $3 \
                         AND manifest_id <> $4 \
                       RETURNING (lineitem_usagestartdate AT TIME ZONE 'UTC')::date AS day) \
         SELECT day FROM gone UNION \
         SELECT (lineitem_usagestartdate AT TIME ZONE 'UTC')::date FROM {s}.aws_line_items \
         WHERE source_uuid = $1 AND lineitem_usagestartdate >= $2 AND lineitem_usagestartdate < $3 AND manifest_id = $4 \
         ORDER BY 1",
    ))
    .bind(m.provider_id)
    .bind(start)
    .bind(end)
    .bind(m.id)
    .fetch_all(&mut *conn)
    .await?;
    clear(
        conn,
        t,
        "reporting_awscostentrylineitem_daily_summary",
        m.provider_id,
        &days,
    )
    .await?;
    // Two hash aggregations instead of one sorted one: per group and resource first (so the
    // outer level needs no DISTINCT, which would force a sort over every line item), then
    // per group.
    sqlx::query(t.sql(
        "INSERT INTO {s}.reporting_awscostentrylineitem_daily_summary \
           (cost_entry_bill_id, source_uuid, usage_start, usage_end, usage_account_id, product_code, \
            product_family, availability_zone, region, instance_type, unit, tags, cost_category, \
            resource_ids, resource_count, usage_amount, normalization_factor, normalized_usage_amount, \
            currency_code, unblended_rate, unblended_cost, blended_rate, blended_cost, \
            savingsplan_effective_cost, calculated_amortized_cost, public_on_demand_cost, public_on_demand_rate) \
         SELECT $5, $1, day, day, account, \
                CASE WHEN entity = 'AWS Marketplace' THEN coalesce(product_name, product_code) ELSE product_code END, \
                family, zone, region, instance_type, unit, tags, cost_category, \
                array_agg(resource) FILTER (WHERE resource IS NOT NULL), count(resource), \
                sum(usage), max(normalization), sum(normalized), max(currency), max(unblended_rate), \
                sum(unblended), max(blended_rate), sum(blended), sum(sp_effective), sum(amortized), \
                sum(on_demand), max(on_demand_rate) \
         FROM (SELECT (lineitem_usagestartdate AT TIME ZONE 'UTC')::date AS day, \
                      bill_billingentity AS entity, lineitem_productcode AS product_code, \
                      product_productname AS product_name, lineitem_usageaccountid AS account, \
                      lineitem_availabilityzone AS zone, product_productfamily AS family, \
                      product_region AS region, product_instancetype AS instance_type, pricing_unit AS unit, \
                      resourcetags AS tags, costcategory AS cost_category, lineitem_resourceid AS resource, \
                      sum(CASE WHEN lineitem_lineitemtype = 'SavingsPlanNegation' THEN 0 ELSE lineitem_usageamount END) AS usage, \
                      max(lineitem_normalizationfactor) AS normalization, \
                      sum(lineitem_normalizedusageamount) AS normalized, max(lineitem_currencycode) AS currency, \
                      max(lineitem_unblendedrate) AS unblended_rate, sum(lineitem_unblendedcost) AS unblended, \
                      max(lineitem_blendedrate) AS blended_rate, sum(lineitem_blendedcost) AS blended, \
                      sum(savingsplan_savingsplaneffectivecost) AS sp_effective, \
                      sum(CASE WHEN lineitem_lineitemtype IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation', \
                                                              'SavingsPlanUpfrontFee', 'SavingsPlanRecurringFee') \
                               THEN savingsplan_savingsplaneffectivecost ELSE lineitem_unblendedcost END) AS amortized, \
                      sum(pricing_publicondemandcost) AS on_demand, max(pricing_publicondemandrate) AS on_demand_rate \
               FROM {s}.aws_line_items \
               WHERE source_uuid = $1 AND lineitem_usagestartdate >= $2 AND lineitem_usagestartdate < $3 \
                 AND (lineitem_usagestartdate AT TIME ZONE 'UTC')::date = ANY($4) \
               GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13) per_resource \
         GROUP BY day, entity, product_code, product_name, account, zone, family, region, instance_type, \
                  unit, tags, cost_category",
    ))
    .bind(m.provider_id)
    .bind(start)
    .bind(end)
    .bind(&days)
    .bind(bill_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(t.sql(
        "UPDATE {s}.reporting_awscostentrybill \
         SET summary_data_creation_datetime = coalesce(summary_data_creation_datetime, now()), \
             summary_data_updated_datetime = now() WHERE id = $1",
    ))
    .bind(bill_id)
    .execute(conn)
    .await?;
    Ok(days)
}

const OCP_LINE_ITEMS: [&str; 4] = [
    "openshift_pod_usage_line_items",
    "openshift_storage_usage_line_items",
    "openshift_node_labels_line_items",
    "openshift_namespace_labels_line_items",
];

/// OpenShift: the days this manifest's files cover; a daily-report operator's data replaces
/// other manifests' on those days (a non-daily operator's adds to them, as in Koku); then pod
/// and storage summaries of those days are rebuilt.
pub async fn ocp(
    conn: &mut PgConnection,
    t: &Tenant,
    m: &Manifest,
    cluster_alias: &str,
) -> Result<Vec<NaiveDate>, sqlx::Error> {
    let (start, end) = month_of(m);
    analyze(conn, t, &OCP_LINE_ITEMS).await?;
    let union = OCP_LINE_ITEMS
        .iter()
        .map(|table| {
            format!(
                "SELECT DISTINCT (interval_start AT TIME ZONE 'UTC')::date FROM {{s}}.{table} \
                 WHERE source_uuid = $1 AND interval_start >= $2 AND interval_start < $3 AND manifest_id = $4"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ");
    let days: Vec<NaiveDate> = sqlx::query_scalar(t.sql(&format!("{union} ORDER BY 1")))
        .bind(m.provider_id)
        .bind(start)
        .bind(end)
        .bind(m.id)
        .fetch_all(&mut *conn)
        .await?;
    if m.operator_daily_reports {
        for table in OCP_LINE_ITEMS {
            sqlx::query(t.sql(&format!(
                "DELETE FROM {{s}}.{table} WHERE source_uuid = $1 AND interval_start >= $2 AND interval_start < $3 \
                 AND manifest_id <> $4 AND (interval_start AT TIME ZONE 'UTC')::date = ANY($5)"
            )))
            .bind(m.provider_id)
            .bind(start)
            .bind(end)
            .bind(m.id)
            .bind(&days)
            .execute(&mut *conn)
            .await?;
        }
    }
    clear(
        conn,
        t,
        "reporting_ocpusagelineitem_daily_summary",
        m.provider_id,
        &days,
    )
    .await?;
    let cluster = m.cluster_id.as_deref().unwrap_or_default();
    for statement in [pod_summary(), storage_summary()] {
        sqlx::query(t.sql(&statement))
            .bind(m.provider_id)
            .bind(start)
            .bind(end)
            .bind(&days)
            .bind(cluster)
            .bind(cluster_alias)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(t.sql(
        "UPDATE {s}.reporting_ocpusagereportperiod \
         SET summary_data_creation_datetime = coalesce(summary_data_creation_datetime, now()), \
             summary_data_updated_datetime = now() \
         WHERE provider_id = $1 AND report_period_start = $2",
    ))
    .bind(m.provider_id)
    .bind(start)
    .execute(conn)
    .await?;
    Ok(days)
}

/// Pod rows per day, namespace, node and labels (node, then namespace, then pod labels of the
/// day): core-hours, gigabyte-hours, effective usage = max(usage, request) per interval, and
/// the node's capacity (sum over intervals of its largest reading).
fn pod_summary() -> String {
    let day = "(interval_start AT TIME ZONE 'UTC')::date";
    let window = "source_uuid = $1 AND interval_start >= $2 AND interval_start < $3";
    format!(
        "WITH p AS (SELECT *, {day} AS day FROM {{s}}.openshift_pod_usage_line_items WHERE {window} AND {day} = ANY($4)), \
              nl AS (SELECT DISTINCT ON (day, node) day, node, node_labels FROM \
                       (SELECT {day} AS day, node, node_labels, interval_start FROM {{s}}.openshift_node_labels_line_items \
                        WHERE {window}) x WHERE day = ANY($4) ORDER BY day, node, interval_start DESC), \
              nsl AS (SELECT DISTINCT ON (day, namespace) day, namespace, namespace_labels FROM \
                       (SELECT {day} AS day, namespace, namespace_labels, interval_start FROM {{s}}.openshift_namespace_labels_line_items \
                        WHERE {window}) x WHERE day = ANY($4) ORDER BY day, namespace, interval_start DESC), \
              cap AS (SELECT day, node, max(cores) AS cores, sum(cs) AS core_seconds, max(mem) AS mem, sum(ms) AS mem_seconds \
                      FROM (SELECT day, node, interval_start, max(node_capacity_cpu_cores) AS cores, \
                                   max(node_capacity_cpu_core_seconds) AS cs, max(node_capacity_memory_bytes) AS mem, \
                                   max(node_capacity_memory_byte_seconds) AS ms \
                            FROM p GROUP BY day, node, interval_start) i GROUP BY day, node), \
              x AS (SELECT p.*, coalesce(nl.node_labels, '{{}}') || coalesce(nsl.namespace_labels, '{{}}') || p.pod_labels AS labels, \
                           cap.cores, cap.core_seconds, cap.mem, cap.mem_seconds \
                    FROM p LEFT JOIN nl ON nl.day = p.day AND nl.node = p.node \
                           LEFT JOIN nsl ON nsl.day = p.day AND nsl.namespace = p.namespace \
                           LEFT JOIN cap ON cap.day = p.day AND cap.node = p.node) \
         INSERT INTO {{s}}.reporting_ocpusagelineitem_daily_summary \
           (report_period_id, source_uuid, cluster_id, cluster_alias, data_source, usage_start, usage_end, \
            namespace, node, resource_id, pod_labels, \
            pod_usage_cpu_core_hours, pod_request_cpu_core_hours, pod_effective_usage_cpu_core_hours, pod_limit_cpu_core_hours, \
            pod_usage_memory_gigabyte_hours, pod_request_memory_gigabyte_hours, \
            pod_effective_usage_memory_gigabyte_hours, pod_limit_memory_gigabyte_hours, \
            node_capacity_cpu_cores, node_capacity_cpu_core_hours, node_capacity_memory_gigabytes, \
            node_capacity_memory_gigabyte_hours) \
         SELECT max(report_period_id), $1, $5, $6, 'Pod', day, day, namespace, node, max(resource_id), labels, \
                sum(pod_usage_cpu_core_seconds) / 3600, sum(pod_request_cpu_core_seconds) / 3600, \
                sum(greatest(pod_usage_cpu_core_seconds, pod_request_cpu_core_seconds)) / 3600, \
                sum(pod_limit_cpu_core_seconds) / 3600, \
                sum(pod_usage_memory_byte_seconds) / 3600 / {GIB}, sum(pod_request_memory_byte_seconds) / 3600 / {GIB}, \
                sum(greatest(pod_usage_memory_byte_seconds, pod_request_memory_byte_seconds)) / 3600 / {GIB}, \
                sum(pod_limit_memory_byte_seconds) / 3600 / {GIB}, \
                max(cores), max(core_seconds) / 3600, max(mem) / {GIB}, max(mem_seconds) / 3600 / {GIB} \
         FROM x GROUP BY day, namespace, node, labels"
    )
}

/// Storage rows per day, namespace, node, claim, volume and class, in gigabyte-months (byte-
/// seconds over the seconds of the month).
fn storage_summary() -> String {
    let day = "(interval_start AT TIME ZONE 'UTC')::date";
    let month_seconds =
        "(86400.0 * extract(day FROM date_trunc('month', day) + interval '1 month - 1 day'))";
    format!(
        "WITH s AS (SELECT *, {day} AS day FROM {{s}}.openshift_storage_usage_line_items \
                    WHERE source_uuid = $1 AND interval_start >= $2 AND interval_start < $3 AND {day} = ANY($4)) \
         INSERT INTO {{s}}.reporting_ocpusagelineitem_daily_summary \
           (report_period_id, source_uuid, cluster_id, cluster_alias, data_source, usage_start, usage_end, \
            namespace, node, persistentvolumeclaim, persistentvolume, storageclass, volume_labels, \
            persistentvolumeclaim_capacity_gigabyte, persistentvolumeclaim_capacity_gigabyte_months, \
            volume_request_storage_gigabyte_months, persistentvolumeclaim_usage_gigabyte_months) \
         SELECT max(report_period_id), $1, $5, $6, 'Storage', day, day, namespace, node, \
                persistentvolumeclaim, persistentvolume, storageclass, \
                persistentvolume_labels || persistentvolumeclaim_labels, \
                max(persistentvolumeclaim_capacity_bytes) / {GIB}, \
                sum(persistentvolumeclaim_capacity_byte_seconds) / {month_seconds} / {GIB}, \
                sum(volume_request_storage_byte_seconds) / {month_seconds} / {GIB}, \
                sum(persistentvolumeclaim_usage_byte_seconds) / {month_seconds} / {GIB} \
         FROM s GROUP BY day, namespace, node, persistentvolumeclaim, persistentvolume, storageclass, \
                         persistentvolume_labels || persistentvolumeclaim_labels"
    )
}

/// Fresh statistics for tables that just took a file's rows: autovacuum has not seen them
/// yet, and a plan made for an empty table sorts a month on disk instead of hashing it.
async fn analyze(conn: &mut PgConnection, t: &Tenant, tables: &[&str]) -> Result<(), sqlx::Error> {
    let list = tables
        .iter()
        .map(|table| format!("{{s}}.{table}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(t.sql(&format!("ANALYZE {list}")))
        .execute(conn)
        .await?;
    Ok(())
}

async fn clear(
    conn: &mut PgConnection,
    t: &Tenant,
    table: &str,
    source: Uuid,
    days: &[NaiveDate],
) -> Result<(), sqlx::Error> {
    sqlx::query(t.sql(&format!(
        "DELETE FROM {{s}}.{table} WHERE source_uuid = $1 AND usage_start = ANY($2)"
    )))
    .bind(source)
    .bind(days)
    .execute(conn)
    .await?;
    Ok(())
}

/// The manifest is done: completed, summary step recorded, no failure.
pub async fn complete_manifest(
    conn: &mut PgConnection,
    t: &Tenant,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(t.sql(
        "UPDATE {s}.reporting_common_costusagereportmanifest \
         SET completed_datetime = clock_timestamp(), failure = NULL, \
             state = state || jsonb_build_object('summary', jsonb_build_object('end', now())) \
         WHERE id = $1",
    ))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
