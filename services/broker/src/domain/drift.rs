//! Drift: what a driver observed against the desired spec, in the KIDP broker's wording
//! ("Version mismatch: desired=15, actual=15.2 (patch update)"). Pure.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a driver saw of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Each object the resource is made of, and whether it exists (`database app`, `role app`).
    pub parts: Vec<(String, bool)>,
    /// The engine's version as the server reports it (`15.14`).
    pub version: Option<String>,
    pub replicas: Option<u32>,
    pub connection_limit: Option<i32>,
    pub partitions: Option<u32>,
    /// CPU and memory limits (`cpu=1, memory=2Gi`).
    pub resources: Option<String>,
    /// Why the resource is not serving yet (`1/3 replicas ready`).
    pub waiting: Option<String>,
    pub usage: Usage,
}

/// The seed's `resourceUsage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_usage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// What the desired spec says of the same things.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired<'a> {
    pub version: &'a str,
    pub replicas: Option<u32>,
    pub connection_limit: Option<i32>,
    pub partitions: Option<u32>,
    pub resources: Option<String>,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    pub details: Vec<String>,
    /// Something a repair can put back (a missing object, a setting changed); a patch-level
    /// version difference is reported but is not repaired.
    pub repairable: bool,
    /// Every object is missing: the resource is gone.
    pub gone: bool,
    /// Something other than a patch-level update (KIDP's "expected" drift): the resource is
    /// Degraded and the drift is counted.
    pub unexpected: bool,
    /// Not every replica serves (not drift: the resource is Degraded while it lasts).
    pub waiting: Option<String>,
}

impl Drift {
    pub fn detected(&self) -> bool {
        !self.details.is_empty()
    }

    /// The seed's `healthStatus` for what was found.
    pub fn health(&self) -> &'static str {
        if self.gone {
            "Unhealthy"
        } else if self.unexpected || self.waiting.is_some() {
            "Degraded"
        } else {
            "Healthy"
        }
    }
}

pub fn compare(desired: &Desired<'_>, observed: &Observed) -> Drift {
    let mut drift = Drift::default();
    for (part, exists) in &observed.parts {
        if !exists {
            drift
                .details
                .push(format!("Missing: {part} (removed outside the broker)"));
            drift.repairable = true;
        }
    }
    drift.unexpected = drift.repairable;
    drift.gone = !observed.parts.is_empty() && observed.parts.iter().all(|(_, e)| !e);
    if let Some(actual) = &observed.version
        && let Some(kind) = version_change(desired.version, actual)
    {
        drift.details.push(format!(
            "Version mismatch: desired={}, actual={actual} ({kind})",
            desired.version
        ));
        drift.unexpected |= kind != "patch update";
    }
    let mut setting = |name: &str, want: Option<String>, got: Option<String>| {
        if let (Some(want), Some(got)) = (want, got)
            && want != got
        {
            drift
                .details
                .push(format!("{name} mismatch: desired={want}, actual={got}"));
            drift.repairable = true;
            drift.unexpected = true;
        }
    };
    let text = |v: Option<u32>| v.map(|v| v.to_string());
    setting("Replicas", text(desired.replicas), text(observed.replicas));
    setting(
        "Connection limit",
        desired.connection_limit.map(|v| v.to_string()),
        observed.connection_limit.map(|v| v.to_string()),
    );
    setting(
        "Partitions",
        text(desired.partitions),
        text(observed.partitions),
    );
    setting(
        "Resources",
        desired.resources.clone(),
        observed.resources.clone(),
    );
    drift.waiting = observed.waiting.clone();
    drift
}

