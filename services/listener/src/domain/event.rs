//! Platform Sources events as the listener reads them: the header rules and the
//! cost-management filter of Koku's listener. Only ids are read from payloads; everything
//! else is fetched from the Sources REST API later, off the consuming task.

use keel_domain::{
    identity::XRhIdentity,
    sources_events::{Action, EventType, Resource},
};
use keel_events::Message;
use serde_json::Value;

use super::provider_type::{COST_AUTHTYPES, Object};

/// The events that concern cost management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ApplicationCreate,
    ApplicationUpdate,
    ApplicationPause,
    ApplicationUnpause,
    ApplicationDestroy,
    AuthenticationCreate,
    AuthenticationUpdate,
    SourceUpdate,
}

impl EventKind {
    pub fn parse(event_type: &str) -> Option<Self> {
        Self::from_event_type(EventType::parse(event_type)?)
    }

    /// The events of the stream cost management follows; `None` for the others.
    pub fn from_event_type(event: EventType) -> Option<Self> {
        Some(match (event.resource, event.action) {
            (Resource::Application, Action::Create) => Self::ApplicationCreate,
            (Resource::Application, Action::Update) => Self::ApplicationUpdate,
            (Resource::Application, Action::Pause) => Self::ApplicationPause,
            (Resource::Application, Action::Unpause) => Self::ApplicationUnpause,
            (Resource::Application, Action::Destroy) => Self::ApplicationDestroy,
            (Resource::Authentication, Action::Create) => Self::AuthenticationCreate,
            (Resource::Authentication, Action::Update) => Self::AuthenticationUpdate,
            (Resource::Source, Action::Update) => Self::SourceUpdate,
            _ => return None,
        })
    }

    pub fn event_type(self) -> EventType {
        match self {
            Self::ApplicationCreate => Resource::Application.create(),
            Self::ApplicationUpdate => Resource::Application.update(),
            Self::ApplicationPause => Resource::Application.pause(),
            Self::ApplicationUnpause => Resource::Application.unpause(),
            Self::ApplicationDestroy => Resource::Application.destroy(),
            Self::AuthenticationCreate => Resource::Authentication.create(),
            Self::AuthenticationUpdate => Resource::Authentication.update(),
            Self::SourceUpdate => Resource::Source.update(),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.event_type().as_str()
    }

    /// Events that may start following a source not seen before (Koku's `create_source_event`);
    /// the others concern known sources only.
    pub fn creates_row(self) -> bool {
        matches!(self, Self::ApplicationCreate | Self::AuthenticationCreate)
    }
}

/// What an application event's payload says of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppFacts {
    pub extra: Object,
    pub paused: bool,
}

impl AppFacts {
    /// Read from an application event's payload (`extra` and `paused_at`); `None` when the
    /// payload does not carry them.
    pub fn from_payload(payload: &Value) -> Option<Self> {
        let extra = match payload.get("extra")? {
            Value::Object(extra) => extra.clone(),
            Value::Null => Object::new(),
            _ => return None,
        };
        let paused = !payload.get("paused_at")?.is_null();
        Some(Self { extra, paused })
    }
}

/// A relevant event, with the caller it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    pub kind: EventKind,
    pub source_id: i64,
    /// The raw base64 `x-rh-identity`, replayed on every REST call for this source.
    pub identity: String,
    pub account_id: Option<String>,
    /// The org id, with `SCHEMA_SUFFIX` appended as Koku does.
    pub org_id: String,
    /// What an application event's payload says of the application (to recognise events
    /// that change nothing, [`super::echo`]).
    pub application: Option<AppFacts>,
}

/// What the consumer does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Relevant(SourceEvent),
    /// Committed and skipped: not for cost management, or without the headers it needs.
    Skip(String),
    /// Committed after being written to the dead-letter table: a payload that cannot be read.
    Invalid(String),
}

fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// An id as sources-api-go sends it: a JSON integer, or a numeric string.
fn id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Koku appends `SCHEMA_SUFFIX` unless the org id already ends with it.
fn with_suffix(org_id: &str, suffix: &str) -> String {
    if org_id.ends_with(suffix) {
        org_id.to_owned()
    } else {
        format!("{org_id}{suffix}")
    }
}

