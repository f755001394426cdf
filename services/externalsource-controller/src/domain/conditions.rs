//! Conditions in Flux's (kstatus) manner: `Ready` always present; `Reconciling`, `Stalled`,
//! `FetchFailed` and `StorageOperationFailed` present only while true; a condition's
//! `lastTransitionTime` moves only when its status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const FETCH_FAILED: &str = "FetchFailed";
pub const STORAGE_FAILED: &str = "StorageOperationFailed";
pub const BUILD_FAILED: &str = "BuildFailed";
pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";

/// The outcome of a reconciliation, as conditions say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (or unchanged): Ready, the artifact in storage.
    Succeeded { message: String },
    /// Failed, will be retried: Ready False, Reconciling with retry, and the failure's type.
    Retrying {
        kind: &'static str,
        reason: String,
        message: String,
    },
    /// Will not succeed until the spec changes: Ready False and Stalled.
    Stalled { reason: String, message: String },
    /// Suspended: Ready keeps its status, with the reason Suspended.
    Suspended,
}

fn set(
    list: &mut Vec<Condition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let fresh = Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    };
    match list.iter_mut().find(|c| c.type_ == kind) {
        Some(c) if c.status == status => {
            c.reason = fresh.reason;
            c.message = fresh.message;
            c.observed_generation = generation;
        }
        Some(c) => *c = fresh,
        None => list.push(fresh),
    }
}

fn remove(list: &mut Vec<Condition>, kinds: &[&str]) {
    list.retain(|c| !kinds.contains(&c.type_.as_str()));
}

/// The conditions after `outcome`, from the ones before.
pub fn after(
    before: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut list = before.to_vec();
    match outcome {
        Outcome::Succeeded { message } => {
            remove(
                &mut list,
                &[
                    RECONCILING,
                    STALLED,
                    FETCH_FAILED,
                    STORAGE_FAILED,
                    BUILD_FAILED,
                ],
            );
            set(
                &mut list,
                READY,
                "True",
                "Succeeded",
                message,
                generation,
                now,
            );
            set(
                &mut list,
                ARTIFACT_IN_STORAGE,
                "True",
                "Succeeded",
                message,
                generation,
                now,
            );
        }
        Outcome::Retrying {
            kind,
            reason,
            message,
        } => {
            remove(
                &mut list,
                &[STALLED, FETCH_FAILED, STORAGE_FAILED, BUILD_FAILED],
            );
            set(&mut list, kind, "True", reason, message, generation, now);
            set(
                &mut list,
                RECONCILING,
                "True",
                "ProgressingWithRetry",
                message,
                generation,
                now,
            );
            set(&mut list, READY, "False", reason, message, generation, now);
        }
        Outcome::Stalled { reason, message } => {
            remove(
                &mut list,
                &[RECONCILING, FETCH_FAILED, STORAGE_FAILED, BUILD_FAILED],
            );
            set(&mut list, STALLED, "True", reason, message, generation, now);
            set(&mut list, READY, "False", reason, message, generation, now);
        }
        Outcome::Suspended => {
            remove(&mut list, &[RECONCILING]);
            let status = list
                .iter()
                .find(|c| c.type_ == READY)
                .map_or("Unknown", |c| c.status.as_str())
                .to_owned();
            set(
                &mut list,
                READY,
                &status,
                "Suspended",
                "reconciliation is suspended",
                generation,
                now,
            );
        }
    }
    // Ready first, the rest by type: a stable order applies without churn.
    list.sort_by(|a, b| (a.type_ != READY, &a.type_).cmp(&(b.type_ != READY, &b.type_)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn kinds(list: &[Condition]) -> Vec<(&str, &str, &str)> {
        list.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn failures_show_while_true_and_go_on_success() {
        let fetch = Outcome::Retrying {
            kind: FETCH_FAILED,
            reason: "FetchFailed".into(),
            message: "503".into(),
        };
        let failed = after(&[], &fetch, Some(1), &at(10));
        assert_eq!(
            kinds(&failed),
            [
                ("Ready", "False", "FetchFailed"),
                ("FetchFailed", "True", "FetchFailed"),
                ("Reconciling", "True", "ProgressingWithRetry"),
            ]
        );
        let ok = after(
            &failed,
            &Outcome::Succeeded {
                message: "stored".into(),
            },
            Some(1),
            &at(20),
        );
        assert_eq!(
            kinds(&ok),
            [
                ("Ready", "True", "Succeeded"),
                ("ArtifactInStorage", "True", "Succeeded")
            ]
        );
        assert_eq!(ok[0].last_transition_time, at(20), "Ready changed status");
        let again = after(
            &ok,
            &Outcome::Succeeded {
                message: "stored 2".into(),
            },
            Some(2),
            &at(30),
        );
        assert_eq!(
            again[0].last_transition_time,
            at(20),
            "same status: same transition time"
        );
        assert_eq!(
            (again[0].message.as_str(), again[0].observed_generation),
            ("stored 2", Some(2))
        );
    }

    #[test]
    fn stalled_and_suspended() {
        let ok = after(
            &[],
            &Outcome::Succeeded {
                message: "m".into(),
            },
            Some(1),
            &at(1),
        );
        let stalled = after(
            &ok,
            &Outcome::Stalled {
                reason: "HookDenied".into(),
                message: "rm".into(),
            },
            Some(2),
            &at(2),
        );
        assert_eq!(
            kinds(&stalled),
            [
                ("Ready", "False", "HookDenied"),
                ("ArtifactInStorage", "True", "Succeeded"),
                ("Stalled", "True", "HookDenied"),
            ]
        );
        let suspended = after(&ok, &Outcome::Suspended, Some(1), &at(3));
        assert_eq!(kinds(&suspended)[0], ("Ready", "True", "Suspended"));
    }
}
