//! Property tests of the event decoder: whatever the stream carries (any headers, any payload
//! bytes) is read as relevant, skipped or invalid, never a panic, and a relevant event carries
//! exactly the source id and org id the message named.

use keel_domain::identity::XRhIdentity;
use keel_events::Message;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::event::{EventKind, Parsed, parse};

const COST_TYPE: i64 = 2;

/// Event types the listener acts on, and some it does not.
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Application.create",
            "Application.update",
            "Application.pause",
            "Application.unpause",
            "Application.destroy",
            "Authentication.create",
            "Authentication.update",
            "Source.update",
            "Source.create",
            "Endpoint.create",
            "Records.update",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn message(headers: Vec<(String, Vec<u8>)>, payload: Vec<u8>) -> Message {
    Message {
        topic: "platform.sources.event-stream".into(),
        partition: 0,
        offset: 0,
        key: None,
        headers,
        payload,
    }
}

/// The payload sources-api would send for this event type about `source_id`.
fn payload_for(kind: EventKind, source_id: Value) -> Value {
    match kind {
        EventKind::SourceUpdate => json!({"id": source_id, "name": "s"}),
        EventKind::AuthenticationCreate | EventKind::AuthenticationUpdate => {
            json!({"id": 1, "source_id": source_id, "authtype": "arn"})
        }
        _ => json!({"id": 1, "source_id": source_id, "application_type_id": COST_TYPE}),
    }
}

proptest! {
    #[test]
    fn any_message_is_read_without_panicking_and_relevant_ones_are_complete(
        event_type in event_type(),
        org in proptest::option::of(any::<String>()),
        identity in proptest::option::of(any::<String>()),
        extra in proptest::collection::vec((any::<String>(), any::<Vec<u8>>()), 0..3),
        payload in prop_oneof![
            any::<Vec<u8>>(),
            (any::<i64>(), any::<i64>()).prop_map(|(s, t)| {
                json!({"id": s, "source_id": s, "application_type_id": t, "authtype": "arn"})
                    .to_string()
                    .into_bytes()
            }),
        ],
    ) {
        let mut headers = vec![("event_type".to_owned(), event_type.into_bytes())];
        if let Some(org) = &org {
            headers.push(("x-rh-sources-org-id".to_owned(), org.clone().into_bytes()));
        }
        if let Some(identity) = &identity {
            headers.push(("x-rh-identity".to_owned(), identity.clone().into_bytes()));
        }
        headers.extend(extra);
        if let Parsed::Relevant(event) = parse(&message(headers, payload), COST_TYPE, "_sfx") {
            prop_assert!(event.org_id.ends_with("_sfx"));
            if let Some(org) = org.filter(|o| !o.is_empty()) {
                prop_assert!(event.org_id.starts_with(&org), "the header's org id is used");
            }
            prop_assert_eq!(Some(event.identity), identity);
        }
    }

    #[test]
    fn relevant_events_name_their_source_and_org_once_suffixed(
        kind in prop::sample::select(vec![
            EventKind::ApplicationCreate,
            EventKind::ApplicationUpdate,
            EventKind::ApplicationPause,
            EventKind::ApplicationUnpause,
            EventKind::ApplicationDestroy,
            EventKind::AuthenticationCreate,
            EventKind::AuthenticationUpdate,
            EventKind::SourceUpdate,
        ]),
        source_id in any::<i64>(),
        as_string in any::<bool>(),
        org in "[0-9a-z]{1,12}",
        suffixed in any::<bool>(),
        account in proptest::option::of("[0-9]{1,10}"),
    ) {
        let id = if as_string { json!(source_id.to_string()) } else { json!(source_id) };
        let identity = XRhIdentity::generated(account.as_deref(), Some(&org)).encode();
        // An org id already carrying the suffix is not suffixed twice.
        let sent_org = if suffixed { format!("{org}_sfx") } else { org.clone() };
        let headers = vec![
            ("event_type".to_owned(), kind.as_str().as_bytes().to_vec()),
            ("x-rh-identity".to_owned(), identity.clone().into_bytes()),
            ("x-rh-sources-org-id".to_owned(), sent_org.into_bytes()),
        ];
        let payload = payload_for(kind, id).to_string().into_bytes();
        match parse(&message(headers, payload), COST_TYPE, "_sfx") {
            Parsed::Relevant(event) => {
                prop_assert_eq!(event.kind, kind);
                prop_assert_eq!(event.source_id, source_id);
                prop_assert_eq!(event.org_id, format!("{org}_sfx"));
                prop_assert_eq!(event.account_id, account);
                prop_assert_eq!(event.identity, identity);
            }
            other => prop_assert!(false, "{kind:?} read as {other:?}"),
        }
    }

    #[test]
    fn application_events_of_other_types_are_skipped(
        app_type in any::<i64>().prop_filter("not cost management", |t| *t != COST_TYPE),
        source_id in any::<i64>(),
    ) {
        let identity = XRhIdentity::generated(None, Some("42")).encode();
        let headers = vec![
            ("event_type".to_owned(), b"Application.create".to_vec()),
            ("x-rh-identity".to_owned(), identity.into_bytes()),
        ];
        let payload = json!({"id": 1, "source_id": source_id, "application_type_id": app_type});
        prop_assert!(matches!(
            parse(&message(headers, payload.to_string().into_bytes()), COST_TYPE, ""),
            Parsed::Skip(_)
        ));
    }
}
