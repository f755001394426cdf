//! The Platform Sources event stream's names, shared by the producer (sources-api) and its
//! consumers (the listener): topics and event types, spelled once.

/// Every Sources change, announced in order per org.
pub const EVENT_STREAM_TOPIC: &str = "platform.sources.event-stream";
/// Availability reports from applications back to sources-api.
pub const STATUS_TOPIC: &str = "platform.sources.status";
/// The `event_type` header of a message on [`STATUS_TOPIC`].
pub const AVAILABILITY_STATUS: &str = "availability_status";

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Source,
    Application,
    Endpoint,
    Authentication,
    ApplicationAuthentication,
    RhcConnection,
    /// `Records.update`: a source with its children after a status report.
    Records,
}

/// What happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Update,
    Destroy,
    Pause,
    Unpause,
}

/// An `event_type` header of the event stream, such as `Source.create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    pub resource: Resource,
    pub action: Action,
}

impl Resource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Application => "Application",
            Self::Endpoint => "Endpoint",
            Self::Authentication => "Authentication",
            Self::ApplicationAuthentication => "ApplicationAuthentication",
            Self::RhcConnection => "RhcConnection",
            Self::Records => "Records",
        }
    }

    const ALL: [Self; 7] = [
        Self::Source,
        Self::Application,
        Self::Endpoint,
        Self::Authentication,
        Self::ApplicationAuthentication,
        Self::RhcConnection,
        Self::Records,
    ];

    pub const fn create(self) -> EventType {
        EventType::new(self, Action::Create)
    }

    pub const fn update(self) -> EventType {
        EventType::new(self, Action::Update)
    }

    pub const fn destroy(self) -> EventType {
        EventType::new(self, Action::Destroy)
    }

    pub const fn pause(self) -> EventType {
        EventType::new(self, Action::Pause)
    }

    pub const fn unpause(self) -> EventType {
        EventType::new(self, Action::Unpause)
    }
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Destroy => "destroy",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
        }
    }

    const ALL: [Self; 5] = [
        Self::Create,
        Self::Update,
        Self::Destroy,
        Self::Pause,
        Self::Unpause,
    ];
}

impl EventType {
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }

    /// `pause` or `unpause` of `resource`.
    pub const fn paused(resource: Resource, paused: bool) -> Self {
        Self::new(
            resource,
            if paused {
                Action::Pause
            } else {
                Action::Unpause
            },
        )
    }

    /// The header value, e.g. `Source.create`.
    pub const fn as_str(self) -> &'static str {
        macro_rules! names {
            ($($resource:ident),*) => {
                match (self.resource, self.action) {
                    $(
                        (Resource::$resource, Action::Create) => concat!(stringify!($resource), ".create"),
                        (Resource::$resource, Action::Update) => concat!(stringify!($resource), ".update"),
                        (Resource::$resource, Action::Destroy) => concat!(stringify!($resource), ".destroy"),
                        (Resource::$resource, Action::Pause) => concat!(stringify!($resource), ".pause"),
                        (Resource::$resource, Action::Unpause) => concat!(stringify!($resource), ".unpause"),
                    )*
                }
            };
        }
        names!(
            Source,
            Application,
            Endpoint,
            Authentication,
            ApplicationAuthentication,
            RhcConnection,
            Records
        )
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (resource, action) = raw.split_once('.')?;
        let resource = Resource::ALL.into_iter().find(|r| r.as_str() == resource)?;
        let action = Action::ALL.into_iter().find(|a| a.as_str() == action)?;
        Some(Self::new(resource, action))
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_sources_api_go_spells_them() {
        assert_eq!(Resource::Source.create().as_str(), "Source.create");
        assert_eq!(
            Resource::ApplicationAuthentication.destroy().as_str(),
            "ApplicationAuthentication.destroy"
        );
        assert_eq!(
            EventType::paused(Resource::Application, false).as_str(),
            "Application.unpause"
        );
        assert_eq!(
            EventType::parse("Records.update"),
            Some(Resource::Records.update())
        );
        assert_eq!(EventType::parse("Source.explode"), None);
        assert_eq!(EventType::parse("availability_status"), None);
    }
}
