//! What an operation writes back to its source's sync row.

use keel_crypto::SecretBox;
use serde_json::json;
use uuid::Uuid;

use super::fetch::Fetched;
use crate::{
    domain::{SyncState, Truth, echo},
    secrets,
    store::{self, SourceRow},
};

/// What an operation leaves in the sync row besides the fetched settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome<'a> {
    pub(super) state: SyncState,
    pub(super) reason: Option<&'a str>,
    /// The provider the source is now linked to.
    pub(super) link: Option<Uuid>,
    /// The claim's generation when its changes are all written: it only reports from now on.
    pub(super) reporting: Option<i64>,
}

impl Outcome<'_> {
    pub(super) fn state(state: SyncState) -> Self {
        Self {
            state,
            reason: None,
            link: None,
            reporting: None,
        }
    }
}

/// Writes the fetched details and settings (credentials sealed) and the state; with `link`,
/// also the provider the source is now linked to. Answers the source's creation time when
/// this is its first link (for the source-to-provider latency).
pub(super) async fn save_row(
    conn: &mut sqlx::PgConnection,
    secrets_box: &SecretBox,
    row: &SourceRow,
    fetched: &Fetched,
    outcome: Outcome<'_>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    let saved = saved(secrets_box, row, fetched, outcome);
    store::sources::save(conn, row.source_id, &saved).await
}

/// What [`save_row`] writes.
pub(super) fn saved<'a>(
    secrets_box: &SecretBox,
    row: &SourceRow,
    fetched: &Fetched,
    outcome: Outcome<'a>,
) -> store::sources::Saved<'a> {
    let (name, ty, authentication, billing, paused) = match &fetched.truth {
        Truth::Present(d) => {
            let sealed = secrets::seal(secrets_box, &row.org_id, &d.credentials);
            let authentication = if sealed.is_empty() {
                json!({})
            } else {
                json!({ "credentials": sealed })
            };
            let billing = echo::billing_record(d.ty, d.data_source.as_ref());
            (
                Some(d.name.clone()),
                d.ty.as_str().to_owned(),
                authentication,
                billing,
                d.paused,
            )
        }
        _ => (
            row.name.clone(),
            row.source_type.clone(),
            row.authentication.0.clone(),
            row.billing_source.0.clone(),
            row.paused,
        ),
    };
    store::sources::Saved {
        name,
        source_type: ty,
        authentication,
        billing_source: billing,
        paused,
        source_uuid: fetched.uid,
        application_id: fetched.application_id,
        state: outcome.state,
        reason: outcome.reason,
        link: outcome.link,
        reporting: outcome.reporting,
    }
}
