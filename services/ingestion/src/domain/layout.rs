//! Report files and the tables they load into: which CSV column goes to which table column,
//! how each value is converted, and how an OpenShift report's type is recognised by its
//! columns (Koku's `detect_type`).

/// How a CSV value becomes a COPY value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// As is; empty is NULL.
    Text,
    /// A number: empty, `None` and `NaN` are NULL (nise writes `None`).
    Number,
    /// The operator's `2026-11-01 00:00:00 +0000 UTC`: the zone name after the offset dropped.
    OperatorTime,
    /// The operator's `label_a:x|label_b:y`, as the JSON object `{"a":"x","b":"y"}`.
    Labels,
}

/// A table column filled from the CSV column of the same (normalized) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub convert: Convert,
    /// A file without it is refused.
    pub required: bool,
}

/// CSV columns whose name starts with `prefix` folded into one JSON column, keyed by the rest
/// of the name; empty values left out (Koku's `resourceTags/user:*` and `costCategory/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    pub column: &'static str,
    pub prefix: &'static str,
}

/// The kinds of report file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportType {
    AwsCur,
    OcpPodUsage,
    OcpStorageUsage,
    OcpNodeLabels,
    OcpNamespaceLabels,
    /// Recognised, kept, not processed.
    OcpVmUsage,
    OcpGpuUsage,
    /// Not recognised: kept, not processed.
    Unknown,
}

impl ReportType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsCur => "aws_cur",
            Self::OcpPodUsage => "pod_usage",
            Self::OcpStorageUsage => "storage_usage",
            Self::OcpNodeLabels => "node_labels",
            Self::OcpNamespaceLabels => "namespace_labels",
            Self::OcpVmUsage => "vm_usage",
            Self::OcpGpuUsage => "gpu_usage",
            Self::Unknown => "unknown",
        }
    }

    /// The layout files of this type load with; `None` for types kept but not processed.
    pub fn layout(self) -> Option<&'static Layout> {
        match self {
            Self::AwsCur => Some(&AWS_CUR),
            Self::OcpPodUsage => Some(&POD_USAGE),
            Self::OcpStorageUsage => Some(&STORAGE_USAGE),
            Self::OcpNodeLabels => Some(&NODE_LABELS),
            Self::OcpNamespaceLabels => Some(&NAMESPACE_LABELS),
            Self::OcpVmUsage | Self::OcpGpuUsage | Self::Unknown => None,
        }
    }
}

/// A table and the columns a report fills.
#[derive(Debug)]
pub struct Layout {
    pub report_type: ReportType,
    pub table: &'static str,
    /// Columns the loader fills itself, before the CSV's (ids of the manifest, file, source
    /// and bill or report period).
    pub fixed: &'static [&'static str],
    pub columns: &'static [Column],
    pub folds: &'static [Fold],
}

const fn col(name: &'static str, convert: Convert) -> Column {
    Column {
        name,
        convert,
        required: false,
    }
}

const fn req(name: &'static str, convert: Convert) -> Column {
    Column {
        name,
        convert,
        required: true,
    }
}

use Convert::{Labels, Number, OperatorTime, Text};

pub static AWS_CUR: Layout = Layout {
    report_type: ReportType::AwsCur,
    table: "aws_line_items",
    fixed: &[
        "manifest_id",
        "report_status_id",
        "source_uuid",
        "cost_entry_bill_id",
    ],
    columns: &[
        col("bill_billingentity", Text),
        col("bill_billtype", Text),
        col("bill_payeraccountid", Text),
        col("bill_invoiceid", Text),
        col("lineitem_lineitemtype", Text),
        col("lineitem_usageaccountid", Text),
        req("lineitem_usagestartdate", Text),
        col("lineitem_usageenddate", Text),
        col("lineitem_productcode", Text),
        col("lineitem_usagetype", Text),
        col("lineitem_operation", Text),
        col("lineitem_availabilityzone", Text),
        col("lineitem_resourceid", Text),
        col("lineitem_usageamount", Number),
        col("lineitem_normalizationfactor", Number),
        col("lineitem_normalizedusageamount", Number),
        col("lineitem_currencycode", Text),
        col("lineitem_unblendedrate", Number),
        req("lineitem_unblendedcost", Number),
        col("lineitem_blendedrate", Number),
        col("lineitem_blendedcost", Number),
        col("lineitem_taxtype", Text),
        col("savingsplan_savingsplaneffectivecost", Number),
        col("pricing_publicondemandcost", Number),
        col("pricing_publicondemandrate", Number),
        col("pricing_unit", Text),
        col("product_productname", Text),
        col("product_productfamily", Text),
        col("product_region", Text),
        col("product_instancetype", Text),
    ],
    folds: &[
        Fold {
            column: "resourcetags",
            prefix: "resourceTags/user:",
        },
        Fold {
            column: "costcategory",
            prefix: "costCategory/",
        },
    ],
};

