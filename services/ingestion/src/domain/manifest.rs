//! Report manifests as the producers write them: the AWS Cost and Usage Report's
//! `<report>-Manifest.json` and the OpenShift cost operator's `manifest.json`.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

/// The fields of a CUR manifest Koku uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsManifest {
    pub assembly_id: String,
    /// The first day of the billing month.
    pub billing_period_start: NaiveDate,
    /// The report files, as object keys in the bucket.
    pub report_keys: Vec<String>,
    pub account: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAws {
    assembly_id: String,
    billing_period: RawPeriod,
    #[serde(default)]
    report_keys: Vec<String>,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
struct RawPeriod {
    start: String,
}

impl AwsManifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let raw: RawAws = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError(format!("the manifest is not a CUR manifest: {e}")))?;
        if raw.assembly_id.trim().is_empty() {
            return Err(ManifestError("the manifest has no assemblyId".into()));
        }
        // Koku's format: 20261101T000000.000Z.
        let start = NaiveDateTime::parse_from_str(&raw.billing_period.start, "%Y%m%dT%H%M%S%.3fZ")
            .map_err(|_| {
                ManifestError(format!(
                    "billingPeriod.start {:?} is not of the form 20261101T000000.000Z",
                    raw.billing_period.start
                ))
            })?;
        Ok(Self {
            assembly_id: raw.assembly_id,
            billing_period_start: start.date().with_day(1).expect("day 1 exists"),
            report_keys: raw.report_keys,
            account: raw.account.filter(|a| !a.is_empty()),
        })
    }
}

/// Where a month's CUR manifest is: `[<prefix>/]<name>/<YYYYMMDD-YYYYMMDD>/<name>-Manifest.json`.
pub fn aws_manifest_key(prefix: &str, name: &str, month: NaiveDate) -> String {
    let next = month
        .checked_add_months(chrono::Months::new(1))
        .expect("months in range");
    let range = format!("{}-{}", month.format("%Y%m%d"), next.format("%Y%m%d"));
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{name}/{range}/{name}-Manifest.json")
    } else {
        format!("{prefix}/{name}/{range}/{name}-Manifest.json")
    }
}

/// Whether a path segment is a CUR billing range (`20261101-20261201`).
pub fn is_billing_range(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() == 17
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// The fields of an OpenShift operator's `manifest.json` Koku uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OcpManifest {
    pub uuid: String,
    pub cluster_id: String,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub certified: Option<bool>,
    #[serde(default)]
    pub daily_reports: Option<bool>,
}

impl OcpManifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Self = serde_json::from_slice(bytes).map_err(|e| {
            ManifestError(format!("manifest.json is not an operator manifest: {e}"))
        })?;
        if uuid::Uuid::parse_str(&m.uuid).is_err() {
            return Err(ManifestError(format!(
                "manifest.json: uuid {:?} is not a UUID",
                m.uuid
            )));
        }
        // Koku puts the cluster id in paths.
        if m.cluster_id.is_empty()
            || m.cluster_id.len() > 255
            || !m
                .cluster_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || m.cluster_id.starts_with('.')
        {
            return Err(ManifestError(format!(
                "manifest.json: cluster_id {:?} is not a cluster id",
                m.cluster_id
            )));
        }
        if let Some(bad) = m.files.iter().find(|f| !is_plain_file_name(f)) {
            return Err(ManifestError(format!(
                "manifest.json: {bad:?} is not a file name"
            )));
        }
        Ok(m)
    }

    pub fn start_time(&self) -> Option<DateTime<Utc>> {
        self.start.as_deref().and_then(parse_time)
    }

    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        self.end.as_deref().and_then(parse_time)
    }

    pub fn export_time(&self) -> Option<DateTime<Utc>> {
        self.date.as_deref().and_then(parse_time)
    }

    /// The billing month: that of `start`, else of `date`.
    pub fn billing_month(&self) -> Option<NaiveDate> {
        self.start_time()
            .or_else(|| self.export_time())
            .map(|t| t.date_naive().with_day(1).expect("day 1 exists"))
    }
}

/// A file name with no directory part.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The operator's times: ISO 8601 with an offset, or naive (UTC, as Koku reads them).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cur_manifest_as_nise_writes_it() {
        let m = AwsManifest::parse(
            br#"{"assemblyId":"9f08d778-aaf6-4362-b6de-3f462cb3ac2e","account":"9999",
                 "billingPeriod":{"start":"20261101T000000.000Z","end":"20261201T000000.000Z"},
                 "reportKeys":["pre/rep/20261101-20261201/9f08/November-2026-rep.csv.gz"]}"#,
        )
        .unwrap();
        assert_eq!(m.assembly_id, "9f08d778-aaf6-4362-b6de-3f462cb3ac2e");
        assert_eq!(
            m.billing_period_start,
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(m.report_keys.len(), 1);
        assert!(AwsManifest::parse(b"{}").is_err());
        assert!(
            AwsManifest::parse(br#"{"assemblyId":"a","billingPeriod":{"start":"2026-11-01"}}"#)
                .unwrap_err()
                .0
                .contains("billingPeriod.start")
        );
    }

    #[test]
    fn manifest_keys_with_and_without_a_prefix() {
        let nov = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(
            aws_manifest_key("pre/x/", "rep", nov),
            "pre/x/rep/20261201-20270101/rep-Manifest.json"
        );
        assert_eq!(
            aws_manifest_key("", "rep", nov),
            "rep/20261201-20270101/rep-Manifest.json"
        );
        assert!(is_billing_range("20261201-20270101"));
        assert!(!is_billing_range("20261201_20270101"));
        assert!(!is_billing_range("2026120-20270101"));
    }

    #[test]
    fn an_operator_manifest_and_what_is_refused() {
        let m = OcpManifest::parse(
            br#"{"cluster_id":"my-cluster","uuid":"20408808-b646-494b-b67f-54f0d7dd139e",
                 "date":"2026-11-01T00:00:00.000000+00:00","files":["a_openshift_report.0.csv"],
                 "start":"2026-11-02T00:00:00.000000+00:00","end":"2026-11-03T00:00:00.000000",
                 "version":"5.4.4","certified":false}"#,
        )
        .unwrap();
        assert_eq!(m.billing_month(), NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(
            m.end_time().unwrap().to_rfc3339(),
            "2026-11-03T00:00:00+00:00"
        );
        let bad = |json: &str| OcpManifest::parse(json.as_bytes()).unwrap_err().0;
        assert!(bad(r#"{"cluster_id":"c","uuid":"nope"}"#).contains("uuid"));
        assert!(
            bad(r#"{"cluster_id":"../etc","uuid":"20408808-b646-494b-b67f-54f0d7dd139e"}"#)
                .contains("cluster_id")
        );
        assert!(
            bad(r#"{"cluster_id":"c","uuid":"20408808-b646-494b-b67f-54f0d7dd139e","files":["../x.csv"]}"#)
                .contains("file name")
        );
    }
}
