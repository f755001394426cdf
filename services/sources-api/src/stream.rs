//! sources-api on the event stream: the outbox it writes, and the consumer of
//! `platform.sources.status` through which applications report availability (reference §3.5).

use keel_domain::{
    AvailabilityStatus,
    identity::{IdentityHeaders, RequestIdentity},
    sources_events::AVAILABILITY_STATUS,
};
use keel_events::{Handler, Message, Outcome};
use serde::Deserialize;
use serde_json::Value;

pub use crate::store::OUTBOX;
pub use keel_domain::sources_events::{EVENT_STREAM_TOPIC, STATUS_TOPIC};

use crate::{
    domain::{
        limits::{self, Field},
        parse_flexible_id,
    },
    state::AppState,
    store::{
        Write,
        status::{self, Reported},
        tenants,
    },
};

#[derive(Debug, Deserialize)]
struct StatusMessage {
    resource_type: String,
    resource_id: Value,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<String>,
}

/// Applies `availability_status` messages to sources, applications, endpoints and
/// authentications, and announces them as sources-api-go does: `<Type>.update` and
/// `Records.update`, in the same transaction as the change.
pub struct StatusHandler {
    pub state: AppState,
}

impl Handler for StatusHandler {
    async fn handle(&self, message: &Message) -> Outcome {
        if message.header("event_type") != Some(AVAILABILITY_STATUS) {
            return Outcome::Done;
        }
        let identity = match RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: message.header("x-rh-identity"),
            account_number: message.header("x-rh-sources-account-number"),
            org_id: message.header("x-rh-sources-org-id"),
            user_id: None,
        })
        .and_then(RequestIdentity::require_tenancy)
        {
            Ok(identity) => identity,
            Err(e) => return Outcome::Fail(format!("no tenant: {e}")),
        };
        let body: StatusMessage = match serde_json::from_slice(&message.payload) {
            Ok(body) => body,
            Err(e) => return Outcome::Fail(format!("invalid status message: {e}")),
        };
        let status = match body.status.as_str() {
            "" => None,
            s => match s.parse::<AvailabilityStatus>() {
                Ok(s) => Some(s),
                Err(()) => return Outcome::Fail(format!("invalid status {s:?}")),
            },
        };
        let capped = [Field::Text("error", body.error.as_deref(), limits::MESSAGE)];
        if let Err(e) = limits::check(&capped) {
            return Outcome::Fail(e);
        }
        let Some(resource_id) = parse_flexible_id(&body.resource_id) else {
            return Outcome::Fail(format!("invalid resource_id {}", body.resource_id));
        };
        let Some(kind) = Reported::parse(&body.resource_type) else {
            return Outcome::Fail(format!(
                "invalid resource_type {:?}",
                body.resource_type.to_ascii_lowercase()
            ));
        };
        let tenant =
            match tenants::get_or_create(&self.state.db, &self.state.tenants, identity).await {
                Ok(t) => t,
                Err(e) => return Outcome::Retry(e.to_string()),
            };
        let applied = async {
            let mut w = Write::begin(&self.state.db, &tenant).await?;
            let found = status::apply(&mut w, kind, resource_id, status, body.error).await?;
            w.commit().await?;
            Ok::<_, crate::error::Error>(found)
        };
        match applied.await {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Fail(format!(
                "{} {resource_id} not found in the tenant",
                kind.resource().as_str()
            )),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