const OCP_FIXED: &[&str] = &[
    "manifest_id",
    "report_status_id",
    "source_uuid",
    "report_period_id",
];

pub static POD_USAGE: Layout = Layout {
    report_type: ReportType::OcpPodUsage,
    table: "openshift_pod_usage_line_items",
    fixed: OCP_FIXED,
    columns: &[
        col("report_period_start", OperatorTime),
        col("report_period_end", OperatorTime),
        req("interval_start", OperatorTime),
        col("interval_end", OperatorTime),
        req("pod", Text),
        req("namespace", Text),
        req("node", Text),
        col("resource_id", Text),
        req("pod_usage_cpu_core_seconds", Number),
        col("pod_request_cpu_core_seconds", Number),
        col("pod_limit_cpu_core_seconds", Number),
        req("pod_usage_memory_byte_seconds", Number),
        col("pod_request_memory_byte_seconds", Number),
        col("pod_limit_memory_byte_seconds", Number),
        col("node_capacity_cpu_cores", Number),
        col("node_capacity_cpu_core_seconds", Number),
        col("node_capacity_memory_bytes", Number),
        col("node_capacity_memory_byte_seconds", Number),
        col("pod_labels", Labels),
    ],
    folds: &[],
};

pub static STORAGE_USAGE: Layout = Layout {
    report_type: ReportType::OcpStorageUsage,
    table: "openshift_storage_usage_line_items",
    fixed: OCP_FIXED,
    columns: &[
        col("report_period_start", OperatorTime),
        col("report_period_end", OperatorTime),
        req("interval_start", OperatorTime),
        col("interval_end", OperatorTime),
        req("namespace", Text),
        col("pod", Text),
        col("node", Text),
        req("persistentvolumeclaim", Text),
        req("persistentvolume", Text),
        req("storageclass", Text),
        col("csi_driver", Text),
        col("csi_volume_handle", Text),
        col("persistentvolumeclaim_capacity_bytes", Number),
        req("persistentvolumeclaim_capacity_byte_seconds", Number),
        req("volume_request_storage_byte_seconds", Number),
        req("persistentvolumeclaim_usage_byte_seconds", Number),
        col("persistentvolume_labels", Labels),
        col("persistentvolumeclaim_labels", Labels),
    ],
    folds: &[],
};

pub static NODE_LABELS: Layout = Layout {
    report_type: ReportType::OcpNodeLabels,
    table: "openshift_node_labels_line_items",
    fixed: OCP_FIXED,
    columns: &[
        col("report_period_start", OperatorTime),
        col("report_period_end", OperatorTime),
        req("interval_start", OperatorTime),
        col("interval_end", OperatorTime),
        req("node", Text),
        req("node_labels", Labels),
    ],
    folds: &[],
};

pub static NAMESPACE_LABELS: Layout = Layout {
    report_type: ReportType::OcpNamespaceLabels,
    table: "openshift_namespace_labels_line_items",
    fixed: OCP_FIXED,
    columns: &[
        col("report_period_start", OperatorTime),
        col("report_period_end", OperatorTime),
        req("interval_start", OperatorTime),
        col("interval_end", OperatorTime),
        req("namespace", Text),
        req("namespace_labels", Labels),
    ],
    folds: &[],
};

/// The columns that identify each OpenShift report type, in Koku's order of trial.
const OCP_SIGNATURES: &[(ReportType, &[&str])] = &[
    (
        ReportType::OcpStorageUsage,
        &[
            "persistentvolumeclaim",
            "persistentvolume",
            "storageclass",
            "persistentvolumeclaim_usage_byte_seconds",
        ],
    ),
    (
        ReportType::OcpPodUsage,
        &[
            "pod",
            "namespace",
            "node",
            "pod_usage_cpu_core_seconds",
            "pod_usage_memory_byte_seconds",
        ],
    ),
    (ReportType::OcpNodeLabels, &["node", "node_labels"]),
    (
        ReportType::OcpNamespaceLabels,
        &["namespace", "namespace_labels"],
    ),
    (
        ReportType::OcpVmUsage,
        &["vm_name", "vm_cpu_usage_total_seconds"],
    ),
    (ReportType::OcpGpuUsage, &["gpu_uuid", "gpu_model_name"]),
];

/// Every OpenShift report has these.
const OCP_COMMON: &[&str] = &[
    "report_period_start",
    "report_period_end",
    "interval_start",
    "interval_end",
];

/// An OpenShift report's type from its (normalized) header.
pub fn detect_ocp(header: &[String]) -> ReportType {
    let has = |name: &str| header.iter().any(|h| h == name);
    if !OCP_COMMON.iter().all(|c| has(c)) {
        return ReportType::Unknown;
    }
    OCP_SIGNATURES
        .iter()
        .find(|(_, cols)| cols.iter().all(|c| has(c)))
        .map_or(ReportType::Unknown, |(t, _)| *t)
}

