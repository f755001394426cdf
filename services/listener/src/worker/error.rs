//! Why an operation did not finish, and whether that may heal by itself.

use crate::sources_client::ClientError;

/// Why an operation did not finish.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpError {
    #[error(transparent)]
    Sources(#[from] ClientError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl OpError {
    /// Whether the failure may heal by itself: sources-api unreachable, timing out or
    /// answering 5xx (or 408/429), the database unavailable or in a conflict. Those only delay
    /// the next attempt; the others count toward parking.
    pub(super) fn heals(&self) -> bool {
        match self {
            Self::Sources(ClientError::Transport { .. }) => true,
            Self::Sources(ClientError::Status { status, .. }) => {
                *status >= 500 || *status == 408 || *status == 429
            }
            Self::Sources(_) | Self::Other(_) => false,
            Self::Database(sqlx::Error::Database(e)) => {
                // Connection (08), transaction rollback (40), resources (53), operator
                // intervention (57) and system (58) errors pass; the others are the data's.
                let code = e.code().unwrap_or_default();
                ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }
            Self::Database(_) => true,
        }
    }
}
