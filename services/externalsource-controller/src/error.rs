//! The controller's one error type, classified: transient failures are retried with backoff,
//! configuration and permanent ones stall the source until its spec (or what it names)
//! changes.

use crate::domain::{conditions, policy::HookFailure};

/// How a failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Configuration,
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec (or a Secret it names) cannot work as it is.
    #[error("{0}")]
    Configuration(String),
    /// The source answered, or failed to, in a way that may pass.
    #[error("{message}")]
    Fetch { class: Class, message: String },
    #[error(transparent)]
    Hook(#[from] HookFailure),
    #[error("storage: {0}")]
    Storage(String),
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn class(&self) -> Class {
        match self {
            Self::Configuration(_) | Self::Hook(HookFailure::Denied { .. }) => Class::Configuration,
            Self::Fetch { class, .. } => *class,
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.class(),
                _ => Class::Transient,
            },
            _ => Class::Transient,
        }
    }

    /// The condition type that says what failed, and its reason.
    pub fn condition(&self) -> (&'static str, &'static str) {
        match self {
            Self::Configuration(_) => (conditions::STALLED, "ConfigurationError"),
            Self::Fetch { .. } => (conditions::FETCH_FAILED, "FetchFailed"),
            Self::Hook(HookFailure::Denied { .. }) => (conditions::STALLED, "HookDenied"),
            Self::Hook(_) => (conditions::BUILD_FAILED, "HookFailed"),
            Self::Storage(_) => (conditions::STORAGE_FAILED, "StorageOperationFailed"),
            Self::Kube(_) | Self::Finalizer(_) => (conditions::FETCH_FAILED, "ApiServerError"),
        }
    }

    /// The label of `externalsource_reconciliation_total{result}`.
    pub fn metric_label(&self) -> &'static str {
        match self.class() {
            Class::Transient => "transient_error",
            Class::Configuration => "configuration_error",
            Class::Permanent => "permanent_error",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
