//! Application events that change nothing for cost management: their settings and pause are
//! those the provider was last built from. The listener's own status report comes back this
//! way (sources-api announces every `PATCH /applications/{id}` as `Application.update`);
//! queuing it would read the application again and decide to keep everything.
//!
//! An event is compared with the sync row only when no operation could still be building from
//! older settings: none is queued, or the one queued has committed what it built and is only
//! reporting the status. Otherwise it is queued as any other event.

use serde_json::{Value, json};

use super::{
    event::{AppFacts, EventKind},
    provider_type::{self, Family, Object, ProviderType},
    state::SyncState,
};

/// The source's operation, as the consumer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    None,
    /// Queued or building: it may still write settings read before this event.
    Working,
    /// Its changes are committed; it only reports the status.
    Reporting,
}

/// What the consumer knows of a followed source when an event arrives.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub state: SyncState,
    pub has_provider: bool,
    /// The sync row's `source_type` (a provider type name, once fetched).
    pub source_type: &'a str,
    /// The sync row's `billing_source` ([`billing_record`]).
    pub billing_source: &'a Value,
    pub paused: bool,
    pub operation: Operation,
}

/// The sync row's `billing_source` for a provider of `ty` with `data_source`: `{}` for
/// OpenShift (its providers share one empty billing source) and while the settings are
/// incomplete.
pub fn billing_record(ty: ProviderType, data_source: Option<&Object>) -> Value {
    match (data_source, ty.family()) {
        (_, Family::Ocp) | (None, _) => json!({}),
        (Some(ds), _) => json!({ "data_source": ds }),
    }
}

/// Whether an event can be left out: an application event for a linked source whose
/// settings and pause equal the sync row's. Azure sources are never left out (their
/// subscription id lives in the application but belongs to the credentials).
pub fn changes_nothing(known: &Known<'_>, kind: EventKind, app: Option<&AppFacts>) -> bool {
    let application_event = matches!(
        kind,
        EventKind::ApplicationUpdate | EventKind::ApplicationPause | EventKind::ApplicationUnpause
    );
    let (Some(app), Some(ty)) = (app, ProviderType::parse(known.source_type)) else {
        return false;
    };
    application_event
        && known.has_provider
        && known.state == SyncState::Linked
        && known.operation != Operation::Working
        && ty.family() != Family::Azure
        && app.paused == known.paused
        && billing_record(ty, provider_type::data_source(ty, &app.extra).as_ref())
            == *known.billing_source
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(extra: Value, paused: bool) -> AppFacts {
        AppFacts {
            extra: extra.as_object().cloned().unwrap_or_default(),
            paused,
        }
    }

    const BUCKET: &str = "cost-bucket";

    fn linked<'a>(billing: &'a Value, operation: Operation) -> Known<'a> {
        Known {
            state: SyncState::Linked,
            has_provider: true,
            source_type: "AWS",
            billing_source: billing,
            paused: false,
            operation,
        }
    }

    #[test]
    fn payload_facts() {
        let payload = json!({"id": "1", "extra": {"bucket": BUCKET}, "paused_at": null});
        assert_eq!(
            AppFacts::from_payload(&payload),
            Some(app(json!({"bucket": BUCKET}), false))
        );
        let paused = json!({"extra": null, "paused_at": "2024-01-01 00:00:00 UTC"});
        assert_eq!(AppFacts::from_payload(&paused), Some(app(json!({}), true)));
        assert_eq!(AppFacts::from_payload(&json!({"extra": {}})), None);
        assert_eq!(
            AppFacts::from_payload(&json!({"extra": "x", "paused_at": null})),
            None
        );
    }

    #[test]
    fn billing_records() {
        let ds: Object = json!({"bucket": BUCKET}).as_object().cloned().unwrap();
        assert_eq!(
            billing_record(ProviderType::Aws, Some(&ds)),
            json!({"data_source": {"bucket": BUCKET}})
        );
        assert_eq!(billing_record(ProviderType::Aws, None), json!({}));
        assert_eq!(billing_record(ProviderType::Ocp, Some(&ds)), json!({}));
    }

    #[test]
    fn which_events_change_nothing() {
        let billing = json!({"data_source": {"bucket": BUCKET}});
        // Keys that are not settings do not count.
        let same = app(json!({"bucket": BUCKET, "superkey_note": "x"}), false);
        let update = EventKind::ApplicationUpdate;
        // (known, kind, facts, left out?)
        let cases: Vec<(Known<'_>, EventKind, Option<AppFacts>, bool)> = vec![
            (
                linked(&billing, Operation::None),
                update,
                Some(same.clone()),
                true,
            ),
            (
                linked(&billing, Operation::Reporting),
                update,
                Some(same.clone()),
                true,
            ),
            (
                linked(&billing, Operation::None),
                EventKind::ApplicationPause,
                Some(same.clone()),
                true,
            ),
            // An operation may still write settings read before this event.
            (
                linked(&billing, Operation::Working),
                update,
                Some(same.clone()),
                false,
            ),
            // Another bucket, another region, or a pause.
            (
                linked(&billing, Operation::None),
                update,
                Some(app(json!({"bucket": "other"}), false)),
                false,
            ),
            (
                linked(&billing, Operation::None),
                update,
                Some(app(json!({"bucket": BUCKET, "bucket_region": "x"}), false)),
                false,
            ),
            (
                linked(&billing, Operation::None),
                update,
                Some(app(json!({"bucket": BUCKET}), true)),
                false,
            ),
            // Settings no longer complete.
            (
                linked(&billing, Operation::None),
                update,
                Some(app(json!({}), false)),
                false,
            ),
            // No facts in the payload; not an application event.
            (linked(&billing, Operation::None), update, None, false),
            (
                linked(&billing, Operation::None),
                EventKind::SourceUpdate,
                Some(same.clone()),
                false,
            ),
            (
                linked(&billing, Operation::None),
                EventKind::ApplicationDestroy,
                Some(same.clone()),
                false,
            ),
            (
                linked(&billing, Operation::None),
                EventKind::AuthenticationUpdate,
                Some(same.clone()),
                false,
            ),
            (
                Known {
                    has_provider: false,
                    ..linked(&billing, Operation::None)
                },
                update,
                Some(same.clone()),
                false,
            ),
            (
                Known {
                    state: SyncState::Failed,
                    ..linked(&billing, Operation::None)
                },
                update,
                Some(same.clone()),
                false,
            ),
            (
                Known {
                    source_type: "Azure",
                    ..linked(&billing, Operation::None)
                },
                update,
                Some(same.clone()),
                false,
            ),
            (
                Known {
                    source_type: "",
                    ..linked(&billing, Operation::None)
                },
                update,
                Some(same.clone()),
                false,
            ),
        ];
        for (n, (known, kind, facts, expected)) in cases.iter().enumerate() {
            assert_eq!(
                changes_nothing(known, *kind, facts.as_ref()),
                *expected,
                "case {n}: {kind:?} {known:?} {facts:?}"
            );
        }
        // OpenShift: every application's billing source is empty.
        let empty = json!({});
        let ocp = Known {
            source_type: "OCP",
            ..linked(&empty, Operation::None)
        };
        assert!(changes_nothing(
            &ocp,
            update,
            Some(&app(json!({"anything": 1}), false))
        ));
    }
}
