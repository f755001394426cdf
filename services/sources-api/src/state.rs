use std::{collections::HashMap, sync::Arc};

use axum::extract::FromRef;
use keel_crypto::SecretBox;
use keel_sources_http::AuthPolicy;
use sqlx::PgPool;

use crate::{creates::Creates, store::TenantCache};

/// What every handler can reach; cloned for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub db: PgPool,
    pub auth: AuthPolicy,
    pub secrets: SecretBox,
    /// Outbound calls (availability checks).
    pub http: reqwest::Client,
    /// `<APP>_AVAILABILITY_CHECK_URL` by `<APP>` (e.g. `COST_MANAGEMENT`).
    pub availability_check_urls: Arc<HashMap<String, String>>,
    /// Availability calls in flight at once; a check finding none free is skipped and counted.
    pub availability_checks: Arc<tokio::sync::Semaphore>,
    pub tenants: Arc<TenantCache>,
    /// Source creates, committed in batches.
    pub creates: Creates,
}

impl FromRef<AppState> for AuthPolicy {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
