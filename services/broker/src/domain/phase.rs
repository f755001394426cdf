//! A deployment's lifecycle and the decisions on repeated requests (the Open Service Broker
//! API's idempotency rules on KIDP's routes). Pure: the store supplies what exists.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::Spec;

/// The seed's callback phases, which are also a deployment's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Phase {
    Provisioning,
    Ready,
    Failed,
    Deleting,
    Deleted,
}

impl Phase {
    pub const ALL: [Self; 5] = [
        Self::Provisioning,
        Self::Ready,
        Self::Failed,
        Self::Deleting,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "Provisioning",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
            Self::Deleted => "Deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Work is owed: the worker creates or deletes.
    pub fn in_progress(self) -> bool {
        matches!(self, Self::Provisioning | Self::Deleting)
    }
}

/// What exists under a provision request's natural key (namespace, type, name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing<'a> {
    pub id: &'a str,
    pub phase: Phase,
    pub spec: &'a Spec,
}

/// The answer to `POST /v1/provision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provision {
    /// Nothing live under the key: a new deployment.
    Create,
    /// The same spec, still being created (202, the same id).
    InProgress,
    /// The same spec, Ready (200, the same id).
    Done,
    /// The same spec, Failed: created again under the same id (202).
    Retry,
    /// Another spec, or a deletion in progress (409).
    Conflict(String),
}

pub fn provision(existing: Option<&Existing<'_>>, spec: &Spec) -> Provision {
    let Some(e) = existing else {
        return Provision::Create;
    };
    match e.phase {
        Phase::Deleted => Provision::Create,
        Phase::Deleting => Provision::Conflict(format!(
            "deployment {} is being deprovisioned; provision again once it is Deleted",
            e.id
        )),
        _ if e.spec != spec => Provision::Conflict(format!(
            "deployment {} already provisions this resource with another spec",
            e.id
        )),
        Phase::Provisioning => Provision::InProgress,
        Phase::Ready => Provision::Done,
        Phase::Failed => Provision::Retry,
    }
}

/// The answer to `POST /v1/deprovision` for a known deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deprovision {
    /// Start deleting (from Provisioning this halts the creation).
    Delete,
    /// Already deleting or deleted: accepted again, nothing changes.
    Already,
}

pub fn deprovision(phase: Phase) -> Deprovision {
    match phase {
        Phase::Deleting | Phase::Deleted => Deprovision::Already,
        Phase::Provisioning | Phase::Ready | Phase::Failed => Deprovision::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::{ResourceType, SpecRequest};

    fn spec(version: &str) -> Spec {
        SpecRequest {
            engine: Some("postgresql".into()),
            version: Some(version.into()),
            ..SpecRequest::default()
        }
        .check(ResourceType::Database)
        .unwrap()
    }

    #[test]
    fn repeats_follow_the_service_broker_rules() {
        let (same, other) = (spec("15"), spec("16"));
        let at = |phase| Existing {
            id: "deploy-1",
            phase,
            spec: &same,
        };
        let table = [
            (None, &same, Provision::Create),
            (Some(at(Phase::Deleted)), &other, Provision::Create),
            (Some(at(Phase::Provisioning)), &same, Provision::InProgress),
            (Some(at(Phase::Ready)), &same, Provision::Done),
            (Some(at(Phase::Failed)), &same, Provision::Retry),
        ];
        for (existing, asked, want) in table {
            assert_eq!(provision(existing.as_ref(), asked), want, "{existing:?}");
        }
        for phase in [Phase::Provisioning, Phase::Ready, Phase::Failed] {
            assert!(matches!(
                provision(Some(&at(phase)), &other),
                Provision::Conflict(m) if m.contains("another spec")
            ));
        }
        assert!(matches!(
            provision(Some(&at(Phase::Deleting)), &same),
            Provision::Conflict(m) if m.contains("being deprovisioned")
        ));
    }

    #[test]
    fn deprovision_is_idempotent() {
        assert_eq!(deprovision(Phase::Provisioning), Deprovision::Delete);
        assert_eq!(deprovision(Phase::Ready), Deprovision::Delete);
        assert_eq!(deprovision(Phase::Failed), Deprovision::Delete);
        assert_eq!(deprovision(Phase::Deleting), Deprovision::Already);
        assert_eq!(deprovision(Phase::Deleted), Deprovision::Already);
    }
}
