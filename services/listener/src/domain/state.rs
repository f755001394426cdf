//! The sync state machine of one source, replacing Koku's `pending_*` flags and its
//! empty-`status` gate.
//!
//! Events are triggers: the consumer records that something changed ([`on_event`]) and queues
//! an operation; the worker then fetches what sources-api holds now and decides ([`plan`]).
//! Deciding from the current truth instead of the event payload is what makes the listener
//! order-tolerant and duplicate-proof: a replayed or late event only causes a re-check.
//!
//! ```text
//!  new ─▶ details ─▶ creating ─▶ linked ◀─▶ pending_update
//!           ▲  (waits for   │                  │
//!           │  complete     ▼                  ▼
//!           │  settings) failed(reason)   pending_delete ─▶ deleted (row removed)
//!           └── change ──────┘
//!
//! Complete settings go straight to `creating` in the same operation, so there is no
//! separate "settings complete" state (the table still accepts `settings_complete`, written
//! by nothing).
//! ```

use super::{
    event::EventKind,
    provider_type::{self, Object, ProviderType},
    status::{Problem, too_long_message},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Seen in an event; details not fetched yet.
    New,
    /// Details known; credentials or billing source still incomplete.
    Details,
    /// Building the provider (a failure here is retried).
    Creating,
    /// The provider exists and matches the source.
    Linked,
    /// The settings are invalid (the reason is reported to sources-api); waits for a change.
    Failed,
    /// The source changed after its provider was made.
    PendingUpdate,
    /// The application was destroyed; the provider and this row are being removed.
    PendingDelete,
}

impl SyncState {
    pub const ALL: [Self; 7] = [
        Self::New,
        Self::Details,
        Self::Creating,
        Self::Linked,
        Self::Failed,
        Self::PendingUpdate,
        Self::PendingDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Details => "details",
            Self::Creating => "creating",
            Self::Linked => "linked",
            Self::Failed => "failed",
            Self::PendingUpdate => "pending_update",
            Self::PendingDelete => "pending_delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// The queued operation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Update,
    Delete,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Create, Self::Update, Self::Delete]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// A later trigger merges into the queued operation: a delete wins, an update of a source
    /// whose provider is still to be created stays a create.
    pub fn merge(queued: Self, new: Self) -> Self {
        match (queued, new) {
            (Self::Delete, _) | (_, Self::Delete) => Self::Delete,
            (Self::Create, _) => Self::Create,
            (Self::Update, other) => other,
        }
    }
}

/// What an operation reads again from sources-api.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// The source, its cost-management application and its authentication.
    All,
    /// Only the application: the source's name and credentials are those the provider was
    /// built from.
    Application,
}

impl Reread {
    /// Events that can change only the application (its `extra` or its pause) need only the
    /// application read again, once the source has a provider to compare with.
    pub fn for_event(kind: EventKind, has_provider: bool) -> Self {
        match kind {
            EventKind::ApplicationUpdate
            | EventKind::ApplicationPause
            | EventKind::ApplicationUnpause
                if has_provider =>
            {
                Self::Application
            }
            _ => Self::All,
        }
    }

    /// Triggers merged into one operation read what any of them needs.
    pub fn merge(a: Self, b: Self) -> Self {
        if a == Self::Application && b == Self::Application {
            Self::Application
        } else {
            Self::All
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Application => "application",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "application" {
            Self::Application
        } else {
            Self::All
        }
    }
}

/// What an event does to a followed source: its next state and the operation to queue.
pub fn on_event(state: SyncState, has_provider: bool, kind: EventKind) -> (SyncState, OpKind) {
    if kind == EventKind::ApplicationDestroy || state == SyncState::PendingDelete {
        // A change arriving after a destroy is settled by the delete operation, which checks
        // whether the application really is gone.
        return (SyncState::PendingDelete, OpKind::Delete);
    }
    if has_provider {
        return (SyncState::PendingUpdate, OpKind::Update);
    }
    (state, OpKind::Create)
}

/// What sources-api holds for a source now.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// The source, or its cost-management application, no longer exists.
    Gone,
    /// The source exists but is of a type cost management does not handle.
    Unsupported(String),
    Present(Desired),
}

/// The provider a present source should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub name: String,
    pub ty: ProviderType,
    pub credentials: Object,
    /// `None` while the application lacks required billing keys.
    pub data_source: Option<Object>,
    pub paused: bool,
}

impl Desired {
    pub fn ready(&self) -> bool {
        provider_type::settings_ready(self.ty, &self.credentials, self.data_source.as_ref())
    }
}

/// What the provider was last built or updated from.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub name: String,
    pub credentials: Object,
    pub data_source: Object,
    pub paused: bool,
}

/// The worker's decision for one source.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Remove the provider (if any), its tenant row, then the sync row.
    Delete,
    /// Settings incomplete: wait in `details` for the next event.
    Wait,
    /// Settings invalid: report the problem, wait in `failed` for a change.
    Fail(Problem),
    Create,
    Update,
    /// The provider matches the source; only the status may need sending.
    Keep,
}