/// How `actual` differs from `desired` (`15` against `15.2`: a patch update), or `None` when
/// it is the same version.
pub fn version_change(desired: &str, actual: &str) -> Option<&'static str> {
    let d: Vec<&str> = desired.split('.').collect();
    let a: Vec<&str> = actual.split('.').collect();
    if a.starts_with(&d) {
        return (a.len() > d.len()).then_some("patch update");
    }
    if a.first() != d.first() {
        Some("major version mismatch")
    } else {
        Some("minor version mismatch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_the_seeds_words() {
        let table = [
            ("15", "15", None),
            ("15", "15.2", Some("patch update")),
            ("8.0", "8.0.36", Some("patch update")),
            ("8.0", "8.4.1", Some("minor version mismatch")),
            ("15", "16.1", Some("major version mismatch")),
            ("15", "1", Some("major version mismatch")),
        ];
        for (d, a, want) in table {
            assert_eq!(version_change(d, a), want, "{d} {a}");
        }
    }

    #[test]
    fn the_seeds_example() {
        let d = compare(
            &Desired {
                version: "15",
                ..Desired::default()
            },
            &Observed {
                parts: vec![("database x".into(), true)],
                version: Some("15.2".into()),
                ..Observed::default()
            },
        );
        assert_eq!(
            d.details,
            ["Version mismatch: desired=15, actual=15.2 (patch update)"]
        );
        assert!(d.detected() && !d.repairable && !d.gone && !d.unexpected);
        assert_eq!(d.health(), "Healthy");
    }

    #[test]
    fn missing_objects_and_changed_settings_are_repairable() {
        let d = compare(
            &Desired {
                version: "15",
                replicas: Some(3),
                connection_limit: Some(25),
                partitions: Some(6),
                resources: Some("cpu=1, memory=2Gi".into()),
            },
            &Observed {
                parts: vec![("role app".into(), false), ("database app".into(), true)],
                version: Some("15".into()),
                replicas: Some(1),
                connection_limit: Some(-1),
                partitions: Some(6),
                resources: Some("cpu=1, memory=2Gi".into()),
                ..Observed::default()
            },
        );
        assert_eq!(
            d.details,
            [
                "Missing: role app (removed outside the broker)",
                "Replicas mismatch: desired=3, actual=1",
                "Connection limit mismatch: desired=25, actual=-1",
            ]
        );
        assert!(d.repairable && !d.gone && d.unexpected);
        assert_eq!(d.health(), "Degraded");
        let all_gone = compare(
            &Desired::default(),
            &Observed {
                parts: vec![("role app".into(), false), ("database app".into(), false)],
                ..Observed::default()
            },
        );
        assert!(all_gone.gone);
        assert_eq!(all_gone.health(), "Unhealthy");
        let major = compare(
            &Desired {
                version: "15",
                ..Desired::default()
            },
            &Observed {
                version: Some("16.1".into()),
                ..Observed::default()
            },
        );
        assert!(major.unexpected && !major.repairable);
    }

    #[test]
    fn nothing_to_report() {
        let d = compare(
            &Desired {
                version: "15",
                connection_limit: Some(10),
                ..Desired::default()
            },
            &Observed {
                parts: vec![("database app".into(), true)],
                version: Some("15".into()),
                connection_limit: Some(10),
                ..Observed::default()
            },
        );
        assert!(!d.detected());
    }

    #[test]
    fn other_resources_are_drift_and_replicas_not_serving_only_degrade() {
        let desired = Desired {
            version: "16",
            resources: Some("cpu=2, memory=4Gi".into()),
            ..Desired::default()
        };
        let changed = compare(
            &desired,
            &Observed {
                resources: Some("cpu=8, memory=4Gi".into()),
                ..Observed::default()
            },
        );
        assert_eq!(
            changed.details,
            ["Resources mismatch: desired=cpu=2, memory=4Gi, actual=cpu=8, memory=4Gi"]
        );
        assert!(changed.repairable && changed.unexpected);
        let starting = compare(
            &desired,
            &Observed {
                resources: Some("cpu=2, memory=4Gi".into()),
                waiting: Some("1/3 replicas ready".into()),
                ..Observed::default()
            },
        );
        assert!(!starting.detected() && !starting.repairable);
        assert_eq!(starting.health(), "Degraded");
    }
}