/// Reads a message: event type, identity and org id from the headers (org id from
/// `x-rh-sources-org-id`, else the identity's `org_id`), the source id from the payload, and
/// the cost-management filter (application type id for application events, authentication
/// type for authentication events).
pub fn parse(message: &Message, cost_type_id: i64, schema_suffix: &str) -> Parsed {
    let Some(kind) = message.header("event_type").and_then(EventKind::parse) else {
        return Parsed::Skip(format!(
            "event type {:?} is not for cost management",
            message.header("event_type").unwrap_or("")
        ));
    };
    let Some(identity) = present(message.header("x-rh-identity")) else {
        return Parsed::Skip("no x-rh-identity header".to_owned());
    };
    let decoded = XRhIdentity::decode(identity).ok();
    let org_id = present(message.header("x-rh-sources-org-id"))
        .map(str::to_owned)
        .or_else(|| {
            decoded
                .as_ref()
                .and_then(|d| d.identity.org_id.clone())
                .filter(|o| !o.is_empty())
        });
    let Some(org_id) = org_id else {
        return Parsed::Skip("no org id in the headers or the identity".to_owned());
    };
    let account_id = present(message.header("x-rh-sources-account-number"))
        .map(str::to_owned)
        .or_else(|| {
            decoded
                .as_ref()
                .and_then(|d| d.identity.account_number.clone())
        })
        .filter(|a| !a.is_empty());
    let payload: Value = match serde_json::from_slice(&message.payload) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(_) => return Parsed::Invalid("the payload is not a JSON object".to_owned()),
        Err(e) => return Parsed::Invalid(format!("the payload is not JSON: {e}")),
    };
    let source_field = if kind == EventKind::SourceUpdate {
        "id"
    } else {
        "source_id"
    };
    let Some(source_id) = payload.get(source_field).and_then(id) else {
        return Parsed::Invalid(format!("the payload has no integer {source_field}"));
    };
    match kind {
        EventKind::ApplicationCreate
        | EventKind::ApplicationUpdate
        | EventKind::ApplicationPause
        | EventKind::ApplicationUnpause
        | EventKind::ApplicationDestroy => {
            let app_type = payload
                .get("application_type_id")
                .and_then(id)
                .unwrap_or(-1);
            if app_type != cost_type_id {
                return Parsed::Skip(format!(
                    "application type {app_type} is not cost management"
                ));
            }
        }
        EventKind::AuthenticationCreate | EventKind::AuthenticationUpdate => {
            let authtype = payload
                .get("authtype")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !COST_AUTHTYPES.contains(&authtype) {
                return Parsed::Skip(format!(
                    "authentication type {authtype:?} is not for cost management"
                ));
            }
        }
        EventKind::SourceUpdate => {}
    }
    let application = matches!(
        kind,
        EventKind::ApplicationUpdate | EventKind::ApplicationPause | EventKind::ApplicationUnpause
    )
    .then(|| AppFacts::from_payload(&payload))
    .flatten();
    Parsed::Relevant(SourceEvent {
        kind,
        source_id,
        identity: identity.to_owned(),
        account_id,
        org_id: with_suffix(&org_id, schema_suffix),
        application,
    })
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde_json::json;

    use super::*;

    fn identity(org: Option<&str>) -> String {
        let mut i = json!({"identity": {"account_number": "10001", "type": "User"}});
        if let Some(org) = org {
            i["identity"]["org_id"] = json!(org);
        }
        STANDARD.encode(i.to_string())
    }

    fn message(headers: &[(&str, &str)], payload: Value) -> Message {
        Message {
            topic: "platform.sources.event-stream".into(),
            partition: 0,
            offset: 7,
            key: None,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            payload: payload.to_string().into_bytes(),
        }
    }

    #[test]
    fn application_events_for_cost_management_are_relevant() {
        let id = identity(Some("1234567"));
        let m = message(
            &[
                ("event_type", "Application.create"),
                ("x-rh-identity", &id),
                ("x-rh-sources-org-id", "1234567"),
            ],
            json!({"id": 1, "source_id": 10, "application_type_id": 2}),
        );
        assert_eq!(
            parse(&m, 2, ""),
            Parsed::Relevant(SourceEvent {
                kind: EventKind::ApplicationCreate,
                source_id: 10,
                identity: id.clone(),
                account_id: Some("10001".into()),
                org_id: "1234567".into(),
                application: None,
            })
        );
        assert!(
            matches!(parse(&m, 3, ""), Parsed::Skip(_)),
            "another application type"
        );
    }

    #[test]
    fn org_id_falls_back_to_the_identity_and_is_required() {
        let id = identity(Some("777"));
        let m = message(
            &[
                ("event_type", "Source.update"),
                ("x-rh-identity", &id),
                ("x-rh-sources-org-id", ""),
            ],
            json!({"id": "42"}),
        );
        let Parsed::Relevant(e) = parse(&m, 2, "") else {
            panic!("relevant")
        };
        assert_eq!((e.org_id.as_str(), e.source_id), ("777", 42));

        let no_org = identity(None);
        let m = message(
            &[("event_type", "Source.update"), ("x-rh-identity", &no_org)],
            json!({"id": 42}),
        );
        assert!(matches!(parse(&m, 2, ""), Parsed::Skip(_)));
        let m = message(
            &[
                ("event_type", "Source.update"),
                ("x-rh-sources-org-id", "1"),
            ],
            json!({"id": 42}),
        );
        assert!(
            matches!(parse(&m, 2, ""), Parsed::Skip(_)),
            "identity is required"
        );
    }

    #[test]
    fn schema_suffix_is_appended_unless_already_there() {
        let id = identity(Some("1234567"));
        let m = message(
            &[("event_type", "Source.update"), ("x-rh-identity", &id)],
            json!({"id": 1}),
        );
        let Parsed::Relevant(e) = parse(&m, 2, "_dev") else {
            panic!()
        };
        assert_eq!(e.org_id, "1234567_dev");
        let Parsed::Relevant(e) = parse(&m, 2, "567") else {
            panic!()
        };
        assert_eq!(
            e.org_id, "1234567",
            "Koku's quirk: a suffix the id already ends with is not added"
        );
    }

    #[test]
    fn authentication_events_are_filtered_by_authtype() {
        let id = identity(Some("1"));
        let h = [
            ("event_type", "Authentication.create"),
            ("x-rh-identity", id.as_str()),
        ];
        let arn = message(&h, json!({"id": "5", "authtype": "arn", "source_id": 10}));
        assert!(matches!(
            parse(&arn, 2, ""),
            Parsed::Relevant(SourceEvent {
                kind: EventKind::AuthenticationCreate,
                source_id: 10,
                ..
            })
        ));
        let other = message(
            &h,
            json!({"id": "5", "authtype": "username_password", "source_id": 10}),
        );
        assert!(matches!(parse(&other, 2, ""), Parsed::Skip(_)));
    }

    #[test]
    fn unhandled_types_are_skipped_and_unreadable_payloads_are_invalid() {
        let id = identity(Some("1"));
        for t in [
            "Source.create",
            "Source.destroy",
            "Endpoint.create",
            "Records.update",
        ] {
            let m = message(
                &[("event_type", t), ("x-rh-identity", &id)],
                json!({"id": 1}),
            );
            assert!(matches!(parse(&m, 2, ""), Parsed::Skip(_)), "{t}");
        }
        let missing = message(
            &[("event_type", "Application.create"), ("x-rh-identity", &id)],
            json!({"application_type_id": 2}),
        );
        assert!(matches!(parse(&missing, 2, ""), Parsed::Invalid(_)));
        let mut garbage = message(
            &[("event_type", "Application.create"), ("x-rh-identity", &id)],
            json!({}),
        );
        garbage.payload = b"not json".to_vec();
        assert!(matches!(parse(&garbage, 2, ""), Parsed::Invalid(_)));
    }
}