impl Plan {
    /// The state a source is left in when the plan succeeds (`None`: the row is removed).
    pub fn next_state(&self) -> Option<SyncState> {
        match self {
            Self::Delete => None,
            Self::Wait => Some(SyncState::Details),
            Self::Fail(_) => Some(SyncState::Failed),
            Self::Create | Self::Update | Self::Keep => Some(SyncState::Linked),
        }
    }
}

/// Longest provider name (`api_provider.name`).
pub const MAX_NAME: usize = 256;
/// Largest billing source, serialized: `api_providerbillingsource.data_source` is unique, and
/// an index entry must stay under PostgreSQL's 2,704 bytes.
pub const MAX_DATA_SOURCE: usize = 2048;

/// What the provider tables constrain, checked before writing so that a source breaking it is
/// reported to the user instead of failing in the database.
fn fits_the_tables(name: &str, data_source: &Object) -> Result<(), Problem> {
    if name.chars().count() > MAX_NAME {
        return Err(Problem::new("source.name", too_long_message(MAX_NAME)));
    }
    let size = serde_json::to_vec(data_source).map_or(usize::MAX, |v| v.len());
    if size > MAX_DATA_SOURCE {
        return Err(Problem::new(
            "billing_source.data_source",
            too_long_message(MAX_DATA_SOURCE),
        ));
    }
    Ok(())
}

