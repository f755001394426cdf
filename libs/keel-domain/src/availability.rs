use std::{fmt, str::FromStr};

/// The availability statuses the Sources API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AvailabilityStatus {
    Available,
    InProgress,
    PartiallyAvailable,
    Unavailable,
}

impl AvailabilityStatus {
    pub const ALL: [Self; 4] = [
        Self::Available,
        Self::InProgress,
        Self::PartiallyAvailable,
        Self::Unavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::InProgress => "in_progress",
            Self::PartiallyAvailable => "partially_available",
            Self::Unavailable => "unavailable",
        }
    }
}

impl FromStr for AvailabilityStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for AvailabilityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_status_and_rejects_others() {
        for status in AvailabilityStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("".parse::<AvailabilityStatus>().is_err());
        assert!("Available".parse::<AvailabilityStatus>().is_err());
    }
}
