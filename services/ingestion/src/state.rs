use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::objects::Objects;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub objects: Objects,
    pub max_upload: usize,
    /// Wakes the workers when a request queues a task.
    pub wake: Arc<Notify>,
}