/// Decides from the current truth and what the provider (if any) was built from.
pub fn plan(truth: &Truth, synced: Option<&Synced>) -> Plan {
    let desired = match truth {
        Truth::Gone => return Plan::Delete,
        Truth::Unsupported(_) => {
            return if synced.is_some() {
                Plan::Keep
            } else {
                Plan::Wait
            };
        }
        Truth::Present(desired) => desired,
    };
    if !desired.ready() {
        // A provider keeps running on its last complete settings.
        return if synced.is_some() {
            Plan::Keep
        } else {
            Plan::Wait
        };
    }
    let data_source = desired.data_source.clone().unwrap_or_default();
    let valid = provider_type::validate(desired.ty, &desired.credentials, &data_source)
        .and_then(|()| fits_the_tables(&desired.name, &data_source));
    if let Err(problem) = valid {
        return Plan::Fail(problem);
    }
    match synced {
        None => Plan::Create,
        Some(s) => {
            let same = s.name == desired.name
                && s.credentials == desired.credentials
                && s.data_source == data_source
                && s.paused == desired.paused;
            if same { Plan::Keep } else { Plan::Update }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: serde_json::Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    fn aws(arn: &str, bucket: Option<&str>) -> Desired {
        Desired {
            name: "AWS".into(),
            ty: ProviderType::Aws,
            credentials: obj(json!({"role_arn": arn, "external_id": null})),
            data_source: bucket.map(|b| obj(json!({"bucket": b}))),
            paused: false,
        }
    }

    const ARN: &str = "arn:aws:iam::111111111111:role/Cost";

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for s in SyncState::ALL {
            assert_eq!(SyncState::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            SyncState::parse("deleted"),
            None,
            "deleted rows are removed, not stored"
        );
    }

    #[test]
    fn events_move_sources_and_queue_operations() {
        use EventKind::*;
        assert_eq!(
            on_event(SyncState::New, false, ApplicationCreate),
            (SyncState::New, OpKind::Create)
        );
        assert_eq!(
            on_event(SyncState::Details, false, AuthenticationCreate),
            (SyncState::Details, OpKind::Create)
        );
        assert_eq!(
            on_event(SyncState::Failed, false, ApplicationUpdate),
            (SyncState::Failed, OpKind::Create)
        );
        assert_eq!(
            on_event(SyncState::Linked, true, SourceUpdate),
            (SyncState::PendingUpdate, OpKind::Update)
        );
        assert_eq!(
            on_event(SyncState::Linked, true, ApplicationPause),
            (SyncState::PendingUpdate, OpKind::Update)
        );
        assert_eq!(
            on_event(SyncState::Linked, true, ApplicationDestroy),
            (SyncState::PendingDelete, OpKind::Delete)
        );
        assert_eq!(
            on_event(SyncState::Details, false, ApplicationDestroy),
            (SyncState::PendingDelete, OpKind::Delete)
        );
        assert_eq!(
            on_event(SyncState::PendingDelete, true, ApplicationCreate),
            (SyncState::PendingDelete, OpKind::Delete),
            "the delete operation settles a create that follows a destroy"
        );
    }

    #[test]
    fn queued_operations_merge() {
        use OpKind::*;
        assert_eq!(OpKind::merge(Create, Update), Create);
        assert_eq!(OpKind::merge(Update, Create), Create);
        assert_eq!(OpKind::merge(Update, Update), Update);
        assert_eq!(OpKind::merge(Create, Delete), Delete);
        assert_eq!(OpKind::merge(Delete, Create), Delete);
    }

    #[test]
    fn plans_follow_the_truth() {
        assert_eq!(plan(&Truth::Gone, None), Plan::Delete);
        assert_eq!(
            plan(&Truth::Unsupported("satellite".into()), None),
            Plan::Wait
        );
        assert_eq!(
            plan(&Truth::Present(aws(ARN, None)), None),
            Plan::Wait,
            "no bucket yet"
        );
        assert_eq!(
            plan(&Truth::Present(aws(ARN, Some("b"))), None),
            Plan::Create
        );
        let Plan::Fail(problem) = plan(&Truth::Present(aws("arn:bad", Some("b"))), None) else {
            panic!("a malformed ARN fails")
        };
        assert_eq!(problem.key, "authentication.role_arn.unreachable");
    }

    #[test]
    fn linked_sources_update_only_on_a_difference() {
        let desired = aws(ARN, Some("b"));
        let synced = Synced {
            name: desired.name.clone(),
            credentials: desired.credentials.clone(),
            data_source: desired.data_source.clone().unwrap(),
            paused: false,
        };
        assert_eq!(
            plan(&Truth::Present(desired.clone()), Some(&synced)),
            Plan::Keep
        );
        let mut renamed = desired.clone();
        renamed.name = "new name".into();
        assert_eq!(plan(&Truth::Present(renamed), Some(&synced)), Plan::Update);
        let mut paused = desired.clone();
        paused.paused = true;
        assert_eq!(plan(&Truth::Present(paused), Some(&synced)), Plan::Update);
        assert_eq!(
            plan(&Truth::Present(aws(ARN, Some("other"))), Some(&synced)),
            Plan::Update
        );
        assert_eq!(
            plan(&Truth::Present(aws(ARN, None)), Some(&synced)),
            Plan::Keep,
            "a provider keeps its last complete settings"
        );
        assert_eq!(plan(&Truth::Gone, Some(&synced)), Plan::Delete);
    }

    #[test]
    fn what_the_tables_cannot_hold_fails_the_source() {
        let mut long_name = aws("arn:aws:iam::123456789012:role/Cost", Some("b"));
        long_name.name = "n".repeat(MAX_NAME + 1);
        let Plan::Fail(problem) = plan(&Truth::Present(long_name), None) else {
            panic!("a name over 256 characters fails")
        };
        assert_eq!(problem.key, "source.name");
        assert_eq!(
            problem.message,
            "Ensure this field has no more than 256 characters."
        );
        let mut big = aws("arn:aws:iam::123456789012:role/Cost", Some("b"));
        if let Some(ds) = big.data_source.as_mut() {
            ds.insert("pad".into(), "x".repeat(MAX_DATA_SOURCE).into());
        }
        let Plan::Fail(problem) = plan(&Truth::Present(big), None) else {
            panic!("a billing source over 2,048 bytes fails")
        };
        assert_eq!(problem.key, "billing_source.data_source");
        let mut at_cap = aws("arn:aws:iam::123456789012:role/Cost", Some("b"));
        at_cap.name = "n".repeat(MAX_NAME);
        assert_eq!(plan(&Truth::Present(at_cap), None), Plan::Create);
    }

    #[test]
    fn plans_end_in_their_states() {
        assert_eq!(Plan::Delete.next_state(), None);
        assert_eq!(Plan::Wait.next_state(), Some(SyncState::Details));
        assert_eq!(
            Plan::Fail(Problem::duplicate()).next_state(),
            Some(SyncState::Failed)
        );
        assert_eq!(Plan::Create.next_state(), Some(SyncState::Linked));
    }

    #[test]
    fn only_application_events_on_a_provider_reread_the_application_alone() {
        use EventKind::*;
        for kind in [ApplicationUpdate, ApplicationPause, ApplicationUnpause] {
            assert_eq!(
                Reread::for_event(kind, true),
                Reread::Application,
                "{kind:?}"
            );
            // Without a provider there is nothing to take the rest from.
            assert_eq!(Reread::for_event(kind, false), Reread::All, "{kind:?}");
        }
        for kind in [
            ApplicationCreate,
            ApplicationDestroy,
            AuthenticationCreate,
            AuthenticationUpdate,
            SourceUpdate,
        ] {
            assert_eq!(Reread::for_event(kind, true), Reread::All, "{kind:?}");
        }
        assert_eq!(
            Reread::merge(Reread::Application, Reread::Application),
            Reread::Application
        );
        assert_eq!(Reread::merge(Reread::Application, Reread::All), Reread::All);
        assert_eq!(Reread::merge(Reread::All, Reread::Application), Reread::All);
        for r in [Reread::All, Reread::Application] {
            assert_eq!(Reread::parse(r.as_str()), r);
        }
    }
}
