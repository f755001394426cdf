//! What a provision request asks for, parsed and checked at the edge against the catalogue:
//! engines, versions and sizes, names as DNS labels, durations. No I/O.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::catalogue::{Engine, ResourceType, Size};

/// What a resource does when drift is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftPolicy {
    /// Report it in `/v1/resources` and the metrics only.
    #[default]
    Report,
    /// Report it and put the resource back as desired.
    Repair,
}

impl DriftPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Repair => "repair",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    #[serde(default)]
    pub at_rest: bool,
    #[serde(default)]
    pub in_transit: bool,
}

/// A checked spec, in its canonical form (defaults filled in): what is stored as desired
/// and compared for idempotency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub engine: Engine,
    pub version: String,
    pub size: Size,
    #[serde(default)]
    pub high_availability: bool,
    #[serde(default)]
    pub backup: Backup,
    #[serde(default)]
    pub encryption: Encryption,
    /// Topics: partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Topics and streams: how long messages are kept (`7d`, `12h`, `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    #[serde(default)]
    pub drift_policy: DriftPolicy,
}

/// The spec as a request sends it: every field optional so each gap is named.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpecRequest {
    pub engine: Option<String>,
    pub version: Option<String>,
    pub size: Option<String>,
    pub high_availability: Option<bool>,
    pub backup: Option<Backup>,
    pub encryption: Option<Encryption>,
    pub partitions: Option<u32>,
    pub retention: Option<String>,
    pub drift_policy: Option<DriftPolicy>,
}

/// A validation failure, worded for the `message` of a `validation_failed` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// Most partitions a topic may ask for.
pub const MAX_PARTITIONS: u32 = 1024;