/// Koku's column names: lower case, every run of non-word characters one `_`
/// (`lineItem/UsageStartDate` → `lineitem_usagestartdate`).
pub fn normalize_header(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut gap = false;
    for c in raw.trim().chars() {
        if c.is_alphanumeric() || c == '_' {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// How one file's CSV columns map to its table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `(csv index, conversion)` for each mapped column, in `columns` order.
    pub mapped: Vec<(usize, Convert)>,
    /// For each fold, `(csv index, key)` of its CSV columns.
    pub folds: Vec<Vec<(usize, String)>>,
    /// The table's columns after the fixed ones: mapped, then folds.
    pub columns: Vec<&'static str>,
}

impl Layout {
    /// The plan for a file with this raw header, or the required columns it lacks.
    pub fn plan(&self, raw_header: &[String]) -> Result<Plan, String> {
        let normalized: Vec<String> = raw_header.iter().map(|h| normalize_header(h)).collect();
        let mut mapped = Vec::new();
        let mut columns = Vec::new();
        let mut missing = Vec::new();
        for c in self.columns {
            match normalized.iter().position(|h| h == c.name) {
                Some(i) => {
                    mapped.push((i, c.convert));
                    columns.push(c.name);
                }
                None if c.required => missing.push(c.name),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "the file lacks the column(s) {}",
                missing.join(", ")
            ));
        }
        let folds = self
            .folds
            .iter()
            .map(|f| {
                columns.push(f.column);
                raw_header
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| {
                        h.strip_prefix(f.prefix)
                            .filter(|k| !k.is_empty())
                            .map(|k| (i, k.to_owned()))
                    })
                    .collect()
            })
            .collect();
        Ok(Plan {
            mapped,
            folds,
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Vec<String> {
        s.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn kokus_column_names() {
        assert_eq!(
            normalize_header("lineItem/UsageStartDate"),
            "lineitem_usagestartdate"
        );
        assert_eq!(
            normalize_header("savingsPlan/SavingsPlanEffectiveCost"),
            "savingsplan_savingsplaneffectivecost"
        );
        assert_eq!(
            normalize_header("costCategory/Charge type"),
            "costcategory_charge_type"
        );
        assert_eq!(
            normalize_header("pod_usage_cpu_core_seconds"),
            "pod_usage_cpu_core_seconds"
        );
    }

    #[test]
    fn openshift_reports_are_recognised_by_their_columns() {
        let common = "report_period_start,report_period_end,interval_start,interval_end";
        let t = |rest: &str| detect_ocp(&header(&format!("{common},{rest}")));
        assert_eq!(
            t(
                "pod,namespace,node,resource_id,pod_usage_cpu_core_seconds,pod_usage_memory_byte_seconds,pod_labels"
            ),
            ReportType::OcpPodUsage
        );
        assert_eq!(
            t(
                "namespace,pod,node,persistentvolumeclaim,persistentvolume,storageclass,persistentvolumeclaim_usage_byte_seconds"
            ),
            ReportType::OcpStorageUsage
        );
        assert_eq!(t("node,node_labels"), ReportType::OcpNodeLabels);
        assert_eq!(
            t("namespace,namespace_labels"),
            ReportType::OcpNamespaceLabels
        );
        assert_eq!(
            t("node,namespace,vm_name,vm_cpu_usage_total_seconds"),
            ReportType::OcpVmUsage
        );
        assert_eq!(t("node,gpu_uuid,gpu_model_name"), ReportType::OcpGpuUsage);
        assert_eq!(t("something,else"), ReportType::Unknown);
        assert_eq!(detect_ocp(&header("node,node_labels")), ReportType::Unknown);
    }

    #[test]
    fn a_cur_header_plans_mapped_columns_and_tag_folds() {
        let h = header(
            "identity/LineItemId,lineItem/UsageStartDate,lineItem/UnblendedCost,resourceTags/aws:createdBy,resourceTags/user:app,costCategory/Team",
        );
        let plan = AWS_CUR.plan(&h).unwrap();
        assert_eq!(plan.mapped, vec![(1, Convert::Text), (2, Convert::Number)]);
        assert_eq!(plan.folds[0], vec![(4, "app".to_owned())]);
        assert_eq!(plan.folds[1], vec![(5, "Team".to_owned())]);
        assert_eq!(
            plan.columns,
            vec![
                "lineitem_usagestartdate",
                "lineitem_unblendedcost",
                "resourcetags",
                "costcategory"
            ]
        );
        let err = AWS_CUR
            .plan(&header("lineItem/UsageStartDate,other"))
            .unwrap_err();
        assert!(err.contains("lineitem_unblendedcost"), "{err}");
    }
}
