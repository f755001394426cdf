use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Notify;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub schema_suffix: String,
    /// Wakes the workers when a request queues an operation.
    pub wake: Arc<Notify>,
}