impl SpecRequest {
    /// Checks the spec against the type's engines and versions and fills in defaults.
    pub fn check(self, kind: ResourceType) -> Result<Spec, Invalid> {
        let engines = kind.engines();
        let engine = match self.engine.as_deref() {
            None | Some("") => return Err(invalid("spec.engine is required")),
            Some(e) => Engine::parse(e)
                .filter(|e| engines.iter().any(|(x, _)| x == e))
                .ok_or_else(|| {
                    invalid(format!(
                        "spec.engine {e:?} is not supported for {kind}; supported: {}",
                        engines
                            .iter()
                            .map(|(e, _)| e.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        };
        let versions = engines
            .iter()
            .find(|(e, _)| *e == engine)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        let version = match self.version.as_deref() {
            None | Some("") => versions[0].to_owned(),
            Some(v) if versions.contains(&v) => v.to_owned(),
            Some(v) => {
                return Err(invalid(format!(
                    "spec.version {v:?} is not supported for {engine}; supported: {}",
                    versions.join(", ")
                )));
            }
        };
        let size = match self.size.as_deref() {
            None | Some("") => Size::Small,
            Some(s) => Size::parse(s).ok_or_else(|| {
                invalid(format!(
                    "spec.size {s:?} is not one of small, medium, large, xlarge"
                ))
            })?,
        };
        let is_stream = matches!(engine, Engine::Kafka | Engine::Nats);
        if self.partitions.is_some() && engine != Engine::Kafka {
            return Err(invalid("spec.partitions applies to Kafka topics only"));
        }
        let partitions = match self.partitions {
            Some(0) => return Err(invalid("spec.partitions must be at least 1")),
            Some(p) if p > MAX_PARTITIONS => {
                return Err(invalid(format!(
                    "spec.partitions must be at most {MAX_PARTITIONS}"
                )));
            }
            Some(p) => Some(p),
            None if engine == Engine::Kafka => Some(1),
            None => None,
        };
        let retention = match self.retention {
            Some(r) if !is_stream => {
                let _ = r;
                return Err(invalid(
                    "spec.retention applies to Kafka topics and NATS streams only",
                ));
            }
            Some(r) => {
                parse_duration(&r).ok_or_else(|| {
                    invalid(format!(
                        "spec.retention {r:?} is not a duration such as 7d, 12h or 30m"
                    ))
                })?;
                Some(r)
            }
            None => None,
        };
        let backup = self.backup.unwrap_or_default();
        if let Some(r) = &backup.retention {
            parse_duration(r).ok_or_else(|| {
                invalid(format!(
                    "spec.backup.retention {r:?} is not a duration such as 7d"
                ))
            })?;
        }
        if let Some(s) = &backup.schedule
            && s.split_whitespace().count() != 5
        {
            return Err(invalid(format!(
                "spec.backup.schedule {s:?} is not a five-field cron schedule"
            )));
        }
        Ok(Spec {
            engine,
            version,
            size,
            high_availability: self.high_availability.unwrap_or(false),
            backup,
            encryption: self.encryption.unwrap_or_default(),
            partitions,
            retention,
            drift_policy: self.drift_policy.unwrap_or_default(),
        })
    }
}

/// Seconds in `7d`, `12h`, `30m` or `45s`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (number, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// A Kubernetes namespace or resource name: an RFC 1123 DNS label (lowercase letters,
/// digits and `-`, starting and ending with a letter or digit, at most 63 characters).
pub fn check_dns_label(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(invalid(format!("{field} is required")));
    }
    let ok = value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {value:?} must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(engine: &str, version: Option<&str>) -> SpecRequest {
        SpecRequest {
            engine: Some(engine.into()),
            version: version.map(Into::into),
            ..SpecRequest::default()
        }
    }

    #[test]
    fn engines_and_versions_follow_the_table() {
        type Case<'a> = (
            ResourceType,
            &'a str,
            Option<&'a str>,
            Result<&'a str, &'a str>,
        );
        let cases: &[Case<'_>] = &[
            (ResourceType::Database, "postgresql", Some("15"), Ok("15")),
            (ResourceType::Database, "postgresql", None, Ok("16")),
            (
                ResourceType::Database,
                "postgresql",
                Some("11"),
                Err(
                    "spec.version \"11\" is not supported for postgresql; supported: 16, 15, 14, 13, 12",
                ),
            ),
            (ResourceType::Database, "mysql", Some("8.0"), Ok("8.0")),
            (
                ResourceType::Database,
                "mysql",
                Some("8"),
                Err(
                    "spec.version \"8\" is not supported for mysql; supported: 8.4, 8.0, 5.7, 11.4, 10.11, 10.6",
                ),
            ),
            (
                ResourceType::Database,
                "oracle",
                None,
                Err(
                    "spec.engine \"oracle\" is not supported for database; supported: postgresql, mysql, mongodb, redis",
                ),
            ),
            (ResourceType::Cache, "redis", Some("7.2"), Ok("7.2")),
            (
                ResourceType::Cache,
                "postgresql",
                None,
                Err(
                    "spec.engine \"postgresql\" is not supported for cache; supported: redis, memcached",
                ),
            ),
            (ResourceType::Queue, "nats", None, Ok("2")),
            (ResourceType::Topic, "kafka", None, Ok("3")),
            (
                ResourceType::Topic,
                "rabbitmq",
                None,
                Err("spec.engine \"rabbitmq\" is not supported for topic; supported: kafka"),
            ),
        ];
        for (kind, engine, version, want) in cases {
            let got = req(engine, *version).check(*kind);
            match want {
                Ok(v) => assert_eq!(got.unwrap().version, *v, "{kind} {engine} {version:?}"),
                Err(m) => assert_eq!(got.unwrap_err().0, *m, "{kind} {engine} {version:?}"),
            }
        }
    }

    #[test]
    fn a_missing_engine_is_named() {
        let got = SpecRequest::default().check(ResourceType::Database);
        assert_eq!(got.unwrap_err().0, "spec.engine is required");
    }

    #[test]
    fn defaults_are_filled_in_so_equal_requests_compare_equal() {
        let a = req("postgresql", Some("15"))
            .check(ResourceType::Database)
            .unwrap();
        let b = SpecRequest {
            size: Some("small".into()),
            high_availability: Some(false),
            ..req("postgresql", Some("15"))
        }
        .check(ResourceType::Database)
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, Size::Small);
        assert_eq!(a.drift_policy, DriftPolicy::Report);
    }

    #[test]
    fn topic_settings_apply_to_streams_only() {
        let topic = SpecRequest {
            partitions: Some(6),
            retention: Some("7d".into()),
            ..req("kafka", None)
        }
        .check(ResourceType::Topic)
        .unwrap();
        assert_eq!(
            (topic.partitions, topic.retention.as_deref()),
            (Some(6), Some("7d"))
        );
        assert_eq!(
            req("kafka", None)
                .check(ResourceType::Topic)
                .unwrap()
                .partitions,
            Some(1)
        );
        let bad = [
            (
                SpecRequest {
                    partitions: Some(3),
                    ..req("postgresql", None)
                },
                ResourceType::Database,
                "spec.partitions applies to Kafka topics only",
            ),
            (
                SpecRequest {
                    partitions: Some(0),
                    ..req("kafka", None)
                },
                ResourceType::Topic,
                "spec.partitions must be at least 1",
            ),
            (
                SpecRequest {
                    partitions: Some(5000),
                    ..req("kafka", None)
                },
                ResourceType::Topic,
                "spec.partitions must be at most 1024",
            ),
            (
                SpecRequest {
                    retention: Some("7d".into()),
                    ..req("rabbitmq", None)
                },
                ResourceType::Queue,
                "spec.retention applies to Kafka topics and NATS streams only",
            ),
            (
                SpecRequest {
                    retention: Some("soon".into()),
                    ..req("nats", None)
                },
                ResourceType::Queue,
                "spec.retention \"soon\" is not a duration such as 7d, 12h or 30m",
            ),
            (
                SpecRequest {
                    size: Some("huge".into()),
                    ..req("postgresql", None)
                },
                ResourceType::Database,
                "spec.size \"huge\" is not one of small, medium, large, xlarge",
            ),
        ];
        for (r, kind, message) in bad {
            assert_eq!(r.check(kind).unwrap_err().0, message);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("12h"), Some(43_200));
        assert_eq!(parse_duration("30m"), Some(1_800));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("7y"), None);
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "team-platform", "db1", &"a".repeat(63)] {
            assert!(check_dns_label("namespace", ok).is_ok(), "{ok}");
        }
        for bad in ["-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_dns_label("namespace", bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_dns_label("resourceName", "").unwrap_err().0,
            "resourceName is required"
        );
    }
}
