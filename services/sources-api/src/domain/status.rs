//! Availability reports sent on edits of applications, authentications, endpoints and
//! connections: the four fields as sent, and the report they mean once checked.

use chrono::{DateTime, Utc};
use keel_domain::AvailabilityStatus;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    INVALID_DATE,
    limits::{self, Field},
    parse_status_time,
};

/// The status fields of an edit, as sent. Edit requests take them flattened (the request
/// refuses unknown fields).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StatusFields {
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC` or RFC 3339.
    pub last_checked_at: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC` or RFC 3339.
    pub last_available_at: Option<String>,
}

/// A checked report; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusReport {
    pub status: Option<AvailabilityStatus>,
    pub error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
}

impl StatusFields {
    /// Checks the status with `rule` (each resource accepts its own statuses, with its own
    /// message), then the two times, in the order sources-api-go does.
    pub fn parse(
        self,
        rule: impl FnOnce(&str) -> Result<AvailabilityStatus, String>,
    ) -> Result<StatusReport, String> {
        let status = self.availability_status.as_deref().map(rule).transpose()?;
        let time = |raw: Option<String>| {
            raw.map(|r| parse_status_time(&r).ok_or_else(|| INVALID_DATE.to_owned()))
                .transpose()
        };
        let (last_checked_at, last_available_at) =
            (time(self.last_checked_at)?, time(self.last_available_at)?);
        let error = self.availability_status_error;
        limits::check(&[Field::Text(
            "availability_status_error",
            error.as_deref(),
            limits::MESSAGE,
        )])?;
        Ok(StatusReport {
            status,
            error,
            last_checked_at,
            last_available_at,
        })
    }
}

/// The rule of most resources: any of the four statuses, else `message`.
pub fn any_status(message: &str) -> impl FnOnce(&str) -> Result<AvailabilityStatus, String> + '_ {
    move |raw| raw.parse().map_err(|()| message.to_owned())
}

impl StatusReport {
    /// Reporting a status is a check: it stamps `last_checked_at` (and `last_available_at`
    /// when available) with `now` unless the report has its own, as applications do.
    pub fn stamped(mut self, now: DateTime<Utc>) -> Self {
        if let Some(status) = self.status {
            self.last_checked_at.get_or_insert(now);
            if status == AvailabilityStatus::Available {
                self.last_available_at.get_or_insert(now);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(status: Option<&str>, checked: Option<&str>) -> StatusFields {
        StatusFields {
            availability_status: status.map(str::to_owned),
            availability_status_error: Some("timed out".to_owned()),
            last_checked_at: checked.map(str::to_owned),
            last_available_at: None,
        }
    }

    #[test]
    fn the_status_is_checked_by_the_rule_before_the_times() {
        let bad_both = fields(Some("maybe"), Some("yesterday"));
        assert_eq!(bad_both.parse(any_status("no")).unwrap_err(), "no");
        let bad_time = fields(Some("available"), Some("yesterday"));
        assert_eq!(bad_time.parse(any_status("no")).unwrap_err(), INVALID_DATE);
        let only_available = |raw: &str| match raw {
            "available" => Ok(AvailabilityStatus::Available),
            _ => Err("only available".to_owned()),
        };
        let refused = fields(Some("in_progress"), None).parse(only_available);
        assert_eq!(refused.unwrap_err(), "only available");
    }

    #[test]
    fn an_error_message_is_capped() {
        let long = StatusFields {
            availability_status_error: Some("e".repeat(limits::MESSAGE + 1)),
            ..StatusFields::default()
        };
        assert_eq!(
            long.parse(any_status("no")).unwrap_err(),
            "the provided availability_status_error is longer than 4096 characters"
        );
    }

    #[test]
    fn both_time_layouts_are_read_as_utc() {
        let go = fields(None, Some("2024-05-01 10:00:00 UTC")).parse(any_status("no"));
        let rfc = fields(None, Some("2024-05-01T12:00:00+02:00")).parse(any_status("no"));
        let want = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(go.unwrap().last_checked_at, Some(want));
        assert_eq!(rfc.unwrap().last_checked_at, Some(want));
    }

    #[test]
    fn a_status_stamps_the_check_times_it_was_not_given() {
        let now = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let earlier = "2024-04-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let available = StatusReport {
            status: Some(AvailabilityStatus::Available),
            last_checked_at: Some(earlier),
            ..StatusReport::default()
        }
        .stamped(now);
        assert_eq!(available.last_checked_at, Some(earlier));
        assert_eq!(available.last_available_at, Some(now));
        let unavailable = StatusReport {
            status: Some(AvailabilityStatus::Unavailable),
            ..StatusReport::default()
        }
        .stamped(now);
        assert_eq!(unavailable.last_checked_at, Some(now));
        assert_eq!(unavailable.last_available_at, None);
        assert_eq!(
            StatusReport::default().stamped(now),
            StatusReport::default()
        );
    }
}
